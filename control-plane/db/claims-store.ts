// Persistence of claims (control-plane/claims/model.ts describes them). A claim is one row; it is
// live while ended_at is null, and stays as history once released, expired or replaced. The
// claims service keeps the live ones in memory and writes through here, so they survive a
// control-plane restart. db/ knows rows, not the claim rules: the service maps.
//
// Writes made by a singleton loop (the grid response, economic dispatch, programs, the
// scheduler's headroom: ha/lease.ts) carry its fence (ha/fence.ts): inside one transaction the
// lease's token is checked first, and a deposed leader's write is refused with FencedError.
// Ending is conditional (only claims still live), so two replicas ending one claim end it once.
import { eq, isNull } from 'drizzle-orm';
import type { Db } from './client.js';
import { claims } from './schema.js';
import { checkFence, currentFence } from '../ha/fence.js';

type Tx = Pick<Db, 'query'>;
/** fn in a transaction that first checks the current fence; as it is when there is none */
async function fenced<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const fence = currentFence();
  if (!fence) return fn(db);
  return db.transaction(async (tx) => {
    await checkFence(tx, fence);
    return fn(tx);
  });
}

export interface ClaimRow {
  id: string;
  siteId: string;
  source: string;
  deviceIds: string[];
  want: Record<string, unknown>;
  reason: string;
  actor: string;
  createdAtMs: number;
  expiresAtMs: number | null;
}

/** all rows in one statement */
export async function insertClaims(db: Db, rows: readonly ClaimRow[]): Promise<void> {
  if (rows.length === 0) return;
  await fenced(db, (tx) => tx.query(
    `INSERT INTO claims (id, site_id, source, device_ids, want, reason, actor, created_at, expires_at)
     SELECT r.id, r.s, r.src, r.dv, r.w, r.rs, r.a, to_timestamp(r.c / 1000.0), to_timestamp(r.e / 1000.0)
     FROM json_to_recordset($1::text::json) AS r(id text, s text, src text, dv text[], w jsonb, rs text, a text, c float8, e float8)`,
    [JSON.stringify(rows.map((r) => ({ id: r.id, s: r.siteId, src: r.source, dv: r.deviceIds, w: r.want, rs: r.reason, a: r.actor, c: r.createdAtMs, e: r.expiresAtMs })))],
    { prepare: true },
  ));
}

/** ends the live ones among ids; returns the ids it ended */
export async function endClaims(db: Db, ids: readonly string[], by: string, reason: string, atMs: number): Promise<string[]> {
  if (ids.length === 0) return [];
  const ended = await fenced(db, (tx) => tx.query<{ id: string }>(
    `UPDATE claims SET ended_at = to_timestamp($2 / 1000.0), ended_by = $3, end_reason = $4 WHERE id = ANY($1::text[]) AND ended_at IS NULL RETURNING id`,
    [[...ids], atMs, by, reason],
    { prepare: true },
  ));
  return ended.map((r) => r.id);
}

export async function loadLiveClaims(db: Db): Promise<ClaimRow[]> {
  const rows = await db.orm.select().from(claims).where(isNull(claims.endedAt)).orderBy(claims.createdAt, claims.id);
  return rows.map((r) => ({
    id: r.id, siteId: r.siteId, source: r.source, deviceIds: r.deviceIds, want: r.want as Record<string, unknown>, reason: r.reason,
    actor: r.actor, createdAtMs: r.createdAt.getTime(), expiresAtMs: r.expiresAt ? r.expiresAt.getTime() : null,
  }));
}

/** one claim, live or ended */
export async function getClaimRow(db: Db, id: string): Promise<(ClaimRow & { endedAtMs: number | null; endedBy: string | null; endReason: string | null }) | null> {
  const [r] = await db.orm.select().from(claims).where(eq(claims.id, id));
  if (!r) return null;
  return {
    id: r.id, siteId: r.siteId, source: r.source, deviceIds: r.deviceIds, want: r.want as Record<string, unknown>, reason: r.reason,
    actor: r.actor, createdAtMs: r.createdAt.getTime(), expiresAtMs: r.expiresAt ? r.expiresAt.getTime() : null,
    endedAtMs: r.endedAt ? r.endedAt.getTime() : null, endedBy: r.endedBy, endReason: r.endReason,
  };
}
