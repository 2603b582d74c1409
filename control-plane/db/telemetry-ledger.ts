// Reads and housekeeping of the ledger of committed telemetry batches (schema.ts
// telemetryBatches; written by telemetry-writer.ts in the transaction of the batch's rows). The
// contiguous watermark of a stream — the highest seq w with every batch from a start seq up to w
// in the ledger — is what the control plane tells the agent (TelemetryCommitted,
// proto/hcp/v1/gateway.proto): below it the agent may delete its spool.
import type { Db } from './client.js';

export interface WatermarkAsk {
  site: string;
  stream: string;
  /**
   * the first seq not yet known to be committed: the answer is from - 1 when it is not in the
   * ledger, else the end of the ledgered run that starts there. 0: from the stream's lowest
   * ledgered seq (a stream nothing is known of, such as an agent without a spool).
   */
  from: number;
}

// One statement for any number of streams (the periodic read of every stream a replica holds).
// Per stream it walks the ledger's primary key from `from` to the first seq whose successor is
// missing: the cost is the run's length, which is what was committed since the last read.
const WATERMARK_SQL = `
SELECT a.i::int AS i, (CASE
  WHEN NOT EXISTS (SELECT 1 FROM telemetry_batches t WHERE t.site_id = a.s AND t.stream = a.st AND t.seq = f.f) THEN f.f - 1
  ELSE (SELECT b.seq FROM telemetry_batches b
        WHERE b.site_id = a.s AND b.stream = a.st AND b.seq >= f.f
          AND NOT EXISTS (SELECT 1 FROM telemetry_batches c WHERE c.site_id = a.s AND c.stream = a.st AND c.seq = b.seq + 1)
        ORDER BY b.seq LIMIT 1)
  END)::float8 AS w
FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS a(s, st, f0, i)
CROSS JOIN LATERAL (SELECT CASE WHEN a.f0 > 0 THEN a.f0
  ELSE coalesce((SELECT min(m.seq) FROM telemetry_batches m WHERE m.site_id = a.s AND m.stream = a.st), 1) END AS f) f`;

/** the contiguous watermark of each asked stream, in the order asked */
export async function ledgerWatermarks(db: Pick<Db, 'query'>, asks: readonly WatermarkAsk[]): Promise<number[]> {
  if (asks.length === 0) return [];
  const rows = await db.query<{ i: number; w: number }>(WATERMARK_SQL, [
    asks.map((a) => a.site), asks.map((a) => a.stream), asks.map((a) => Math.max(0, Math.floor(a.from))),
  ], { prepare: true });
  const out = asks.map((a) => Math.max(0, a.from - 1));
  for (const r of rows) out[Number(r.i) - 1] = Math.max(0, Number(r.w));
  return out;
}

/** deletes ledger rows committed longer ago than retentionMs; returns how many */
export async function pruneLedger(db: Pick<Db, 'query'>, retentionMs: number): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `WITH gone AS (DELETE FROM telemetry_batches WHERE committed_at < now() - make_interval(secs => $1::float8 / 1000) RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [retentionMs],
  );
  return Number(rows[0]?.n ?? 0);
}
