// Audit entries from hot paths (a fleet-wide curtail writes two per site) go through a small
// write-behind buffer: one INSERT … unnest per flush instead of one round trip per entry. An
// entry the database refuses (a NUL in its details is invalid in jsonb, 22P05) is dead-lettered
// — logged, counted — and the others land; only a database fault keeps entries for a retry.
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Db } from './client.js';
import { createDeadLetterLog } from './dead-letter-log.js';
import { WriteInterruptedError, writeWithDeadLetters } from './dead-letter.js';

export interface AuditEntry {
  actor: string;
  action: string;
  subject: string | null;
  details: Record<string, unknown>;
  timeMs?: number;
}

export interface AuditWriter {
  write(e: AuditEntry): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

type Stamped = Omit<AuditEntry, 'details'> & { timeMs: number; details: string };

// Serialized when written, not at flush: details that cannot become JSON (a cycle, a BigInt)
// would otherwise throw inside the statement's parameters, where no SQLSTATE says it is the entry.
function json(details: Record<string, unknown>): string {
  try {
    return JSON.stringify(details) ?? '{}';
  } catch (err) {
    return JSON.stringify({ unserializable: (err as Error).message });
  }
}

export function createAuditWriter(o: { db: Db; log: Logger; flushMs?: number; metrics?: Metrics }): AuditWriter {
  let buf: Stamped[] = [];
  let running: Promise<void> | null = null;
  let closed = false;
  const report = createDeadLetterLog<Stamped>({
    log: o.log,
    writer: 'audit_log',
    count: (n) => o.metrics?.dbRejectedRows.inc({ writer: 'audit_log' }, n),
  });
  const identify = (e: Stamped) => ({ actor: e.actor, action: e.action, subject: e.subject });
  const insert = async (batch: Stamped[]) => {
    await o.db.query(
      `INSERT INTO audit_log (time, actor, action, subject, details)
       SELECT to_timestamp(t / 1000.0), a, ac, s, d::jsonb FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(t, a, ac, s, d)`,
      [batch.map((e) => e.timeMs), batch.map((e) => e.actor), batch.map((e) => e.action), batch.map((e) => e.subject), batch.map((e) => e.details)],
    );
  };
  const flushOnce = async () => {
    const batch = buf;
    buf = [];
    if (batch.length === 0) return;
    try {
      report(await writeWithDeadLetters(batch, insert), identify);
    } catch (err) {
      const interrupted = err instanceof WriteInterruptedError ? (err as WriteInterruptedError<Stamped>) : null;
      if (interrupted) report(interrupted.rejected, identify);
      const unwritten = interrupted?.unwritten ?? batch;
      o.log.error({ err: interrupted?.cause ?? err, entries: unwritten.length }, 'audit write failed; retrying');
      buf = [...unwritten, ...buf];
    }
  };
  const flush = async (): Promise<void> => {
    while (running) await running;
    running = flushOnce().finally(() => {
      running = null;
    });
    await running;
  };
  const timer = setInterval(() => {
    if (buf.length && !running) void flush();
  }, o.flushMs ?? 50);
  timer.unref();
  return {
    write(e) {
      if (!closed) buf.push({ ...e, timeMs: e.timeMs ?? Date.now(), details: json(e.details) });
    },
    flush,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await flush();
    },
  };
}
