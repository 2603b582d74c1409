// The hot ingest path: whole telemetry batches, buffered and written in bulk, each flush in ONE
// transaction with the ledger of committed batches (schema.ts telemetryBatches):
//   1. INSERT the flush's batch keys (site, stream, seq) ON CONFLICT DO NOTHING RETURNING: the
//      keys returned are the batches new to the ledger;
//   2. INSERT the samples of those batches only (INSERT … SELECT FROM unnest($1::…[], …): one bind
//      parameter per column whatever the row count, where Drizzle would build one per value and
//      stop at 65,534; docs/architecture.md);
//   3. COMMIT, then report every key of the flush as committed, those found ledgered already too.
// So a batch replayed by its agent, redelivered by the broker or taken by two replicas at once
// lands exactly once: a second transaction inserting the same key waits on the first's row lock
// and then does nothing (PostgreSQL docs, INSERT "ON CONFLICT Clause"). Keys are inserted in
// sorted order, so two writers never wait on each other in a cycle. A fault that cuts the COMMIT
// off leaves the outcome unknown; the retry finds the keys ledgered if it happened and writes
// nothing twice. The same statements run on PostgreSQL, TimescaleDB and PGlite.
//
// A sample the database refuses for its content (a value out of its column's range that ingest
// did not catch) must not stop the rest: the flush is rolled back and written again in careful
// mode, each probe of dead-letter.ts's search in a SAVEPOINT of the one transaction, so the bad
// samples are dead-lettered (logged, counted db_rejected) and the batch is ledgered with the rows
// it stored. Only a database fault keeps the batches for another attempt (backoff 100 ms doubling
// to 5 s).
//
// The buffer is bounded in bytes (the batches' protobuf size), not rows, and a batch that does
// not fit is refused whole at intake (offer() says 'backpressure'): it is not ledgered, the
// agent keeps it in its spool and sends it again later. Nothing is dropped by kind. A batch sent
// longer than backlogAgeMs ago is backlog (a spool replay, a broker's queue after an outage) and
// may fill only backlogShare of the buffer, so live batches always have room; each flush takes
// live batches first and fills up with backlog, and flushes follow each other at once while
// backlog or a full flush waits (docs/reliability.md "Control plane: acknowledge after commit").
import type { Logger } from 'pino';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import type { CounterLike, GaugeLike, HistogramLike } from './batch-writer.js';
import { CopyRefusedError, type Db, type DbTx } from './client.js';
import { createDeadLetterLog } from './dead-letter-log.js';
import { writeWithDeadLetters, type DeadLetter } from './dead-letter.js';
import { classifyDbError, dbMessage } from './db-error.js';
import { pruneLedger } from './telemetry-ledger.js';

/** one telemetry batch, as ingest accepted it */
export interface TelemetryBatchIn {
  site: string;
  /** TelemetryBatch.stream, or its agent_session when it has none */
  stream: string;
  seq: number;
  sentAtMs: number;
  /** the samples ingest accepted; none when every sample was bad (ledgered with 0 rows) */
  gpus: GpuSample[];
  asics: AsicSample[];
  /** its size on the wire: what the buffer's bound counts */
  bytes: number;
}

/**
 * accepted: buffered, to be committed; pending: the same batch is buffered already (a redelivery);
 * backpressure: no room (or closed), not taken: the agent sends it again later
 */
export type Admission = 'accepted' | 'pending' | 'backpressure';

export interface CommittedBatch {
  site: string;
  stream: string;
  seq: number;
  /** samples it stored */
  rows: number;
  /** false: it was in the ledger already (a replay, or another replica's); nothing was written again */
  stored: boolean;
}

