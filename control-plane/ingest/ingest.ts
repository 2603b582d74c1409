// What the control plane does with one MQTT message: parse the topic, decode, check, update the
// registry, and hand the accepted samples to the writer. A bad message or sample is counted by
// reason and logged (rate-limited); it never throws and never drops anything but itself.
import type { Logger } from 'pino';
import { TelemetryBatch, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { decodeStatus, parseTopic } from '../../proto/topics.js';
import type { TelemetryWriter } from '../db/telemetry-writer.js';
import type { Metrics } from '../metrics.js';
import type { DeviceState, Registry } from '../registry/registry.js';
import { checkAsicSample, checkGpuSample, type SampleWindow } from './sample-checks.js';
import { SequenceTracker } from './sequence-tracker.js';

export interface IngestDeps {
  registry: Registry;
  writer: TelemetryWriter;
  metrics: Metrics;
  log: Logger;
  now?: () => number;
  maxAgeMs?: number;
  maxSkewMs?: number;
}

export interface Ingest {
  handle(topic: string, payload: Buffer): void;
}

// Logging every rejected message of a misbehaving publisher would flood the log; one line per
// reason per interval carries the news, the counter carries the count.
const LOG_EVERY_MS = 10_000;

export function createIngest(deps: IngestDeps): Ingest {
  const { registry, writer, metrics, log } = deps;
  const now = deps.now ?? Date.now;
  const seqs = new SequenceTracker({ now });
  const lastLogged = new Map<string, number>();

  const reject = (reason: string, n: number, ctx: Record<string, unknown>) => {
    metrics.ingestRejected.inc({ reason }, n);
    const t = now();
    if ((lastLogged.get(reason) ?? 0) + LOG_EVERY_MS <= t) {
      lastLogged.set(reason, t);
      log.warn({ reason, dropped: n, ...ctx }, 'telemetry dropped');
    }
  };

  const handleTelemetry = (site: string, topic: string, payload: Buffer) => {
    let batch: TelemetryBatch;
    try {
      batch = TelemetryBatch.decode(payload);
    } catch (err) {
      return reject('malformed', 1, { topic, bytes: payload.length, error: (err as Error).message });
    }
    // Protobuf decoding is lenient (unknown fields are skipped), so arbitrary bytes can decode
    // to an empty message; a batch without its identity is as malformed as one that throws.
    if (!batch.siteId || !batch.agentSession || batch.seq < 1) {
      return reject('malformed', 1, { topic, bytes: payload.length, error: 'site_id, agent_session or seq missing' });
    }
    if (batch.siteId !== site) return reject('site_mismatch', 1, { topic, batchSite: batch.siteId });
    if (!registry.site(site)) return reject('unknown_site', 1, { topic });
    // Checked now, committed only once the batch is accepted (sequence-tracker.ts).
    const verdict = seqs.check(site, batch.agentSession, batch.seq);
    if (verdict.kind === 'duplicate') return reject('duplicate', 1, { site, seq: batch.seq });
    if (verdict.kind === 'invalid') return reject('seq_invalid', 1, { site, seq: batch.seq });
    if (verdict.kind === 'jump') return reject('seq_jump', 1, { site, seq: batch.seq, jump: verdict.jump, allowed: verdict.allowed });

    const t = now();
    const w: SampleWindow = { nowMs: t, maxAgeMs: deps.maxAgeMs ?? 24 * 3600_000, maxSkewMs: deps.maxSkewMs ?? 300_000 };
    const gpus: GpuSample[] = [];
    const gpuDevices: DeviceState[] = [];
    const asics: AsicSample[] = [];
    const asicDevices: DeviceState[] = [];
    for (const s of batch.gpus) {
      const d = registry.deviceAt(site, s.deviceId, 'gpu');
      const bad = d ? checkGpuSample(s, w) : { reason: 'unknown_device', field: 'device_id' };
      if (bad) reject(bad.reason, 1, { site, device: s.deviceId, field: bad.field });
      else {
        gpus.push(s);
        gpuDevices.push(d!);
      }
    }
    for (const s of batch.asics) {
      const d = registry.deviceAt(site, s.deviceId, 'asic');
      const bad = d ? checkAsicSample(s, w) : { reason: 'unknown_device', field: 'device_id' };
      if (bad) reject(bad.reason, 1, { site, device: s.deviceId, field: bad.field });
      else {
        asics.push(s);
        asicDevices.push(d!);
      }
    }
    // A batch whose every sample failed is not accepted: its seq might be as wrong as its
    // samples. An empty batch (a site with no devices yet) is.
    const samples = batch.gpus.length + batch.asics.length;
    if (samples > 0 && gpus.length + asics.length === 0) return;

    seqs.commit(site, batch.agentSession, batch.seq);
    if (verdict.missed > 0) metrics.ingestSeqGaps.inc(verdict.missed);
    for (let i = 0; i < gpus.length; i++) registry.recordGpu(gpuDevices[i]!, gpus[i]!, t);
    for (let i = 0; i < asics.length; i++) registry.recordAsic(asicDevices[i]!, asics[i]!, t);
    registry.telemetrySeen(site, t);
    metrics.ingestBatches.inc();
    writer.add(site, batch.sentAtMs, gpus, asics);
  };

  return {
    handle(topic, payload) {
      const parsed = parseTopic(topic);
      if (!parsed) return reject('unknown_topic', 1, { topic });
      if (parsed.kind === 'telemetry') return handleTelemetry(parsed.site, topic, payload);
      const status = decodeStatus(payload);
      if (!status || status.site !== parsed.site) return reject('malformed_status', 1, { topic });
      registry.status(status, now());
    },
  };
}
