// Persistence of API keys and site credentials (migrations/0008_api_keys.sql). The secret never
// reaches this layer: only its SHA-256.
import type { Role } from '../auth/roles.js';
import { HcpError } from '../errors.js';
import type { Db } from './client.js';

export interface KeyRow {
  id: string;
  name: string;
  role: Role;
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

const ms = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).getTime());

function toRow(r: Record<string, unknown>): KeyRow {
  return {
    id: r.id as string, name: r.name as string, role: r.role as Role,
    customerId: (r.customer_id as string | null) ?? null, siteId: (r.site_id as string | null) ?? null,
    createdAtMs: ms(r.created_at)!, createdBy: r.created_by as string,
    revokedAtMs: ms(r.revoked_at), revokedBy: (r.revoked_by as string | null) ?? null, revokeReason: (r.revoke_reason as string | null) ?? null,
  };
}

/** SQLSTATE of a database error (postgres.js and PGlite both carry it as .code) */
const sqlState = (err: unknown) => (err as { code?: unknown })?.code;

export async function insertKey(
  db: Pick<Db, 'query'>,
  k: { id: string; name: string; role: Role; customerId: string | null; siteId: string | null; secretSha256: string; createdBy: string },
): Promise<KeyRow> {
  try {
    const [r] = await db.query(
      `INSERT INTO api_keys (id, name, role, customer_id, site_id, secret_sha256, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [k.id, k.name, k.role, k.customerId, k.siteId, k.secretSha256, k.createdBy],
    );
    return toRow(r!);
  } catch (err) {
    // 23505 unique_violation: the live-name index; 23503 foreign_key_violation: customer or site
    if (sqlState(err) === '23505') {
      throw new HcpError('conflict', `a live key named ${k.name} exists; revoke it first or choose another name`, 'name_taken', { fields: [{ field: 'name', message: 'is taken by a live key' }] });
    }
    if (sqlState(err) === '23503') {
      const what = k.role === 'customer' ? 'customer' : 'site';
      const id = (k.role === 'customer' ? k.customerId : k.siteId)!;
      throw new HcpError('not_found', `${what} ${JSON.stringify(id)} not found`, `unknown_${what}`, { [what]: id });
    }
    throw err;
  }
}

export async function listKeys(db: Pick<Db, 'query'>, o: { includeRevoked: boolean }): Promise<KeyRow[]> {
  const rows = await db.query(
    `SELECT * FROM api_keys WHERE $1::boolean OR revoked_at IS NULL ORDER BY created_at, id`,
    [o.includeRevoked],
  );
  return rows.map(toRow);
}

export async function getKey(db: Pick<Db, 'query'>, id: string): Promise<KeyRow | null> {
  const [r] = await db.query(`SELECT * FROM api_keys WHERE id = $1`, [id]);
  return r ? toRow(r) : null;
}

/** revokes a live key; a key revoked already is returned as it stands */
export async function revokeKey(db: Pick<Db, 'query'>, id: string, by: string, reason: string | null): Promise<KeyRow | null> {
  const [r] = await db.query(
    `UPDATE api_keys SET revoked_at = now(), revoked_by = $2, revoke_reason = $3, version = nextval('api_keys_version_seq')
     WHERE id = $1 AND revoked_at IS NULL RETURNING *`,
    [id, by, reason],
  );
  return r ? toRow(r) : getKey(db, id);
}

export async function loadLiveKeys(db: Pick<Db, 'query'>): Promise<LiveKey[]> {
  const rows = await db.query<Record<string, string | null>>(
    `SELECT id, name, role, customer_id, site_id, secret_sha256 FROM api_keys WHERE revoked_at IS NULL`,
  );
  return rows.map((r) => ({ id: r.id!, name: r.name!, role: r.role as Role, customerId: r.customer_id ?? null, siteId: r.site_id ?? null, secretSha256: r.secret_sha256! }));
}

/** moves whenever a key is made or revoked */
export async function keysVersion(db: Pick<Db, 'query'>): Promise<string> {
  const [r] = await db.query<{ v: string | null }>(`SELECT max(version)::text AS v FROM api_keys`);
  return r?.v ?? '0';
}

export async function liveKeyByHash(db: Pick<Db, 'query'>, secretSha256: string): Promise<KeyRow | null> {
  const [r] = await db.query(`SELECT * FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL`, [secretSha256]);
  return r ? toRow(r) : null;
}

export async function liveKeyByName(db: Pick<Db, 'query'>, name: string): Promise<KeyRow | null> {
  const [r] = await db.query(`SELECT * FROM api_keys WHERE name = $1 AND revoked_at IS NULL`, [name]);
  return r ? toRow(r) : null;
}