export interface TelemetryWriter {
  /** takes a whole batch into the buffer, or refuses it */
  offer(batch: TelemetryBatchIn): Admission;
  /**
   * Whether offer() would find room for a batch of this size and age, asked before the batch is
   * decoded. false is a refusal: it counts towards the rate-limited "buffer full" line.
   */
  hasRoomFor(bytes: number, sentAtMs: number): boolean;
  /** told of every flush's batches after its commit */
  onCommitted(fn: (batches: CommittedBatch[]) => void): () => void;
  /** bytes of the batches not yet committed */
  readonly bufferedBytes: number;
  /** writes everything buffered so far (stops at a fault; never throws) */
  flush(): Promise<void>;
  /** stops intake and the timers and drains; idempotent */
  close(): Promise<void>;
}

/**
 * The counters the writer moves, by shape: control-plane/metrics.ts's Prometheus metrics fit, and
 * db/ does not import them.
 */
export interface TelemetryWriterMetrics {
  ingestSamples: CounterLike<'kind'>;
  ingestRejected: CounterLike<'reason'>;
  dbRejectedRows: CounterLike<'writer'>;
  ingestBuffered: GaugeLike;
  ingestBufferedBytes: GaugeLike;
  ingestFlush: HistogramLike;
  ingestLag: HistogramLike;
  /** the newest sample time committed, in Unix seconds */
  ingestNewestSample?: GaugeLike;
  /** flushes whose COPY the server refused, written again by unnest */
  ingestCopyRefused?: { inc(): void };
}

/** 32 MiB: the reasoning is in docs/reliability.md */
export const DEFAULT_MAX_BUFFER_BYTES = 32 * 1024 * 1024;

export interface TelemetryWriterOptions {
  db: Db;
  metrics: TelemetryWriterMetrics;
  log: Logger;
  flushIntervalMs: number;
  /** samples one flush takes at most (whole batches; at least one); a full flush is written at once */
  maxRows: number;
  /** false: samples by unnest even on PostgreSQL (default: by COPY there) */
  copy?: boolean;
  /** flushes in flight at once, each a transaction on its own connection (default 1) */
  concurrency?: number;
  /** the buffer's bound, in wire bytes of the batches not yet committed */
  maxBufferBytes?: number;
  /** a batch sent longer ago than this is backlog */
  backlogAgeMs?: number;
  /** the share of maxBufferBytes backlog may fill */
  backlogShare?: number;
  /** ledger rows older than this are deleted (0: never) */
  ledgerRetentionMs?: number;
  pruneEveryMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** how long close() keeps retrying a faulty database */
  closeTimeoutMs?: number;
  now?: () => number;
}

export const GPU_STATE_NAME: Record<number, string> = {
  [GpuState.GPU_STATE_IDLE]: 'idle',
  [GpuState.GPU_STATE_BUSY]: 'busy',
  [GpuState.GPU_STATE_FAULT]: 'fault',
};
export const MINING_STATE_NAME: Record<number, string> = {
  [MiningState.MINING_STATE_MINING]: 'mining',
  [MiningState.MINING_STATE_RAMPING]: 'ramping',
  [MiningState.MINING_STATE_SLEEPING]: 'sleeping',
  [MiningState.MINING_STATE_FAULT]: 'fault',
  [MiningState.MINING_STATE_UNREACHABLE]: 'unreachable',
};

const pgArray = (xs: number[]) => `{${xs.map((x) => (Number.isFinite(x) ? String(x) : 'NULL')).join(',')}}`;

const LEDGER_SQL = `
INSERT INTO telemetry_batches (site_id, stream, seq, rows)
SELECT s, st, q, n FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[]) WITH ORDINALITY AS b(s, st, q, n, i)
ORDER BY i
ON CONFLICT DO NOTHING
RETURNING site_id, stream, seq::float8 AS seq`;

const LEDGER_ROWS_SQL = `
UPDATE telemetry_batches t SET rows = d.n
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[]) AS d(s, st, q, n)
WHERE t.site_id = d.s AND t.stream = d.st AND t.seq = d.q`;

