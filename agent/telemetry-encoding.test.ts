import fc from 'fast-check';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import { AsicSample, GpuSample, TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { asic, gpu } from '../test/harness/samples.js';
import { encodeTelemetryBatch } from './telemetry-encoding.js';

const int = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff_ffff }), fc.maxSafeNat());
const num = fc.oneof(fc.constant(0), fc.double(), fc.integer({ min: -1000, max: 5000 }));
const list = fc.array(num, { maxLength: 9 });
const asicSample = fc.record({
  deviceId: fc.oneof(fc.constant(''), fc.string()),
  // negative: the generated int64 path (two's complement, ten bytes)
  tsMs: fc.oneof(int, fc.integer({ min: -(2 ** 40), max: -1 })),
  hashrate5sThs: num, hashrateAvgThs: num, powerW: num,
  boardTemperaturesC: list, chipTemperaturesC: list,
  fanRpm: fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { maxLength: 6 }),
  acceptedShares: int, rejectedShares: int, hardwareErrors: int,
  miningState: fc.integer({ min: 0, max: 5 }), powerTargetW: num,
});

const generated = (b: TelemetryBatch) => TelemetryBatch.encode(b).finish();

describe('the tick\'s TelemetryBatch encoding', () => {
  it('covers every AsicSample field (a field added to the proto must be added to it)', () => {
    expect(Object.keys(AsicSample.create()).sort()).toEqual(Object.keys(fc.sample(asicSample, 1)[0]!).sort());
  });

  it('writes the bytes TelemetryBatch.encode writes, with one writer reused batch after batch', () => {
    const w = new BinaryWriter();
    fc.assert(fc.property(fc.array(asicSample, { maxLength: 20 }), fc.boolean(), fc.nat(), (asics, withStream, seq) => {
      const batch: TelemetryBatch = {
        siteId: 'texas-1', seq, sentAtMs: 1_796_290_314_567, agentSession: 's-1',
        gpus: [gpu('gpu-t-0001', 1, 87.5, 612.25)], asics, stream: withStream ? 'stream-1' : undefined,
      };
      const bytes = encodeTelemetryBatch(batch, w);
      expect(Buffer.from(bytes).equals(Buffer.from(generated(batch)))).toBe(true);
    }), { numRuns: 300 });
  });

  it('decodes to the batch it was given', () => {
    const batch: TelemetryBatch = {
      siteId: 'texas-1', seq: 7, sentAtMs: Date.now(), agentSession: 's-1', gpus: [GpuSample.create({ deviceId: 'gpu-t-0001' })],
      asics: [asic('asic-t-00001', Date.now(), 270, 3645), { ...asic('asic-t-00002', 2 ** 45, 0, 35), acceptedShares: 2 ** 50 }], stream: 'stream-1',
    };
    expect(TelemetryBatch.decode(encodeTelemetryBatch(batch, new BinaryWriter()))).toEqual(batch);
  });
});
