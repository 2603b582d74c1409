// What the control plane does with one MQTT message: parse the topic, read the batch's identity
// (batch-header.ts), ask the writer for room, and only then decode, check, update the registry
// and offer the batch with its accepted samples to the writer. A bad message or sample
// is counted by reason and logged (rate-limited); it never throws and never drops anything but
// itself. A batch is acknowledged to its agent only once committed (TelemetryCommitted,
// commit-notifier.ts), so a batch the writer has no room for is refused (`backpressure`) and
// not marked seen: the agent keeps it in its spool and sends it again. Such a batch is refused
// before it is decoded, so overload does not spend the CPU the writer needs on refusals.
import type { Logger } from 'pino';
import { TelemetryBatch, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { decodeStatus, parseTopic } from '../../proto/topics.js';
import type { TelemetryWriter } from '../db/telemetry-writer.js';
import type { Metrics } from '../metrics.js';
import type { DeviceState, Registry } from '../registry/registry.js';
import { peekBatchHeader, type BatchHeader } from './batch-header.js';
import { checkAsicSample, checkGpuSample, type SampleWindow } from './sample-checks.js';
import { SequenceTracker } from './sequence-tracker.js';
import type { Watermarks } from './watermarks.js';

export interface IngestDeps {
  registry: Registry;
  writer: TelemetryWriter;
  metrics: Metrics;
  log: Logger;
  /** the committed watermarks (cheap duplicates); none: every batch goes to the writer's ledger */
  watermarks?: Watermarks;
  now?: () => number;
  maxAgeMs?: number;
  maxSkewMs?: number;
}

export interface Ingest {
  handle(topic: string, payload: Buffer): void;
  /**
   * A telemetry batch for the live view only: its good samples update the registry, nothing is
   * stored, counted or acknowledged. For a replica among several on one broker (docs/scaling.md):
   * the shared subscription gives it only its share of the batches to store, and this, from a
   * plain subscription, the whole fleet to see (the leader's reconciler acts on it). A bad batch
   * or sample is skipped without a count: the replica that stores the batch counts it.
   */
  observe(topic: string, payload: Buffer): void;
}

// Logging every rejected message of a misbehaving publisher would flood the log; one line per
// reason per interval carries the news, the counter carries the count.
const LOG_EVERY_MS = 10_000;
/** the longest stream (or agent_session) a batch may name */
const MAX_STREAM_CHARS = 128;
/** a batch refused for backpressure still updates the live view when it is this fresh */
const LIVE_MS = 10_000;
/** at most this often per site (a refused batch is otherwise never decoded) */
const LIVE_REFRESH_MS = 2_000;

export function createIngest(deps: IngestDeps): Ingest {
  const { registry, writer, metrics, log } = deps;
  const now = deps.now ?? Date.now;
  const seqs = new SequenceTracker({ now, watermarks: deps.watermarks });
  const lastLogged = new Map<string, number>();
  /** the sample times ingest takes at t (sample-checks.ts) */
  const windowAt = (t: number): SampleWindow => ({ nowMs: t, maxAgeMs: deps.maxAgeMs ?? 24 * 3600_000, maxSkewMs: deps.maxSkewMs ?? 300_000 });

  const reject = (reason: string, n: number, ctx: Record<string, unknown>) => {
    metrics.ingestRejected.inc({ reason }, n);
    const t = now();
    if ((lastLogged.get(reason) ?? 0) + LOG_EVERY_MS <= t) {
      lastLogged.set(reason, t);
      log.warn({ reason, dropped: n, ...ctx }, 'telemetry dropped');
    }
  };

  /**
   * when each site's live view last took a live batch, stored or refused, and its size: a refused
   * batch is decoded for it only when the view is older than LIVE_REFRESH_MS, or that batch was
   * much smaller than this one (an agent whose miners are polled at a slower cadence sends
   * batches of its GPUs alone between theirs). Above capacity most sites still have a batch
   * stored every few seconds, and decoding refused ones besides (40 sites of 2,500 devices:
   * 50,000 samples/s) spent the CPU the writer was short of.
   */
  const liveRefreshed = new Map<string, { at: number; sentAtMs: number; bytes: number }>();
  const liveCovers = (site: string, t: number, bytes: number) => {
    const last = liveRefreshed.get(site);
    return !!last && t - last.at < LIVE_REFRESH_MS && last.bytes >= bytes * 0.9;
  };

  const handleTelemetry = (site: string, topic: string, payload: Buffer) => {
    // Identity first, from the header alone (batch-header.ts): what is refused here is never decoded.
    let h: BatchHeader;
    try {
      h = peekBatchHeader(payload);
    } catch (err) {
      return reject('malformed', 1, { topic, bytes: payload.length, error: (err as Error).message });
    }
    // Protobuf decoding is lenient (unknown fields are skipped), so arbitrary bytes can decode
    // to an empty message; a batch without its identity is as malformed as one that throws.
    if (!h.siteId || !h.agentSession || h.seq < 1) {
      return reject('malformed', 1, { topic, bytes: payload.length, error: 'site_id, agent_session or seq missing' });
    }
    // the stream names the batch in the ledger (a text key): no NUL, and short
    const stream = h.stream || h.agentSession;
    if (stream.length > MAX_STREAM_CHARS || stream.includes('\u0000')) {
      return reject('malformed', 1, { topic, bytes: payload.length, error: `stream or agent_session is longer than ${MAX_STREAM_CHARS} characters or holds NUL` });
    }
    if (h.siteId !== site) return reject('site_mismatch', 1, { topic, batchSite: h.siteId });
    if (!registry.site(site)) return reject('unknown_site', 1, { topic });
    // Checked now, marked taken only once the writer admits the batch (sequence-tracker.ts).
    const verdict = seqs.check(site, stream, h.seq);
    if (verdict.kind === 'duplicate') return reject('duplicate', 1, { site, stream, seq: h.seq });
    if (verdict.kind === 'invalid') return reject('seq_invalid', 1, { site, seq: h.seq });
    if (verdict.kind === 'jump') return reject('seq_jump', 1, { site, stream, seq: h.seq, jump: verdict.jump, allowed: verdict.allowed });
    if (!writer.hasRoomFor(payload.length, h.sentAtMs)) {
      // Overload: refused undecoded, so refusing costs next to nothing. The live view (the
      // scheduler, the reconciler and the grid response act on it) is refreshed from a live
      // batch when it is LIVE_REFRESH_MS old, a bounded cost whatever the load.
      const t = now();
      const last = liveRefreshed.get(site);
      if (t - h.sentAtMs <= LIVE_MS && !liveCovers(site, t, payload.length) && h.sentAtMs > (last?.sentAtMs ?? 0) && observe(topic, payload)) {
        liveRefreshed.set(site, { at: t, sentAtMs: h.sentAtMs, bytes: payload.length });
      }
      return reject('backpressure', 1, { site, stream, seq: h.seq, bufferedBytes: writer.bufferedBytes });
    }
    let batch: TelemetryBatch;
    try {
      batch = TelemetryBatch.decode(payload);
    } catch (err) {
      return reject('malformed', 1, { topic, bytes: payload.length, error: (err as Error).message });
    }

    const t = now();
    const w = windowAt(t);
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
    // A batch whose every sample failed is still offered: it is ledgered with 0 rows (refused
    // for good), so the stream's watermark can pass it and its agent stops sending it.
    const admission = writer.offer({ site, stream, seq: h.seq, sentAtMs: h.sentAtMs, gpus, asics, bytes: payload.length });
    if (admission === 'pending') return reject('duplicate', 1, { site, stream, seq: h.seq });
    // only when the writer closed since hasRoomFor said yes (the two agree otherwise)
    if (admission === 'backpressure') return reject('backpressure', 1, { site, stream, seq: h.seq, bufferedBytes: writer.bufferedBytes });
    seqs.taken(site, stream, h.seq);
    if (verdict.missed > 0) metrics.ingestSeqGaps.inc(verdict.missed);
    for (let i = 0; i < gpus.length; i++) registry.recordGpu(gpuDevices[i]!, gpus[i]!, t);
    for (let i = 0; i < asics.length; i++) registry.recordAsic(asicDevices[i]!, asics[i]!, t);
    // a batch of samples that all failed says nothing of the site's devices; an empty one is a heartbeat
    if (gpus.length + asics.length > 0 || batch.gpus.length + batch.asics.length === 0) registry.telemetrySeen(site, t);
    if (t - h.sentAtMs <= LIVE_MS && h.sentAtMs > (liveRefreshed.get(site)?.sentAtMs ?? 0)) liveRefreshed.set(site, { at: t, sentAtMs: h.sentAtMs, bytes: payload.length });
    metrics.ingestBatches.inc();
  };

  /** true when the batch was decoded and live (whatever its samples) */
  function observe(topic: string, payload: Buffer): boolean {
    const parsed = parseTopic(topic);
    if (!parsed || parsed.kind !== 'telemetry' || !registry.site(parsed.site)) return false;
    let batch: TelemetryBatch;
    try {
      batch = TelemetryBatch.decode(payload);
    } catch {
      return false;
    }
    const t = now();
    // backlog from a spool is history: the live view shows what devices do now
    if (batch.siteId !== parsed.site || t - batch.sentAtMs > LIVE_MS) return false;
    const w = windowAt(t);
    let n = 0;
    for (const s of batch.gpus) {
      const d = registry.deviceAt(parsed.site, s.deviceId, 'gpu');
      if (!d || checkGpuSample(s, w)) continue;
      registry.recordGpu(d, s, t);
      n++;
    }
    for (const s of batch.asics) {
      const d = registry.deviceAt(parsed.site, s.deviceId, 'asic');
      if (!d || checkAsicSample(s, w)) continue;
      registry.recordAsic(d, s, t);
      n++;
    }
    if (n > 0) registry.telemetrySeen(parsed.site, t);
    return true;
  }

  return {
    observe,
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
