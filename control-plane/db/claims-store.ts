// Persistence of claims (control-plane/claims/model.ts describes them). A claim is one row; it is
// live while ended_at is null, and stays as history once released, expired or replaced. The
// claims service keeps the live ones in memory and writes through here, so they survive a
// control-plane restart. db/ knows rows, not the claim rules: the service maps.
import { and, eq, inArray, isNull } from 'drizzle-orm';
import type { Db } from './client.js';
import { claims } from './schema.js';

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

const date = (ms: number | null) => (ms === null ? null : new Date(ms));

/** all rows in one statement */
export async function insertClaims(db: Db, rows: readonly ClaimRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.orm.insert(claims).values(rows.map((r) => ({
    id: r.id, siteId: r.siteId, source: r.source, deviceIds: r.deviceIds, want: r.want, reason: r.reason, actor: r.actor,
    createdAt: new Date(r.createdAtMs), expiresAt: date(r.expiresAtMs),
  })));
}

/** ends the live ones among ids; returns the ids it ended */
export async function endClaims(db: Db, ids: readonly string[], by: string, reason: string, atMs: number): Promise<string[]> {
  if (ids.length === 0) return [];
  const ended = await db.orm.update(claims)
    .set({ endedAt: new Date(atMs), endedBy: by, endReason: reason })
    .where(and(inArray(claims.id, [...ids]), isNull(claims.endedAt)))
    .returning({ id: claims.id });
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
