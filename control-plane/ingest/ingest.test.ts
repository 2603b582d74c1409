// Ingest of one MQTT message with a real registry and metrics; the writer only records what it is
// handed (the database side is test/dead-letter.int.test.ts).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TelemetryBatch, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../../proto/topics.js';
import { asic, gpu } from '../../test/harness/samples.js';
import type { TelemetryBatchIn, TelemetryWriter } from '../db/telemetry-writer.js';
import { createMetrics } from '../metrics.js';
import { Registry } from '../registry/registry.js';
import { createIngest } from './ingest.js';

function setup() {
  let t = 1_800_000_000_000;
  const registry = new Registry({ staleAfterMs: 10_000 });
  registry.addSite({ id: 'texas-1', name: 'Texas 1', region: 'ercot', powerCapacityKw: 250 });
  const device = (id: string, kind: 'gpu' | 'asic') => registry.addDevice({
    id, siteId: 'texas-1', kind, model: 'm', driver: 'sim', endpoint: null, serial: null, ratedPowerW: 700, ratedHashrateThs: null, memoryTotalMib: null, lastSeenMs: null,
  });
  device('gpu-1', 'gpu');
  device('gpu-2', 'gpu');
  device('asic-1', 'asic');
  const written: TelemetryBatchIn[] = [];
  // what the real writer says of a batch: buffered keys are 'pending'; `full` refuses
  const buffered = new Set<string>();
  let full = false;
  const writer: TelemetryWriter = {
    offer: (b) => {
      const k = `${b.site} ${b.stream} ${b.seq}`;
      if (buffered.has(k)) return 'pending';
      if (full) return 'backpressure';
      buffered.add(k);
      written.push(b);
      return 'accepted';
    },
    hasRoomFor: () => !full,
    onCommitted: () => () => {},
    bufferedBytes: 0,
    flush: async () => {},
    close: async () => {},
  };
  const metrics = createMetrics();
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const ingest = createIngest({ registry, writer, metrics, log, now: () => t });
  const publish = (seq: number, gpus: GpuSample[] = [gpu('gpu-1', t, 90, 600)], asics: AsicSample[] = [], session = 'real', stream?: string) =>
    ingest.handle(topics.telemetry('texas-1'), Buffer.from(TelemetryBatch.encode({ siteId: 'texas-1', seq, sentAtMs: t, agentSession: session, gpus, asics, stream }).finish()));
  const rejected = async (reason: string) => (await metrics.ingestRejected.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  const observe = (seq: number, sentAtMs: number, gpus: GpuSample[]) =>
    ingest.observe(topics.telemetry('texas-1'), Buffer.from(TelemetryBatch.encode({ siteId: 'texas-1', seq, sentAtMs, agentSession: 'real', gpus, asics: [] }).finish()));
  return { registry, written, metrics, lines, publish, observe, ingest, rejected, now: () => t, advance: (ms: number) => void (t += ms), fill: (v: boolean) => void (full = v) };
}

describe('ingest', () => {
  it('refuses seq 2^53 - 1 in the real session without moving the sequence, so the site keeps reporting', async () => {
    const s = setup();
    s.publish(1);
    s.advance(1000);
    s.publish(Number.MAX_SAFE_INTEGER);
    expect(await s.rejected('seq_jump')).toBe(1);
    s.advance(1000);
    s.publish(2);
    expect(s.written).toHaveLength(2);
    expect(await s.rejected('duplicate')).toBe(0);
    expect(s.lines.find((l) => l.reason === 'seq_jump')).toMatchObject({ site: 'texas-1', seq: Number.MAX_SAFE_INTEGER });
  });

  it('drops only the sample out of its column range, and names the field', async () => {
    const s = setup();
    s.publish(1, [{ ...gpu('gpu-1', s.now(), 90, 600), xidErrors: 4e9 }, gpu('gpu-2', s.now(), 90, 600)], [asic('asic-1', s.now(), 270, 3645)]);
    expect(s.written).toHaveLength(1);
    expect(s.written[0]!.gpus.map((g) => g.deviceId)).toEqual(['gpu-2']);
    expect(s.written[0]!.asics).toHaveLength(1);
    expect(await s.rejected('out_of_range')).toBe(1);
    expect(s.lines.find((l) => l.reason === 'out_of_range')).toMatchObject({ site: 'texas-1', device: 'gpu-1', field: 'xid_errors' });
    // the device's latest sample is the one accepted, not the bad one
    expect(s.registry.device('gpu-1')!.gpu).toBeNull();
    expect(s.registry.device('gpu-2')!.gpu).not.toBeNull();
  });

  it('offers a batch whose every sample failed with no samples, so it is ledgered with 0 rows and its seq is passed', async () => {
    const s = setup();
    s.publish(1);
    s.publish(2, [{ ...gpu('gpu-1', s.now(), 90, 600), xidErrors: 4e9 }]);
    expect(s.written).toHaveLength(2);
    expect(s.written[1]).toMatchObject({ site: 'texas-1', stream: 'real', seq: 2, gpus: [], asics: [] });
    expect(await s.rejected('out_of_range')).toBe(1);
    // the same seq again: the writer has it (the ledger would say so once it is committed)
    s.publish(2);
    expect(s.written).toHaveLength(2);
    expect(await s.rejected('duplicate')).toBe(1);
    expect(await s.metrics.ingestBatches.get()).toMatchObject({ values: [{ value: 2 }] });
  });

  it('accepts an empty batch and moves the sequence', async () => {
    const s = setup();
    s.publish(1, []);
    s.publish(1);
    expect(await s.rejected('duplicate')).toBe(1);
  });

  it('refuses a batch the writer has no room for as backpressure, without marking it seen, and takes it when sent again', async () => {
    const s = setup();
    s.publish(1);
    s.fill(true);
    s.advance(2000);
    s.publish(2, [gpu('gpu-2', s.now(), 50, 400)]);
    expect(await s.rejected('backpressure')).toBe(1);
    expect(s.written).toHaveLength(1);
    // the live view shows the live batch anyway (none was stored for 2 s)
    expect(s.registry.device('gpu-2')!.gpu).not.toBeNull();
    s.fill(false);
    s.publish(2, [gpu('gpu-2', s.now(), 50, 400)]);
    expect(s.written.map((b) => b.seq)).toEqual([1, 2]);
    expect(await s.rejected('duplicate')).toBe(0);
    expect(s.lines.find((l) => l.reason === 'backpressure')).toMatchObject({ site: 'texas-1', seq: 2 });
  });

  it('refuses a batch undecoded while the writer is full, and refreshes the live view from a refused live batch at most every 2 s per site', async () => {
    const s = setup();
    s.publish(1);
    s.fill(true);
    // the header is whole, the samples are bytes that are no GpuSample: refused without decoding them
    const header = TelemetryBatch.encode({ siteId: 'texas-1', seq: 2, sentAtMs: s.now(), agentSession: 'real', gpus: [], asics: [] }).finish();
    const garbage = Buffer.concat([Buffer.from(header), Buffer.from([0x2a, 0x03, 0xff, 0xff, 0xff])]);
    s.ingest.handle(topics.telemetry('texas-1'), garbage);
    expect(await s.rejected('backpressure')).toBe(1);
    expect(await s.rejected('malformed')).toBe(0);
    // once the writer has room the same bytes are decoded, and found malformed
    s.fill(false);
    s.ingest.handle(topics.telemetry('texas-1'), garbage);
    expect(await s.rejected('malformed')).toBe(1);
    s.fill(true);
    s.advance(2000);
    s.publish(3, [gpu('gpu-1', s.now(), 11, 300)]);
    expect(s.registry.device('gpu-1')!.gpu!.utilizationPct).toBe(11);
    s.advance(500);
    s.publish(4, [gpu('gpu-1', s.now(), 22, 300)]);
    expect(s.registry.device('gpu-1')!.gpu!.utilizationPct).toBe(11);
    s.advance(1500);
    s.publish(5, [gpu('gpu-1', s.now(), 33, 300)]);
    expect(s.registry.device('gpu-1')!.gpu!.utilizationPct).toBe(33);
    expect(await s.rejected('backpressure')).toBe(4);
    expect(s.written.map((b) => b.seq)).toEqual([1]);
  });

  it('decodes a refused batch for the live view only when no live batch was stored for the site in the last 2 s', async () => {
    const s = setup();
    s.publish(1, [gpu('gpu-1', s.now(), 10, 300)]);
    s.fill(true);
    // a batch was stored just now: the refused one is not decoded
    s.advance(1000);
    s.publish(2, [gpu('gpu-1', s.now(), 20, 300)]);
    expect(s.registry.device('gpu-1')!.gpu!.utilizationPct).toBe(10);
    // one stored 1.5 s later keeps the view fresh: still nothing decoded
    s.fill(false);
    s.advance(500);
    s.publish(2, [gpu('gpu-1', s.now(), 30, 300)]);
    s.fill(true);
    s.advance(1900);
    s.publish(3, [gpu('gpu-1', s.now(), 40, 300)]);
    expect(s.registry.device('gpu-1')!.gpu!.utilizationPct).toBe(30);
    // a refused batch much larger than the one stored (the site's miners too) is decoded at once
    s.publish(3, [gpu('gpu-1', s.now(), 40, 300)], [asic('asic-1', s.now(), 270, 3645)]);
    expect(s.registry.device('asic-1')!.asic).not.toBeNull();
    // 2 s without one stored or decoded: the refused live batch refreshes the view
    s.advance(2000);
    s.publish(3, [gpu('gpu-1', s.now(), 50, 300)], [asic('asic-1', s.now(), 270, 3645)]);
    expect(s.registry.device('gpu-1')!.gpu!.utilizationPct).toBe(50);
    expect(await s.rejected('backpressure')).toBe(4);
  });

  it('names a batch by its stream when it has one, by its agent session otherwise, and refuses a stream with NUL', async () => {
    const s = setup();
    s.publish(1, [], [], 'sess-1');
    s.publish(1, [], [], 'sess-1', 'spool-a');
    s.publish(2, [], [], 'sess-1', 'bad\u0000stream');
    expect(s.written.map((b) => `${b.stream}:${b.seq}`)).toEqual(['sess-1:1', 'spool-a:1']);
    expect(await s.rejected('malformed')).toBe(1);
  });

  it('counts the gap only when the batch is admitted', async () => {
    const s = setup();
    s.publish(1);
    s.fill(true);
    s.publish(5);
    expect((await s.metrics.ingestSeqGaps.get()).values[0]?.value ?? 0).toBe(0);
    s.fill(false);
    s.publish(5);
    expect((await s.metrics.ingestSeqGaps.get()).values[0]?.value).toBe(3);
  });

  it('observe (the live view of a replica that stores only its share): updates the registry, stores, counts and marks nothing', async () => {
    const s = setup();
    s.observe(7, s.now(), [gpu('gpu-1', s.now(), 42, 500), gpu('gpu-9', s.now(), 1, 1)]);
    expect(s.registry.device('gpu-1')!.gpu).not.toBeNull();
    expect(s.registry.device('gpu-1')!.lastSeenMs).toBe(s.now());
    expect(s.written).toHaveLength(0);
    expect(await s.rejected('unknown_device')).toBe(0);
    // the same seq to store later is not a duplicate: observe marked nothing
    s.publish(7);
    expect(s.written).toHaveLength(1);
    // backlog from a spool is history, not what the device does now
    s.observe(8, s.now() - 60_000, [gpu('gpu-2', s.now() - 60_000, 10, 300)]);
    expect(s.registry.device('gpu-2')!.gpu).toBeNull();
    // bytes that are no batch, and a topic that is no telemetry, are skipped without a throw
    s.ingest.observe(topics.telemetry('texas-1'), Buffer.from([0xff, 0xff, 0xff]));
    s.ingest.observe('hcp/v1/nope', Buffer.alloc(0));
    expect(await s.rejected('malformed')).toBe(0);
  });
});
