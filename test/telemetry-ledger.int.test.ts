// The telemetry writer and its ledger on the real PostgreSQL: a batch lands exactly once however
// often and by however many writers it is offered; the buffer is bounded in bytes and refuses
// what does not fit (nothing dropped, nothing ledgered) until the database takes writes again;
// backlog fills only its share of the buffer; watermarks over the ledger's gaps; and a commit
// notifier hears another replica's commits through the ledger. A database that stops taking
// writes is a table lock held by another connection (the shared cluster is never stopped).
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate } from '../control-plane/db/migrate.js';
import { ledgerWatermarks, pruneLedger } from '../control-plane/db/telemetry-ledger.js';
import { createTelemetryWriter, type CommittedBatch, type TelemetryBatchIn, type TelemetryWriter, type TelemetryWriterOptions } from '../control-plane/db/telemetry-writer.js';
import { createCommitNotifier } from '../control-plane/ingest/commit-notifier.js';
import { Watermarks } from '../control-plane/ingest/watermarks.js';
import { createMetrics } from '../control-plane/metrics.js';
import type { TelemetryCommitted } from '../proto/gen/hcp/v1/gateway.js';
import { describePg } from './harness/pg.js';
import { asic, gpu } from './harness/samples.js';
import { waitFor } from './harness/wait-for.js';

const silent = pino({ level: 'silent' });

