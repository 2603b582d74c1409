// The header read must agree with the generated decoder on every batch, or ingest would refuse or
// name a batch differently from the batch it later decodes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TelemetryBatch } from '../../proto/gen/hcp/v1/telemetry.js';
import { asic, gpu } from '../../test/harness/samples.js';
import { peekBatchHeader } from './batch-header.js';

const text = fc.string({ maxLength: 40 });

describe('peekBatchHeader', () => {
  it('reads what TelemetryBatch.decode reads, with the samples skipped', () => {
    fc.assert(
      fc.property(
        text, fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: -1e15, max: 4e12 }), text, fc.option(text, { nil: undefined }),
        fc.nat({ max: 5 }), fc.nat({ max: 5 }),
        (siteId, seq, sentAtMs, agentSession, stream, nGpus, nAsics) => {
          const bytes = TelemetryBatch.encode({
            siteId, seq, sentAtMs, agentSession, stream,
            gpus: Array.from({ length: nGpus }, (_, i) => gpu(`g${i}`, sentAtMs, 50, 400)),
            asics: Array.from({ length: nAsics }, (_, i) => asic(`a${i}`, sentAtMs, 200, 3500)),
          }).finish();
          const full = TelemetryBatch.decode(bytes);
          expect(peekBatchHeader(bytes)).toEqual({
            siteId: full.siteId, seq: full.seq, sentAtMs: full.sentAtMs, agentSession: full.agentSession, stream: full.stream ?? '',
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('throws where the decoder throws: a seq past 2^53, bytes that are no message', () => {
    // field 2 (varint) = 2^60
    const big = Uint8Array.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    expect(() => TelemetryBatch.decode(big)).toThrow();
    expect(() => peekBatchHeader(big)).toThrow();
    const cut = Uint8Array.from([0x0a, 0x05, 0x61]); // a site_id of 5 bytes, 1 present
    expect(() => TelemetryBatch.decode(cut)).toThrow();
    expect(() => peekBatchHeader(cut)).toThrow();
  });
});