const GPU_SQL = `
INSERT INTO gpu_telemetry (time, site_id, device_id, utilization_pct, memory_used_mib, memory_total_mib,
  temperature_c, memory_temperature_c, power_w, power_limit_w, sm_clock_mhz, state, workload_id, energy_mj, xid_errors)
SELECT to_timestamp(t / 1000.0), s, d, u, mu, mt, tc, mtc, p, pl, clk, st, nullif(w, ''), e, x
FROM unnest($1::float8[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
            $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::text[], $13::text[], $14::int8[], $15::int4[])
  AS r(t, s, d, u, mu, mt, tc, mtc, p, pl, clk, st, w, e, x)
ON CONFLICT DO NOTHING`;

const ASIC_SQL = `
INSERT INTO asic_telemetry (time, site_id, device_id, hashrate_5s_ths, hashrate_avg_ths, power_w,
  board_temperatures_c, chip_temperatures_c, max_chip_temperature_c, fan_rpm, accepted_shares, rejected_shares,
  hardware_errors, mining_state, power_target_w)
SELECT to_timestamp(t / 1000.0), s, d, h5, hav, p, bt::real[], ct::real[], mct, fan::int4[], acc, rej, hw, ms, nullif(pt, 0)
FROM unnest($1::float8[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::text[], $8::text[],
            $9::float8[], $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::text[], $15::float8[])
  AS r(t, s, d, h5, hav, p, bt, ct, mct, fan, acc, rej, hw, ms, pt)
ON CONFLICT DO NOTHING`;

interface Row<S> {
  site: string;
  s: S;
  entry: Entry;
}

const gpuParams = (rows: Row<GpuSample>[]) => [
  rows.map((r) => r.s.tsMs), rows.map((r) => r.site), rows.map((r) => r.s.deviceId), rows.map((r) => r.s.utilizationPct),
  rows.map((r) => r.s.memoryUsedMib), rows.map((r) => r.s.memoryTotalMib), rows.map((r) => r.s.temperatureC),
  rows.map((r) => r.s.memoryTemperatureC), rows.map((r) => r.s.powerW), rows.map((r) => r.s.powerLimitW),
  rows.map((r) => r.s.smClockMhz), rows.map((r) => GPU_STATE_NAME[r.s.state] ?? 'unknown'),
  rows.map((r) => r.s.workloadId), rows.map((r) => r.s.energyMj), rows.map((r) => r.s.xidErrors),
];

const asicParams = (rows: Row<AsicSample>[]) => [
  rows.map((r) => r.s.tsMs), rows.map((r) => r.site), rows.map((r) => r.s.deviceId), rows.map((r) => r.s.hashrate5sThs),
  rows.map((r) => r.s.hashrateAvgThs), rows.map((r) => r.s.powerW), rows.map((r) => pgArray(r.s.boardTemperaturesC)),
  rows.map((r) => pgArray(r.s.chipTemperaturesC)),
  rows.map((r) => (r.s.chipTemperaturesC.length ? Math.max(...r.s.chipTemperaturesC) : null)),
  rows.map((r) => pgArray(r.s.fanRpm)), rows.map((r) => r.s.acceptedShares), rows.map((r) => r.s.rejectedShares),
  rows.map((r) => r.s.hardwareErrors), rows.map((r) => MINING_STATE_NAME[r.s.miningState] ?? 'unknown'),
  rows.map((r) => r.s.powerTargetW),
];

// COPY's text format (PostgreSQL docs, COPY "Text Format"): tab between columns, \N for NULL,
// and a backslash, tab, newline or carriage return in a value escaped. Ingest's checks
// (ingest/sample-checks.ts) let no NUL and no non-finite number through; a value the server
// still refuses fails the COPY, and the flush is written again by unnest to find it. Arrays are
// the same literal text (pgArray) in both.
const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_ESCAPE = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyText = (v: string) => (COPY_SPECIAL.test(v) ? v.replace(COPY_ESCAPE, (c) => COPY_ESCAPES[c]!) : v);
const copyNum = (v: number) => (Number.isFinite(v) ? String(v) : '\\N');
/** ISO time of a sample; the rows of one batch mostly share one */
const isoTimes = () => {
  let last = NaN;
  let iso = '';
  return (tsMs: number) => (tsMs === last ? iso : ((last = tsMs), (iso = new Date(tsMs).toISOString())));
};

