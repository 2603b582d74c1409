// The "buffer rows, write them in bulk" writer behind the audit log (audit-writer.ts), command
// states (control-plane/commands/bus.ts) and price ticks (control-plane/market/feed-ingest.ts);
// telemetry has its own, transactional one (telemetry-writer.ts). What it guarantees:
// - bounded: at most maxBuffered rows wait. Past it the oldest are dropped, counted (dropped())
//   and logged (one line per writer per interval), whether the rows came from add() or back from a
//   failed write. A writer whose rows replace each other (key()) holds one row per key.
// - one write at a time, on an interval and as soon as flushAtRows rows wait;
// - a database fault (db-error.ts: connection, shutdown, undefined table…) keeps the rows not
//   written and retries them, with backoff from retryMinMs doubling to retryMaxMs;
// - a row the database refuses for its content is dead-lettered (dead-letter.ts
//   writeWithDeadLetters: logged by dead-letter-log.ts, counted as rejected()) and the others land;
// - close() stops intake and drains, retrying faults until closeTimeoutMs; what is still unwritten
//   then is logged and counted as dropped.
// Metrics are callbacks: db/ does not know the process's metric registry.
import type { Logger } from 'pino';
import { createDeadLetterLog } from './dead-letter-log.js';
import { WriteInterruptedError, writeWithDeadLetters, type DeadLetterOptions } from './dead-letter.js';
import { dbMessage } from './db-error.js';

/** a Prometheus counter by shape (prom-client's Counter fits) */
export interface CounterLike<L extends string> {
  inc(labels: Partial<Record<L, string>>, value?: number): void;
}
export interface GaugeLike {
  set(value: number): void;
}
export interface HistogramLike {
  observe(value: number): void;
}

export interface BatchWriterMetrics {
  /** rows the database accepted */
  written?(n: number): void;
  /** rows the database refused for their content (dead-lettered, not retried) */
  rejected?(n: number): void;
  /** rows dropped unwritten: the buffer was full, or close() ran out of time */
  dropped?(n: number, why: 'buffer_full' | 'closed'): void;
  /** rows waiting, after every change */
  buffered?(n: number): void;
  /** one write attempt took this long; ok false when a fault left rows for a retry */
  flushed?(seconds: number, ok: boolean): void;
}

export interface BatchWriterOptions<T> {
  /** names the table or path in logs and dead letters */
  name: string;
  log: Logger;
  /** writes any number of rows in one statement */
  write(rows: T[]): Promise<unknown>;
  /** what names a row in a log line (never the row itself: its bad field may be megabytes) */
  identify(row: T): Record<string, unknown>;
  flushIntervalMs: number;
  /** write early once this many rows wait; default maxBuffered / 2 */
  flushAtRows?: number;
  maxBuffered: number;
  /** rows with one key replace each other: a later add() takes the earlier one's place */
  key?(row: T): string;
  /** the copy that is written, taken when a batch starts (for rows that change after add()) */
  snapshot?(row: T): T;
  /** called with the rows of every successful write, after it */
  onWritten?(rows: T[]): void;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** how long close() keeps retrying a faulty database */
  closeTimeoutMs?: number;
  metrics?: BatchWriterMetrics;
  deadLetter?: DeadLetterOptions;
  now?: () => number;
}

export interface BatchWriter<T> {
  add(row: T): void;
  addMany(rows: readonly T[]): void;
  /** rows waiting */
  readonly size: number;
  /** drops the n oldest waiting rows (counted as buffer_full); returns how many it dropped */
  dropOldest(n: number): number;
  /**
   * one write of everything waiting now, whatever the backoff; after one already running. Never
   * throws: a fault leaves the rows waiting for the next attempt.
   */
  flush(): Promise<void>;
  /** stops intake and the timer and drains (see closeTimeoutMs); idempotent */
  close(): Promise<void>;
}

const WARN_EVERY_MS = 10_000;