describePg('telemetry ledger on PostgreSQL', (pg) => {
  let db: Db;
  let db2: Db;
  let sql: postgres.Sql;
  const writers: TelemetryWriter[] = [];
  const open = (over: Partial<TelemetryWriterOptions> = {}, on = () => db) => {
    const metrics = createMetrics();
    const committed: CommittedBatch[] = [];
    const w = createTelemetryWriter({ db: on(), metrics, log: silent, flushIntervalMs: 20, maxRows: 5000, ...over });
    w.onCommitted((b) => void committed.push(...b));
    writers.push(w);
    return { w, metrics, committed };
  };
  /** a batch of `n` GPU samples and one ASIC sample of its own devices */
  const batch = (stream: string, seq: number, n = 3, sentAtMs = Date.now()): TelemetryBatchIn => {
    const gpus = Array.from({ length: n }, (_, i) => gpu(`gpu-${stream}-${i}`, 1_800_000_000_000 + seq * 1000, 50, 400));
    return { site: 'texas-1', stream, seq, sentAtMs, gpus, asics: [asic(`asic-${stream}`, 1_800_000_000_000 + seq * 1000, 270, 3645)], bytes: 60 + 90 * n };
  };
  const rowsOf = async (stream: string) =>
    (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id LIKE ${`gpu-${stream}-%`}`)[0]!.n +
    (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id = ${`asic-${stream}`}`)[0]!.n;
  const ledger = async (stream: string) =>
    (await sql<{ seq: string; rows: number }[]>`SELECT seq, rows FROM telemetry_batches WHERE stream = ${stream} ORDER BY seq`).map((r) => `${r.seq}:${r.rows}`);
  /** holds an ACCESS EXCLUSIVE lock on a table from another connection until release() */
  const lockTable = async (table: string) => {
    const holder = postgres(pg.url, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const done = holder.begin(async (tx) => {
      await tx.unsafe(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
      locked();
      await released;
    });
    await isLocked;
    return async () => {
      release();
      await done;
      await holder.end();
    };
  };
  const gauge = async (m: ReturnType<typeof createMetrics>['ingestBufferedBytes']) => (await m.get()).values[0]?.value ?? 0;
  const samplesWritten = async (m: ReturnType<typeof createMetrics>) => (await m.ingestSamples.get()).values.reduce((n, v) => n + v.value, 0);
  const counter = async (m: ReturnType<typeof createMetrics>, reason: string) =>
    (await m.ingestRejected.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
    db2 = await createDb({ url: pg.url, dataDir: '' });
    sql = postgres(pg.url, { onnotice: () => {} });
  });
  afterAll(async () => {
    for (const w of writers) await w.close();
    await db2?.close();
    await db?.close();
    await sql?.end();
  });

  it('writes a batch offered twice to one writer once, and reports it committed both times', async () => {
    const { w, committed, metrics } = open();
    expect(w.offer(batch('once', 1))).toBe('accepted');
    // a redelivery while it waits: one copy buffered
    expect(w.offer(batch('once', 1))).toBe('pending');
    await w.flush();
    expect(w.offer(batch('once', 1))).toBe('accepted');
    await w.flush();
    expect(await rowsOf('once')).toBe(4);
    expect(await ledger('once')).toEqual(['1:4']);
    expect(committed.map((c) => `${c.seq}:${c.stored}:${c.rows}`)).toEqual(['1:true:4', '1:false:0']);
    expect(await counter(metrics, 'duplicate')).toBe(1);
    expect(await samplesWritten(metrics)).toBe(4);
  });

  it('writes a batch handed to two writers on two connections at once exactly once; both report it committed', async () => {
    const a = open();
    const b = open({}, () => db2);
    for (let seq = 1; seq <= 20; seq++) {
      expect(a.w.offer(batch('twice', seq, 5))).toBe('accepted');
      expect(b.w.offer(batch('twice', 21 - seq, 5))).toBe('accepted');
    }
    await Promise.all([a.w.flush(), b.w.flush()]);
    expect(await rowsOf('twice')).toBe(20 * 6);
    expect((await ledger('twice')).length).toBe(20);
    const seqs = (c: CommittedBatch[]) => c.map((x) => x.seq).sort((x, y) => x - y);
    expect(seqs(a.committed)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(seqs(b.committed)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // each batch stored by exactly one of them
    const stored = [...a.committed, ...b.committed].filter((c) => c.stored).map((c) => c.seq).sort((x, y) => x - y);
    expect(stored).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // and its samples written by that one only (the telemetry tables' own (device, time) key would
    // hide a second insert from the row count; the writers' counts do not)
    expect(await samplesWritten(a.metrics) + await samplesWritten(b.metrics)).toBe(20 * 6);
  });

  it('stores by COPY exactly the rows unnest stores: times, NULLs, arrays, escapes, large counters', async () => {
    const t = 1_800_000_123_456;
    // rows are unique by device and time, so each writer's devices are named after its site
    const odd = (site: string, seq: number): TelemetryBatchIn => ({
      site, stream: `eq-${site}`, seq, sentAtMs: Date.now(), bytes: 500,
      gpus: [
        { ...gpu(`${site}/g-plain`, t, 12.5, 401.25), workloadId: '' },
        { ...gpu(`${site}/g\tab\\slash\nline`, t + 1, 99.9, 700), workloadId: 'wl\t1', energyMj: Number.MAX_SAFE_INTEGER, xidErrors: 2 ** 31 - 1 },
      ],
      asics: [
        { ...asic(`${site}/a-plain`, t, 270.125, 3645.5), powerTargetW: 0 },
        { ...asic(`${site}/a-empty`, t + 2, 0, 0), chipTemperaturesC: [], boardTemperaturesC: [], fanRpm: [], powerTargetW: 3100, acceptedShares: Number.MAX_SAFE_INTEGER },
      ],
    });
    const byCopy = open({ copy: true });
    const byUnnest = open({ copy: false });
    byCopy.w.offer(odd('eq-copy', 1));
    byUnnest.w.offer(odd('eq-unnest', 1));
    await byCopy.w.flush();
    await byUnnest.w.flush();
    expect(byCopy.committed).toMatchObject([{ rows: 4, stored: true }]);
    expect(byUnnest.committed).toMatchObject([{ rows: 4, stored: true }]);
    const rows = async (site: string) => ({
      gpus: (await sql`SELECT * FROM gpu_telemetry WHERE site_id = ${site} ORDER BY device_id`).map(({ site_id: _s, received_at: _r, ...r }): Record<string, unknown> => ({ ...r, device_id: String(r.device_id).slice(site.length + 1) })),
      asics: (await sql`SELECT * FROM asic_telemetry WHERE site_id = ${site} ORDER BY device_id`).map(({ site_id: _s, received_at: _r, ...r }): Record<string, unknown> => ({ ...r, device_id: String(r.device_id).slice(site.length + 1) })),
    });
    const copied = await rows('eq-copy');
    expect(copied).toEqual(await rows('eq-unnest'));
    expect(copied.gpus.map((g) => [g.device_id, g.workload_id])).toEqual([['g\tab\\slash\nline', 'wl\t1'], ['g-plain', null]]);
    expect(copied.asics.map((a) => [a.device_id, a.power_target_w, a.max_chip_temperature_c])).toEqual([['a-empty', 3100, null], ['a-plain', null, 75]]);
    expect((copied.gpus[1]!.time as Date).getTime()).toBe(t);
    expect(await counter(byCopy.metrics, 'db_rejected')).toBe(0);
    // and it was COPY that stored them, not the fallback
    expect((await byCopy.metrics.ingestCopyRefused.get()).values[0]?.value ?? 0).toBe(0);
  });

  it('writes a flush again by unnest when the server refuses its COPY (a sample stored already), and stores the rest', async () => {
    const { w, committed, metrics } = open({ copy: true });
    // the same device and time under another batch key (rows are unique by device and time):
    // COPY cannot skip it as ON CONFLICT does
    w.offer(batch('copy-dup-a', 1));
    await w.flush();
    w.offer({ ...batch('copy-dup-a', 1), stream: 'copy-dup-b', asics: [...batch('copy-dup-a', 1).asics, asic('asic-copy-dup-b-new', 1_800_000_001_000, 1, 1)] });
    await w.flush();
    expect(committed.map((c) => `${c.stream}:${c.stored}`)).toEqual(['copy-dup-a:true', 'copy-dup-b:true']);
    expect((await metrics.ingestCopyRefused.get()).values[0]?.value).toBe(1);
    expect((await sql`SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id = 'asic-copy-dup-b-new'`)[0]!.n).toBe(1);
    expect(await rowsOf('copy-dup-a')).toBe(4);
  });

  it('sends a COPY of many chunks whole, and one refused in a later chunk is written again by unnest', async () => {
    // 1,201 ASIC rows and 1,203 GPU rows: several of the COPY's chunks (telemetry-writer.ts COPY_CHUNK_ROWS)
    const big = (stream: string, seq: number): TelemetryBatchIn => ({
      ...batch(stream, seq, 1203),
      asics: Array.from({ length: 1201 }, (_, i) => asic(`asic-${stream}-${i}`, 1_800_000_000_000 + seq * 1000, 270, 3645)),
    });
    const asicsOf = async (stream: string) => (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id LIKE ${`asic-${stream}-%`}`)[0]!.n;
    const { w, committed, metrics } = open({ copy: true });
    w.offer(big('chunks-a', 1));
    await w.flush();
    expect(committed).toMatchObject([{ stream: 'chunks-a', rows: 2404, stored: true }]);
    expect(await asicsOf('chunks-a')).toBe(1201);
    expect(await rowsOf('chunks-a')).toBe(1203);
    expect((await metrics.ingestCopyRefused.get()).values[0]?.value ?? 0).toBe(0);
    // the 1,101st ASIC row (the third chunk) stored already under another key: COPY is refused
    // after its first chunks went, and the flush is written again by unnest, all but that row
    const dup = asic('asic-chunks-a-1100', 1_800_000_001_000, 270, 3645);
    const again = big('chunks-b', 1);
    again.asics[1100] = dup;
    w.offer(again);
    await w.flush();
    expect(committed.map((c) => `${c.stream}:${c.stored}`)).toEqual(['chunks-a:true', 'chunks-b:true']);
    expect((await metrics.ingestCopyRefused.get()).values[0]?.value).toBe(1);
    expect(await asicsOf('chunks-b')).toBe(1200);
    expect(await rowsOf('chunks-b')).toBe(1203);
  });

  it('ledgers a batch whose every sample was bad with 0 rows', async () => {
    const { w, committed } = open();
    w.offer({ ...batch('allbad', 1), gpus: [], asics: [] });
    await w.flush();
    expect(await ledger('allbad')).toEqual(['1:0']);
    expect(committed).toMatchObject([{ seq: 1, rows: 0, stored: true }]);
  });

  it('refuses what does not fit in its bytes while the database takes no writes, then takes it', async () => {
    const { w, committed, metrics } = open({ maxBufferBytes: 2000 });
    const release = await lockTable('gpu_telemetry');
    const refused: number[] = [];
    try {
      for (let seq = 1; seq <= 12; seq++) if (w.offer(batch('full', seq)) === 'backpressure') refused.push(seq);
      // 330 bytes each: six fit in 2000
      expect(refused).toEqual([7, 8, 9, 10, 11, 12]);
      // asked before decoding, the writer says the same
      expect(w.hasRoomFor(330, Date.now())).toBe(false);
      expect(w.hasRoomFor(2000 - 6 * 330, Date.now())).toBe(true);
      expect(w.bufferedBytes).toBe(6 * 330);
      expect(await gauge(metrics.ingestBufferedBytes)).toBe(6 * 330);
      // the write is under way and waits on the lock: nothing is ledgered, nothing reported
      await waitFor(async () => (await sql`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%gpu_telemetry%'`).length > 0, { message: 'the write waits on the lock' });
      expect(committed).toEqual([]);
      expect(await ledger('full')).toEqual([]);
    } finally {
      await release();
    }
    await waitFor(() => committed.length === 6, { message: 'the six buffered batches committed' });
    expect(w.bufferedBytes).toBe(0);
    // the agents send the refused ones again: taken now
    for (const seq of refused) expect(w.offer(batch('full', seq))).toBe('accepted');
    await w.flush();
    expect((await ledger('full')).length).toBe(12);
    expect(await rowsOf('full')).toBe(12 * 4);
  });

  it('lets backlog fill only its share of the buffer, so live batches keep their room', async () => {
    const { w, committed } = open({ maxBufferBytes: 3300, backlogShare: 0.5, backlogAgeMs: 10_000 });
    const old = Date.now() - 60_000;
    const release = await lockTable('gpu_telemetry');
    const admitted = { backlog: 0, live: 0 };
    try {
      for (let seq = 1; seq <= 10; seq++) if (w.offer(batch('backlog', seq, 3, old)) === 'accepted') admitted.backlog++;
      for (let seq = 1; seq <= 10; seq++) if (w.offer(batch('live', seq)) === 'accepted') admitted.live++;
      // asked before decoding: no room for even a byte of backlog
      expect(w.hasRoomFor(1, old)).toBe(false);
    } finally {
      await release();
    }
    // 330 bytes a batch: backlog stops at half (5), live fills the rest (5 more)
    expect(admitted).toEqual({ backlog: 5, live: 5 });
    await waitFor(() => committed.length === 10, { message: 'all ten committed' });
    // each flush takes live batches first
    const firstLive = committed.findIndex((c) => c.stream === 'live');
    const firstBacklog = committed.findIndex((c) => c.stream === 'backlog');
    expect(firstLive).toBeLessThan(firstBacklog);
  });

  it('keeps live telemetry fresh while a backlog drains (figures printed; no timing asserted)', async () => {
    // a backlog far larger than the buffer, re-sent as a spool would (refused ones again), while a
    // live batch arrives every 20 ms
    const { w, committed } = open({ maxBufferBytes: 400_000, maxRows: 5000, backlogAgeMs: 10_000 });
    const BACKLOG = 3000;
    const old = Date.now() - 3600_000;
    let nextBacklog = 1;
    const liveSent = new Map<number, number>();
    const liveLag: number[] = [];
    w.onCommitted((bs) => {
      const t = Date.now();
      for (const b of bs) if (b.stream === 'drain-live') liveLag.push(t - liveSent.get(b.seq)!);
    });
    const started = Date.now();
    let liveSeq = 0;
    let refusedBacklog = 0;
    let refusedLive = 0;
    const done = () => committed.filter((c) => c.stream === 'drain-backlog').length === BACKLOG;
    while (!done()) {
      // the spool's window: offer backlog until refused
      while (nextBacklog <= BACKLOG) {
        const r = w.offer(batch('drain-backlog', nextBacklog, 20, old));
        if (r === 'backpressure') {
          refusedBacklog++;
          break;
        }
        nextBacklog++;
      }
      liveSeq++;
      liveSent.set(liveSeq, Date.now());
      if (w.offer(batch('drain-live', liveSeq, 20)) === 'backpressure') refusedLive++;
      await new Promise((r) => setTimeout(r, 20));
      if (Date.now() - started > 60_000) break;
    }
    await w.flush();
    const secs = (Date.now() - started) / 1000;
    const sorted = [...liveLag].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    console.log(JSON.stringify({
      bench: 'backlog drain with live traffic', backlog_batches: BACKLOG, samples_per_batch: 21, drain_s: Number(secs.toFixed(2)),
      backlog_samples_per_s: Math.round((BACKLOG * 21) / secs), backlog_refusals: refusedBacklog, live_batches: liveSeq, live_refused: refusedLive,
      live_commit_ms: { p50: pct(0.5), p95: pct(0.95), max: sorted[sorted.length - 1] },
    }));
    expect(done()).toBe(true);
    // live telemetry always had room
    expect(refusedLive).toBe(0);
    expect((await ledger('drain-backlog')).length).toBe(BACKLOG);
  }, 90_000);

  it('computes contiguous watermarks over the ledger\'s gaps, from a start seq or from the lowest ledgered', async () => {
    for (const seq of [3, 4, 5, 7, 8]) await sql`INSERT INTO telemetry_batches (site_id, stream, seq, rows) VALUES ('texas-1', 'gaps', ${seq}, 1)`;
    const at = (from: number, stream = 'gaps') => ledgerWatermarks(db, [{ site: 'texas-1', stream, from }]).then((r) => r[0]);
    expect(await at(1)).toBe(0);
    expect(await at(3)).toBe(5);
    expect(await at(4)).toBe(5);
    expect(await at(6)).toBe(5);
    expect(await at(7)).toBe(8);
    expect(await at(9)).toBe(8);
    // from 0: the lowest ledgered seq (3) on
    expect(await at(0)).toBe(5);
    expect(await at(0, 'nothing-here')).toBe(0);
    // many streams in one statement, in the order asked
    expect(await ledgerWatermarks(db, [{ site: 'texas-1', stream: 'gaps', from: 7 }, { site: 'texas-1', stream: 'nothing', from: 40 }, { site: 'texas-1', stream: 'gaps', from: 3 }])).toEqual([8, 39, 5]);
  });

  it('tells the agent the watermark from the spool\'s first_seq, and hears another replica\'s commits through the ledger', async () => {
    const marks = new Watermarks();
    const sent: TelemetryCommitted[] = [];
    const notifier = createCommitNotifier({ db, watermarks: marks, log: silent, pollMs: 50, minIntervalMs: 10 });
    try {
      // seqs 1..9 were committed and trimmed long ago; the spool holds 10..14, 10 and 11 committed
      for (const seq of [10, 11]) await sql`INSERT INTO telemetry_batches (site_id, stream, seq, rows) VALUES ('texas-1', 'spool-x', ${seq}, 1)`;
      await notifier.opened({ site: 'texas-1', stream: 'spool-x', spool: { stream: 'spool-x', firstSeq: 10, nextSeq: 15, bytes: 0 }, token: 1, send: (m) => void sent.push(m) });
      expect(sent).toEqual([{ stream: 'spool-x', seq: 11 }]);
      // another replica commits 12 and 13 (its own writer on another connection)
      const other = open({}, () => db2);
      other.w.offer(batch('spool-x', 13));
      other.w.offer(batch('spool-x', 12));
      await other.w.flush();
      await waitFor(() => sent.at(-1)?.seq === 13, { message: 'the other replica\'s commits told' });
      // the agent dropped 14 and more at its bound: first_seq 16 says 14 and 15 are gone
      notifier.spool('texas-1', 1, { stream: 'spool-x', firstSeq: 16, nextSeq: 16, bytes: 0 });
      await waitFor(() => sent.at(-1)?.seq === 15, { message: 'the watermark past what is gone' });
      // another token's spool state (a replaced stream) is not heard
      notifier.spool('texas-1', 2, { stream: 'spool-x', firstSeq: 100, nextSeq: 100, bytes: 0 });
      expect(marks.get('texas-1', 'spool-x')).toBe(15);
      expect(sent.map((m) => m.seq)).toEqual([...new Set(sent.map((m) => m.seq))]);
    } finally {
      notifier.close();
    }
  });

  it('prunes ledger rows past the retention', async () => {
    await sql`INSERT INTO telemetry_batches (site_id, stream, seq, rows, committed_at) VALUES ('texas-1', 'prune', 1, 1, now() - interval '49 hours'), ('texas-1', 'prune', 2, 1, now())`;
    expect(await pruneLedger(db, 48 * 3600_000)).toBeGreaterThanOrEqual(1);
    expect(await ledger('prune')).toEqual(['2:1']);
  });
});

describe('telemetry ledger on PGlite', () => {
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ dataDir: ':memory:' });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('writes a replayed batch once and computes watermarks over gaps', async () => {
    const committed: CommittedBatch[] = [];
    const w = createTelemetryWriter({ db, metrics: createMetrics(), log: silent, flushIntervalMs: 20, maxRows: 5000 });
    w.onCommitted((b) => void committed.push(...b));
    const b = (seq: number): TelemetryBatchIn => ({ site: 'texas-1', stream: 'pgl', seq, sentAtMs: Date.now(), gpus: [gpu('gpu-pgl', 1_800_000_000_000 + seq, 50, 400)], asics: [], bytes: 150 });
    for (const seq of [1, 2, 4]) w.offer(b(seq));
    await w.flush();
    w.offer(b(2));
    await w.flush();
    await w.close();
    expect(committed.map((c) => `${c.seq}:${c.stored}`)).toEqual(['1:true', '2:true', '4:true', '2:false']);
    expect((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id = 'gpu-pgl'`))[0]!.n).toBe(3);
    expect(await ledgerWatermarks(db, [{ site: 'texas-1', stream: 'pgl', from: 1 }, { site: 'texas-1', stream: 'pgl', from: 4 }])).toEqual([2, 4]);
  });
});