const GPU_COPY = `COPY gpu_telemetry (time, site_id, device_id, utilization_pct, memory_used_mib, memory_total_mib, temperature_c,
  memory_temperature_c, power_w, power_limit_w, sm_clock_mhz, state, workload_id, energy_mj, xid_errors) FROM STDIN`;
const ASIC_COPY = `COPY asic_telemetry (time, site_id, device_id, hashrate_5s_ths, hashrate_avg_ths, power_w, board_temperatures_c,
  chip_temperatures_c, max_chip_temperature_c, fan_rpm, accepted_shares, rejected_shares, hardware_errors, mining_state, power_target_w) FROM STDIN`;

/** COPY lines per chunk of the COPY's body (client.ts copyIn: the event loop goes on between chunks) */
const COPY_CHUNK_ROWS = 500;

/** the same row GPU_SQL makes of a sample, as COPY lines, a chunk at a time */
function* gpuCopy(rows: Row<GpuSample>[]): Generator<string> {
  const iso = isoTimes();
  let out = '';
  let n = 0;
  for (const { site, s } of rows) {
    if (n++ === COPY_CHUNK_ROWS) {
      yield out;
      out = '';
      n = 1;
    }
    out += `${iso(s.tsMs)}\t${copyText(site)}\t${copyText(s.deviceId)}\t${copyNum(s.utilizationPct)}\t${copyNum(s.memoryUsedMib)}\t${copyNum(s.memoryTotalMib)}\t${copyNum(s.temperatureC)}\t${copyNum(s.memoryTemperatureC)}\t${copyNum(s.powerW)}\t${copyNum(s.powerLimitW)}\t${copyNum(s.smClockMhz)}\t${GPU_STATE_NAME[s.state] ?? 'unknown'}\t${s.workloadId ? copyText(s.workloadId) : '\\N'}\t${copyNum(s.energyMj)}\t${copyNum(s.xidErrors)}\n`;
  }
  if (out) yield out;
}

/** the same row ASIC_SQL makes of a sample, as COPY lines, a chunk at a time */
function* asicCopy(rows: Row<AsicSample>[]): Generator<string> {
  const iso = isoTimes();
  let out = '';
  let n = 0;
  for (const { site, s } of rows) {
    if (n++ === COPY_CHUNK_ROWS) {
      yield out;
      out = '';
      n = 1;
    }
    const maxChip = s.chipTemperaturesC.length ? copyNum(Math.max(...s.chipTemperaturesC)) : '\\N';
    out += `${iso(s.tsMs)}\t${copyText(site)}\t${copyText(s.deviceId)}\t${copyNum(s.hashrate5sThs)}\t${copyNum(s.hashrateAvgThs)}\t${copyNum(s.powerW)}\t${pgArray(s.boardTemperaturesC)}\t${pgArray(s.chipTemperaturesC)}\t${maxChip}\t${pgArray(s.fanRpm)}\t${copyNum(s.acceptedShares)}\t${copyNum(s.rejectedShares)}\t${copyNum(s.hardwareErrors)}\t${MINING_STATE_NAME[s.miningState] ?? 'unknown'}\t${s.powerTargetW ? copyNum(s.powerTargetW) : '\\N'}\n`;
  }
  if (out) yield out;
}

interface Entry {
  b: TelemetryBatchIn;
  key: string;
  backlog: boolean;
  rows: number;
}

interface Outcome {
  fresh: Set<string>;
  deadGpus: DeadLetter<Row<GpuSample>>[];
  deadAsics: DeadLetter<Row<AsicSample>>[];
}

export const batchKey = (site: string, stream: string, seq: number) => `${site}\u0000${stream}\u0000${seq}`;
const byKey = (a: Entry, b: Entry) =>
  a.b.site < b.b.site ? -1 : a.b.site > b.b.site ? 1 : a.b.stream < b.b.stream ? -1 : a.b.stream > b.b.stream ? 1 : a.b.seq - b.b.seq;

