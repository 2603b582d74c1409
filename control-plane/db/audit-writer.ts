// Audit entries from hot paths (a fleet-wide curtail writes two per site) go through a small
// write-behind buffer: one INSERT … json_to_recordset per flush instead of one round trip per entry. An
// entry the database refuses (a NUL in its details is invalid in jsonb, 22P05) is dead-lettered
// — logged, counted — and the others land; only a database fault keeps entries for a retry,
// within a bound (batch-writer.ts).
import type { Logger } from 'pino';
import { createBatchWriter, type CounterLike } from './batch-writer.js';
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

/** site: details.site, kept apart for the listeners of onWritten (details is JSON text by then) */
type Stamped = Omit<AuditEntry, 'details'> & { timeMs: number; details: string; site: string | null };

// Serialized when written, not at flush: details that cannot become JSON (a cycle, a BigInt)
// would otherwise throw inside the statement's parameters, where no SQLSTATE says it is the entry.
function json(details: Record<string, unknown>): string {
  try {
    return JSON.stringify(details) ?? '{}';
  } catch (err) {
    return JSON.stringify({ unserializable: (err as Error).message });
  }
}

/** the counters the writer moves, by shape (control-plane/metrics.ts's fit) */
export interface AuditWriterMetrics {
  dbRejectedRows: CounterLike<'writer'>;
  dbDroppedRows?: CounterLike<'writer' | 'why'>;
}

export interface AuditWriterOptions {
  db: Db;
  log: Logger;
  flushMs?: number;
  /**
   * entries waiting at most (the database down); past it the oldest are dropped, logged and
   * counted (hcp_db_dropped_rows_total{writer="audit_log"})
   */
  maxBuffered?: number;
  metrics?: AuditWriterMetrics;
  /**
   * called with the entries of each write once they are in the table, so a reader told of them
   * finds them (the console's live `audit` event: http/live.ts)
   */
  onWritten?(entries: WrittenAudit[]): void;
}

/** an entry as written, its details not parsed back */
export type WrittenAudit = Omit<AuditEntry, 'details' | 'timeMs'> & { timeMs: number; site: string | null };

export function createAuditWriter(o: AuditWriterOptions): AuditWriter {
  // The rows as one JSON text, each entry's details spliced in as the JSON they already are: one
  // native stringify per batch, where binding five arrays had postgres.js escape every element.
  const insert = async (batch: Stamped[]) => {
    const rows = `[${batch.map((e) => `{"t":${e.timeMs},"a":${JSON.stringify(e.actor)},"ac":${JSON.stringify(e.action)},"s":${JSON.stringify(e.subject)},"d":${e.details}}`).join(',')}]`;
    await o.db.query(
      `INSERT INTO audit_log (time, actor, action, subject, details)
       SELECT to_timestamp(r.t / 1000.0), r.a, r.ac, r.s, r.d FROM json_to_recordset($1::text::json) AS r(t float8, a text, ac text, s text, d jsonb)`,
      [rows],
      { prepare: true },
    );
  };
  const w = createBatchWriter<Stamped>({
    name: 'audit_log',
    log: o.log,
    write: insert,
    identify: (e) => ({ actor: e.actor, action: e.action, subject: e.subject }),
    flushIntervalMs: o.flushMs ?? 50,
    maxBuffered: o.maxBuffered ?? 50_000,
    onWritten: o.onWritten && ((rows) => o.onWritten!(rows.map(({ details: _, ...e }) => e))),
    metrics: {
      rejected: (n) => o.metrics?.dbRejectedRows.inc({ writer: 'audit_log' }, n),
      dropped: (n, why) => o.metrics?.dbDroppedRows?.inc({ writer: 'audit_log', why }, n),
    },
  });
  let closed = false;
  return {
    write(e) {
      if (!closed) w.add({ ...e, timeMs: e.timeMs ?? Date.now(), details: json(e.details), site: typeof e.details.site === 'string' ? e.details.site : null });
    },
    flush: () => w.flush(),
    async close() {
      closed = true;
      await w.close();
    },
  };
}
