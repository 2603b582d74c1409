// What the control plane does with one MQTT message: parse the topic, decode, check, update the
// registry, and hand the accepted samples to the writer. A bad message or sample is counted by
// reason and logged (rate-limited); it never throws and never drops anything but itself.
import type { Logger } from 'pino';
import { TelemetryBatch } from '../../proto/gen/hcp/v1/telemetry.js';
import { decodeStatus, parseTopic } from '../../proto/topics.js';
import type { TelemetryWriter } from '../db/telemetry-writer.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
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
  const seqs = new SequenceTracker();
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
    const verdict = seqs.observe(site, batch.agentSession, batch.seq);
    if (verdict.kind === 'duplicate') return reject('duplicate', 1, { site, seq: batch.seq });
    if (verdict.missed > 0) metrics.ingestSeqGaps.inc(verdict.missed);

    const t = now();
    const w: SampleWindow = { nowMs: t, maxAgeMs: deps.maxAgeMs ?? 24 * 3600_000, maxSkewMs: deps.maxSkewMs ?? 300_000 };
    const gpus = [];
    const asics = [];
    for (const s of batch.gpus) {
      const d = registry.deviceAt(site, s.deviceId, 'gpu');
      const bad = d ? checkGpuSample(s, w) : 'unknown_device';
      if (bad) reject(bad, 1, { site, device: s.deviceId });
      else {
        registry.recordGpu(d!, s, t);
        gpus.push(s);
      }
    }
    for (const s of batch.asics) {
      const d = registry.deviceAt(site, s.deviceId, 'asic');
      const bad = d ? checkAsicSample(s, w) : 'unknown_device';
      if (bad) reject(bad, 1, { site, device: s.deviceId });
      else {
        registry.recordAsic(d!, s, t);
        asics.push(s);
      }
    }
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