const WARN_EVERY_MS = 10_000;

export function createTelemetryWriter(o: TelemetryWriterOptions): TelemetryWriter {
  const now = o.now ?? Date.now;
  const maxBytes = o.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
  const backlogAgeMs = o.backlogAgeMs ?? 10_000;
  const backlogBytesMax = maxBytes * (o.backlogShare ?? 0.5);
  const maxRows = Math.max(1, o.maxRows);
  const retryMinMs = o.retryMinMs ?? 100;
  const retryMaxMs = o.retryMaxMs ?? 5_000;
  const m = o.metrics;

  // waiting (not in flight), oldest first; live batches go out before backlog
  let live: Entry[] = [];
  let backlog: Entry[] = [];
  /** keys waiting or in flight: a second copy is 'pending', not buffered twice */
  const keys = new Set<string>();
  let bytes = 0;
  let backlogBytes = 0;
  let samples = 0;
  let waitingRows = 0;
  /** flushes being written, each in its own transaction on its own connection */
  const inFlight = new Set<Promise<boolean>>();
  const maxInFlight = Math.max(1, o.concurrency ?? 1);
  const settled = async () => {
    while (inFlight.size) await Promise.all(inFlight);
  };
  let closed = false;
  let delayMs = 0;
  let retryAt = 0;
  const listeners = new Set<(b: CommittedBatch[]) => void>();
  const deadGpuLog = createDeadLetterLog<Row<GpuSample>>({ log: o.log, writer: 'gpu_telemetry', count: (n) => rejected('gpu_telemetry', n) });
  const deadAsicLog = createDeadLetterLog<Row<AsicSample>>({ log: o.log, writer: 'asic_telemetry', count: (n) => rejected('asic_telemetry', n) });
  function rejected(table: string, n: number) {
    m.ingestRejected.inc({ reason: 'db_rejected' }, n);
    m.dbRejectedRows.inc({ writer: table }, n);
  }
  const identify = (r: Row<GpuSample> | Row<AsicSample>) => ({ site: r.site, device: r.s.deviceId, stream: r.entry.b.stream, seq: r.entry.b.seq });
  const gauges = () => {
    m.ingestBuffered.set(samples);
    m.ingestBufferedBytes.set(bytes);
  };
  let lastFullWarn = -Infinity;
  let newestCommitted = 0;
  let refusedSinceWarn = 0;

  const release = (e: Entry) => {
    keys.delete(e.key);
    bytes -= e.b.bytes;
    if (e.backlog) backlogBytes -= e.b.bytes;
    samples -= e.rows;
  };

  /** whole batches for one flush: live first, then backlog, up to maxRows samples (at least one batch) */
  const take = (): Entry[] => {
    const taken: Entry[] = [];
    let rows = 0;
    for (const q of [live, backlog]) {
      let i = 0;
      while (i < q.length && (taken.length === 0 || rows + q[i]!.rows <= maxRows)) {
        taken.push(q[i]!);
        rows += q[i]!.rows;
        i++;
      }
      q.splice(0, i);
    }
    waitingRows -= rows;
    return taken;
  };

  /** back in front of what came since, in their order */
  const putBack = (taken: Entry[]) => {
    live = [...taken.filter((e) => !e.backlog), ...live];
    backlog = [...taken.filter((e) => e.backlog), ...backlog];
    for (const e of taken) waitingRows += e.rows;
  };

  // each probe of the dead-letter search in a savepoint: a refused statement undoes only itself
  const savepointed = <R>(tx: DbTx, text: string, params: (rows: R[]) => unknown[]) => (rows: R[]) =>
    tx.savepoint((sp) => sp.query(text, params(rows)));

  /**
   * one transaction: ledger, then the new batches' samples, by COPY (PostgreSQL), by unnest, or
   * careful: by unnest, each probe in a savepoint, dead-lettering the bad samples
   */
  type Mode = 'copy' | 'unnest' | 'careful';
  const transact = (batch: Entry[], mode: Mode): Promise<Outcome> =>
    o.db.transaction(async (tx) => {
      const sorted = [...batch].sort(byKey);
      const fresh = new Set(
        (await tx.query<{ site_id: string; stream: string; seq: number }>(LEDGER_SQL, [
          sorted.map((e) => e.b.site), sorted.map((e) => e.b.stream), sorted.map((e) => e.b.seq), sorted.map((e) => e.rows),
        ], { prepare: true })).map((r) => batchKey(r.site_id, r.stream, Number(r.seq))),
      );
      const stored = sorted.filter((e) => fresh.has(e.key));
      const gpus: Row<GpuSample>[] = stored.flatMap((e) => e.b.gpus.map((s) => ({ site: e.b.site, s, entry: e })));
      const asics: Row<AsicSample>[] = stored.flatMap((e) => e.b.asics.map((s) => ({ site: e.b.site, s, entry: e })));
      if (mode === 'copy' && tx.copyIn) {
        if (gpus.length) await tx.copyIn(GPU_COPY, gpuCopy(gpus));
        if (asics.length) await tx.copyIn(ASIC_COPY, asicCopy(asics));
        return { fresh, deadGpus: [], deadAsics: [] };
      }
      if (mode !== 'careful') {
        if (gpus.length) await tx.query(GPU_SQL, gpuParams(gpus));
        if (asics.length) await tx.query(ASIC_SQL, asicParams(asics));
        return { fresh, deadGpus: [], deadAsics: [] };
      }
      const deadGpus = await writeWithDeadLetters(gpus, savepointed(tx, GPU_SQL, gpuParams));
      const deadAsics = await writeWithDeadLetters(asics, savepointed(tx, ASIC_SQL, asicParams));
      const lost = new Map<Entry, number>();
      for (const d of [...deadGpus, ...deadAsics]) lost.set(d.row.entry, (lost.get(d.row.entry) ?? 0) + 1);
      if (lost.size) {
        const es = [...lost.keys()];
        await tx.query(LEDGER_ROWS_SQL, [es.map((e) => e.b.site), es.map((e) => e.b.stream), es.map((e) => e.b.seq), es.map((e) => e.rows - lost.get(e)!)]);
      }
      return { fresh, deadGpus, deadAsics };
    });

  /**
   * writes by COPY where the database has it; a refused COPY (its reason unknown: client.ts
   * CopyRefusedError; a sample the server refuses, or one already stored, which COPY cannot skip
   * as ON CONFLICT DO NOTHING does) is written again by unnest; then careful mode on a content
   * error, and one batch at a time after that
   */
  const write = async (taken: Entry[]): Promise<{ outcome: Outcome; refused: Entry[] }> => {
    if (o.db.kind === 'postgres' && o.copy !== false) {
      try {
        return { outcome: await transact(taken, 'copy'), refused: [] };
      } catch (err) {
        // refused (its reason unknown), or a content error the server sent while the stream was open
        if (!(err instanceof CopyRefusedError) && classifyDbError(err) !== 'content') throw err;
        m.ingestCopyRefused?.inc();
      }
    }
    try {
      return { outcome: await transact(taken, 'unnest'), refused: [] };
    } catch (err) {
      if (classifyDbError(err) !== 'content') throw err;
    }
    try {
      return { outcome: await transact(taken, 'careful'), refused: [] };
    } catch (err) {
      if (classifyDbError(err) !== 'content') throw err;
    }
    // a content error outside the samples (the ledger row itself): each batch alone, so only
    // the one the database refuses is refused
    const all: Outcome = { fresh: new Set(), deadGpus: [], deadAsics: [] };
    const refused: Entry[] = [];
    for (const e of taken) {
      try {
        const one = await transact([e], 'careful');
        for (const k of one.fresh) all.fresh.add(k);
        all.deadGpus.push(...one.deadGpus);
        all.deadAsics.push(...one.deadAsics);
      } catch (err) {
        if (classifyDbError(err) !== 'content') throw err;
        refused.push(e);
      }
    }
    return { outcome: all, refused };
  };

  const writeOnce = async (): Promise<boolean> => {
    if (live.length + backlog.length === 0) return true;
    const taken = take();
    const started = now();
    let result: Awaited<ReturnType<typeof write>>;
    try {
      result = await write(taken);
    } catch (err) {
      putBack(taken);
      delayMs = delayMs === 0 ? retryMinMs : Math.min(retryMaxMs, delayMs * 2);
      retryAt = now() + delayMs;
      o.log.error({ err, writer: 'telemetry', batches: taken.length, retryInMs: delayMs, dbMessage: dbMessage(err) }, 'telemetry write failed; will retry');
      return false;
    }
    delayMs = 0;
    retryAt = 0;
    const t = now();
    m.ingestFlush.observe((t - started) / 1000);
    const { outcome, refused } = result;
    deadGpuLog(outcome.deadGpus, identify);
    deadAsicLog(outcome.deadAsics, identify);
    const refusedSet = new Set(refused);
    if (refused.length) {
      // the database refused the batch's own ledger row: counted and logged, never retried
      m.ingestRejected.inc({ reason: 'db_rejected' }, refused.length);
      o.log.error({ batches: refused.slice(0, 5).map((e) => ({ site: e.b.site, stream: e.b.stream, seq: e.b.seq })), count: refused.length }, 'telemetry batch refused by the database; dropped');
    }
    const dead = new Map<Entry, number>();
    for (const d of [...outcome.deadGpus, ...outcome.deadAsics]) dead.set(d.row.entry, (dead.get(d.row.entry) ?? 0) + 1);
    const deadGpuCount = outcome.deadGpus.length;
    const deadAsicCount = outcome.deadAsics.length;
    let gpuRows = 0;
    let asicRows = 0;
    let replays = 0;
    let newest = 0;
    const committed: CommittedBatch[] = [];
    for (const e of taken) {
      release(e);
      if (refusedSet.has(e)) continue;
      const stored = outcome.fresh.has(e.key);
      if (stored) {
        gpuRows += e.b.gpus.length;
        asicRows += e.b.asics.length;
        for (const g of e.b.gpus) if (g.tsMs > newest) newest = g.tsMs;
        for (const a of e.b.asics) if (a.tsMs > newest) newest = a.tsMs;
      } else replays++;
      m.ingestLag.observe(Math.max(0, (t - e.b.sentAtMs) / 1000));
      committed.push({ site: e.b.site, stream: e.b.stream, seq: e.b.seq, rows: stored ? e.rows - (dead.get(e) ?? 0) : 0, stored });
    }
    if (gpuRows - deadGpuCount > 0) m.ingestSamples.inc({ kind: 'gpu' }, gpuRows - deadGpuCount);
    if (asicRows - deadAsicCount > 0) m.ingestSamples.inc({ kind: 'asic' }, asicRows - deadAsicCount);
    // found in the ledger: a replay or a redelivery, committed before (by this replica or another)
    if (replays) m.ingestRejected.inc({ reason: 'duplicate' }, replays);
    if (newest > newestCommitted) {
      newestCommitted = newest;
      m.ingestNewestSample?.set(newest / 1000);
    }
    gauges();
    for (const fn of listeners) {
      try {
        fn(committed);
      } catch (err) {
        o.log.error({ err }, 'telemetry commit listener failed');
      }
    }
    return true;
  };

  const run = (): Promise<boolean> => {
    const p: Promise<boolean> = writeOnce().finally(() => {
      inFlight.delete(p);
    });
    inFlight.add(p);
    void p.then((ok) => {
      // backlog drains at full speed: the next flush follows at once while backlog or a full flush waits
      if (ok && !closed && (waitingRows >= maxRows || backlog.length > 0)) setImmediate(kick);
    });
    return p;
  };
  const due = () => inFlight.size < maxInFlight && live.length + backlog.length > 0 && now() >= retryAt;
  /** as many flushes as may be in flight: a full one at once, a partial one only when none is */
  function kick() {
    while (due() && (inFlight.size === 0 || waitingRows >= maxRows || backlog.length > 0)) void run();
  }
  const timer = setInterval(kick, o.flushIntervalMs);
  timer.unref();

  let pruning = false;
  const retention = o.ledgerRetentionMs ?? 48 * 3600_000;
  const pruneTimer = retention > 0
    ? setInterval(() => {
      if (pruning) return;
      pruning = true;
      pruneLedger(o.db, retention)
        .then((n) => {
          if (n > 0) o.log.debug({ rows: n }, 'telemetry ledger pruned');
        })
        .catch((err) => o.log.warn({ err: dbMessage(err) }, 'telemetry ledger prune failed; will retry'))
        .finally(() => {
          pruning = false;
        });
    }, o.pruneEveryMs ?? 60_000)
    : null;
  pruneTimer?.unref();

  const refuse = (b: TelemetryBatchIn | null, isBacklog: boolean): Admission => {
    refusedSinceWarn++;
    const t = now();
    if (t - lastFullWarn >= WARN_EVERY_MS) {
      o.log.warn({ refused: refusedSinceWarn, site: b?.site, backlog: isBacklog, bufferedBytes: bytes, backlogBytes, maxBytes },
        'telemetry buffer full: batches refused; agents send them again');
      lastFullWarn = t;
      refusedSinceWarn = 0;
    }
    return 'backpressure';
  };

  // an empty buffer takes any one batch, so a batch larger than the bound still gets through
  const room = (size: number, isBacklog: boolean) =>
    !closed && (bytes === 0 || (bytes + size <= maxBytes && (!isBacklog || backlogBytes + size <= backlogBytesMax)));

  return {
    hasRoomFor(size, sentAtMs) {
      const isBacklog = now() - sentAtMs > backlogAgeMs;
      if (room(size, isBacklog)) return true;
      refuse(null, isBacklog);
      return false;
    },
    offer(b) {
      const key = batchKey(b.site, b.stream, b.seq);
      if (keys.has(key)) return 'pending';
      const isBacklog = now() - b.sentAtMs > backlogAgeMs;
      if (!room(b.bytes, isBacklog)) return refuse(b, isBacklog);
      const e: Entry = { b, key, backlog: isBacklog, rows: b.gpus.length + b.asics.length };
      keys.add(key);
      bytes += b.bytes;
      if (isBacklog) backlogBytes += b.bytes;
      samples += e.rows;
      waitingRows += e.rows;
      (isBacklog ? backlog : live).push(e);
      gauges();
      if (waitingRows >= maxRows) kick();
      return 'accepted';
    },
    onCommitted(fn) {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    get bufferedBytes() {
      return bytes;
    },
    async flush() {
      await settled();
      const waiting = new Set([...live, ...backlog]);
      while ([...live, ...backlog].some((e) => waiting.has(e))) {
        await settled();
        if (!(await run())) return;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (pruneTimer) clearInterval(pruneTimer);
      // several writers close one after another inside main.ts's 10 s shutdown deadline
      const deadline = now() + (o.closeTimeoutMs ?? 3000);
      await settled();
      while (live.length + backlog.length > 0) {
        if (await run()) continue;
        // the backoff may have grown long while the database was away: at close, try again soon
        const wait = Math.min(delayMs, 250, deadline - now());
        if (wait <= 0) break;
        await new Promise((r) => setTimeout(r, wait));
      }
      const left = [...live, ...backlog];
      if (left.length) {
        // not ledgered, so not acknowledged: the agents send them again to whichever replica is up
        m.ingestRejected.inc({ reason: 'closed' }, left.length);
        o.log.warn({ batches: left.length, samples: left.reduce((n, e) => n + e.rows, 0) }, 'telemetry not written before close; the agents keep it');
        for (const e of left) release(e);
        live = [];
        backlog = [];
        waitingRows = 0;
        gauges();
      }
    },
  };
}
