// Persistence of API keys and site credentials (api_keys in schema.ts). The secret never reaches
// this layer: only its SHA-256. A key the database refuses for a taken name or an unknown
// customer or site fails with KeyStoreError; control-plane/auth/key-admin.ts says it to the caller.
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { sqlState } from './db-error.js';
import { apiKeys, type API_KEY_ROLES } from './schema.js';

/** the roles api_keys_role_check allows (control-plane/auth/roles.ts ROLES) */
export type KeyRole = (typeof API_KEY_ROLES)[number];

export interface KeyRow {
  id: string;
  name: string;
  role: KeyRole;
  customerId: string | null;
  siteId: string | null;
  createdAtMs: number;
  createdBy: string;
  revokedAtMs: number | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

export interface LiveKey extends Pick<KeyRow, 'id' | 'name' | 'role' | 'customerId' | 'siteId'> {
  secretSha256: string;
}

/** why an insert was refused: the live-name index (23505) or a foreign key (23503) */
export class KeyStoreError extends Error {
  constructor(readonly reason: 'name_taken' | 'unknown_customer' | 'unknown_site', override readonly cause: unknown) {
    super(`api key refused: ${reason}`);
    this.name = 'KeyStoreError';
  }
}

type Stored = typeof apiKeys.$inferSelect;

function toRow(r: Stored): KeyRow {
  return {
    id: r.id, name: r.name, role: r.role as KeyRole, customerId: r.customerId, siteId: r.siteId,
    createdAtMs: r.createdAt.getTime(), createdBy: r.createdBy,
    revokedAtMs: r.revokedAt?.getTime() ?? null, revokedBy: r.revokedBy, revokeReason: r.revokeReason,
  };
}

export async function insertKey(
  db: Pick<Db, 'orm'>,
  k: { id: string; name: string; role: KeyRole; customerId: string | null; siteId: string | null; secretSha256: string; createdBy: string },
): Promise<KeyRow> {
  try {
    const [r] = await db.orm
      .insert(apiKeys)
      .values({ id: k.id, name: k.name, role: k.role, customerId: k.customerId, siteId: k.siteId, secretSha256: k.secretSha256, createdBy: k.createdBy })
      .returning();
    return toRow(r!);
  } catch (err) {
    if (sqlState(err) === '23505') throw new KeyStoreError('name_taken', err);
    if (sqlState(err) === '23503') throw new KeyStoreError(k.role === 'customer' ? 'unknown_customer' : 'unknown_site', err);
    throw err;
  }
}

export async function listKeys(db: Pick<Db, 'orm'>, o: { includeRevoked: boolean }): Promise<KeyRow[]> {
  const rows = await db.orm
    .select()
    .from(apiKeys)
    .where(o.includeRevoked ? undefined : isNull(apiKeys.revokedAt))
    .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
  return rows.map(toRow);
}

export async function getKey(db: Pick<Db, 'orm'>, id: string): Promise<KeyRow | null> {
  const [r] = await db.orm.select().from(apiKeys).where(eq(apiKeys.id, id));
  return r ? toRow(r) : null;
}

/** revokes a live key; a key revoked already is returned as it stands */
export async function revokeKey(db: Pick<Db, 'orm'>, id: string, by: string, reason: string | null): Promise<KeyRow | null> {
  const [r] = await db.orm
    .update(apiKeys)
    .set({ revokedAt: sql`now()`, revokedBy: by, revokeReason: reason, version: sql`nextval('api_keys_version_seq')` })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning();
  return r ? toRow(r) : getKey(db, id);
}

export async function loadLiveKeys(db: Pick<Db, 'orm'>): Promise<LiveKey[]> {
  const rows = await db.orm
    .select({ id: apiKeys.id, name: apiKeys.name, role: apiKeys.role, customerId: apiKeys.customerId, siteId: apiKeys.siteId, secretSha256: apiKeys.secretSha256 })
    .from(apiKeys)
    .where(isNull(apiKeys.revokedAt));
  return rows.map((r) => ({ ...r, role: r.role as KeyRole }));
}

/**
 * the keys made or revoked since a version (keysVersion's): a small read after this process's
 * own change. Not enough alone: a version is drawn at insert, so a key with a lower one may
 * commit later; the ring's poll reads every key when the version moves.
 */
export async function keysChangedSince(db: Pick<Db, 'orm'>, version: string): Promise<(LiveKey & { revoked: boolean })[]> {
  const rows = await db.orm
    .select({
      id: apiKeys.id, name: apiKeys.name, role: apiKeys.role, customerId: apiKeys.customerId, siteId: apiKeys.siteId,
      secretSha256: apiKeys.secretSha256, revoked: sql<boolean>`${apiKeys.revokedAt} IS NOT NULL`,
    })
    .from(apiKeys)
    .where(sql`${apiKeys.version} > ${version}::bigint`);
  return rows.map((r) => ({ ...r, role: r.role as KeyRole }));
}

/** moves whenever a key is made or revoked */
export async function keysVersion(db: Pick<Db, 'orm'>): Promise<string> {
  const [r] = await db.orm.select({ v: sql<string | null>`max(${apiKeys.version})::text` }).from(apiKeys);
  return r?.v ?? '0';
}

export async function liveKeyByHash(db: Pick<Db, 'orm'>, secretSha256: string): Promise<KeyRow | null> {
  const [r] = await db.orm.select().from(apiKeys).where(and(eq(apiKeys.secretSha256, secretSha256), isNull(apiKeys.revokedAt)));
  return r ? toRow(r) : null;
}

export async function liveKeyByName(db: Pick<Db, 'orm'>, name: string): Promise<KeyRow | null> {
  const [r] = await db.orm.select().from(apiKeys).where(and(eq(apiKeys.name, name), isNull(apiKeys.revokedAt)));
  return r ? toRow(r) : null;
}

