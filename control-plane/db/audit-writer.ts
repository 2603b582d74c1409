// Audit entries from hot paths (a fleet-wide curtail writes two per site) go through a small
// write-behind buffer: one INSERT … unnest per flush instead of one round trip per entry.
import type { Logger } from 'pino';
import type { Db } from './client.js';

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

export function createAuditWriter(o: { db: Db; log: Logger; flushMs?: number }): AuditWriter {
  let buf: Array<AuditEntry & { timeMs: number }> = [];
  let running: Promise<void> | null = null;
  let closed = false;
  const flushOnce = async () => {
    const batch = buf;
    buf = [];
    if (batch.length === 0) return;
    try {
      await o.db.query(
        `INSERT INTO audit_log (time, actor, action, subject, details)
         SELECT to_timestamp(t / 1000.0), a, ac, s, d::jsonb FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(t, a, ac, s, d)`,
        [batch.map((e) => e.timeMs), batch.map((e) => e.actor), batch.map((e) => e.action), batch.map((e) => e.subject), batch.map((e) => JSON.stringify(e.details))],
      );
    } catch (err) {
      o.log.error({ err, entries: batch.length }, 'audit write failed; retrying');
      buf = [...batch, ...buf];
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
      if (!closed) buf.push({ ...e, timeMs: e.timeMs ?? Date.now() });
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