export function createBatchWriter<T>(o: BatchWriterOptions<T>): BatchWriter<T> {
  const now = o.now ?? Date.now;
  const retryMinMs = o.retryMinMs ?? 100;
  const retryMaxMs = o.retryMaxMs ?? 5_000;
  const flushAtRows = Math.max(1, o.flushAtRows ?? Math.floor(o.maxBuffered / 2));
  // insertion order is write order; without key() every row gets its own number
  let pending = new Map<string | number, T>();
  let seq = 0;
  const keyOf = (row: T): string | number => (o.key ? o.key(row) : seq++);
  let inFlight: Promise<boolean> | null = null;
  let closed = false;
  let delayMs = 0;
  let retryAt = 0;
  let lastDropWarn = -Infinity;
  let droppedSinceWarn = 0;

  const deadLetters = createDeadLetterLog<T>({ log: o.log, writer: o.name, count: (n) => o.metrics?.rejected?.(n) });
  const buffered = () => o.metrics?.buffered?.(pending.size);

  const drop = (n: number, why: 'buffer_full' | 'closed'): number => {
    let dropped = 0;
    for (const k of pending.keys()) {
      if (dropped >= n) break;
      pending.delete(k);
      dropped++;
    }
    if (dropped === 0) return 0;
    o.metrics?.dropped?.(dropped, why);
    droppedSinceWarn += dropped;
    const t = now();
    if (why === 'closed' || t - lastDropWarn >= WARN_EVERY_MS) {
      o.log.warn({ writer: o.name, dropped: droppedSinceWarn, why, buffered: pending.size },
        why === 'closed' ? 'rows not written before close; dropped' : 'write buffer full; oldest rows dropped');
      lastDropWarn = t;
      droppedSinceWarn = 0;
    }
    buffered();
    return dropped;
  };
  const trim = () => {
    const over = pending.size - o.maxBuffered;
    if (over > 0) drop(over, 'buffer_full');
  };

  /** one write of what waits now; true when no fault stopped it */
  const writeOnce = async (): Promise<boolean> => {
    if (pending.size === 0) return true;
    const taken = pending;
    pending = new Map();
    buffered();
    const originals = [...taken.entries()];
    const rows = o.snapshot ? originals.map(([, r]) => o.snapshot!(r)) : originals.map(([, r]) => r);
    const started = now();
    const index = new Map<T, number>(rows.map((r, i) => [r, i]));
    try {
      const dead = await writeWithDeadLetters(rows, o.write, o.deadLetter);
      deadLetters(dead, o.identify);
      const deadRows = new Set(dead.map((d) => d.row));
      const written = deadRows.size ? rows.filter((r) => !deadRows.has(r)) : rows;
      o.metrics?.written?.(written.length);
      o.metrics?.flushed?.((now() - started) / 1000, true);
      delayMs = 0;
      retryAt = 0;
      o.onWritten?.(written);
      return true;
    } catch (err) {
      const interrupted = err instanceof WriteInterruptedError ? (err as WriteInterruptedError<T>) : null;
      if (interrupted) deadLetters(interrupted.rejected, o.identify);
      const unwritten = interrupted?.unwritten ?? rows;
      const rejected = new Set(interrupted?.rejected.map((d) => d.row) ?? []);
      const left = new Set(unwritten);
      const writtenRows = rows.filter((r) => !left.has(r) && !rejected.has(r));
      if (writtenRows.length) {
        o.metrics?.written?.(writtenRows.length);
        o.onWritten?.(writtenRows);
      }
      o.metrics?.flushed?.((now() - started) / 1000, false);
      delayMs = delayMs === 0 ? retryMinMs : Math.min(retryMaxMs, delayMs * 2);
      retryAt = now() + delayMs;
      o.log.error({ err: interrupted?.cause ?? err, writer: o.name, rows: unwritten.length, retryInMs: delayMs, dbMessage: dbMessage(interrupted?.cause ?? err) },
        'batch write failed; will retry');
      // Back in front of what came since, in their order; a key written again since keeps the newer row.
      const back = new Map<string | number, T>();
      for (const r of unwritten) {
        const [k, orig] = originals[index.get(r)!]!;
        if (!pending.has(k)) back.set(k, orig);
      }
      for (const [k, r] of pending) back.set(k, r);
      pending = back;
      trim();
      buffered();
      return false;
    }
  };

  const run = (): Promise<boolean> => {
    const p = writeOnce().finally(() => {
      inFlight = null;
    });
    inFlight = p;
    return p;
  };

  const flush = async (): Promise<void> => {
    while (inFlight) await inFlight;
    await run();
  };

  const due = () => !inFlight && pending.size > 0 && now() >= retryAt;
  const timer = setInterval(() => {
    if (due()) void run();
  }, o.flushIntervalMs);
  timer.unref();

  const add = (row: T) => {
    const k = keyOf(row);
    if (o.key && pending.has(k)) pending.delete(k);
    pending.set(k, row);
  };
  const added = () => {
    trim();
    buffered();
    if (pending.size >= flushAtRows && due()) void run();
  };

  return {
    add(row) {
      if (closed) return;
      add(row);
      added();
    },
    addMany(rows) {
      if (closed || rows.length === 0) return;
      for (const r of rows) add(r);
      added();
    },
    get size() {
      return pending.size;
    },
    dropOldest: (n) => drop(n, 'buffer_full'),
    flush,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      // several writers close one after another inside main.ts's 10 s shutdown deadline
      const deadline = now() + (o.closeTimeoutMs ?? 3000);
      while (inFlight) await inFlight;
      while (pending.size > 0) {
        if (await run()) continue;
        // the backoff may have grown long while the database was away: at close, try again soon
        const wait = Math.min(delayMs, 250, deadline - now());
        if (wait <= 0) break;
        await new Promise((r) => setTimeout(r, wait));
      }
      if (pending.size > 0) drop(pending.size, 'closed');
    },
  };
}
