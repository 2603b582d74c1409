// Making and revoking keys, and the sites they are bound to. A secret is returned once, from
// create(), and never stored; every change is audited and reloads the key ring at once, so a
// revoked key stops working on this control plane before the call returns (and on others
// within the ring's poll).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isValidSiteId } from '../../proto/topics.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import { insertKey as storeKey, KeyStoreError, listKeys, liveKeyByHash, liveKeyByName, revokeKey, type KeyRow } from '../db/key-store.js';
import { insertSite } from '../db/registry-store.js';
import { HcpError, notFound } from '../errors.js';
import type { Registry, SiteInfo } from '../registry/registry.js';
import type { KeyRing } from './key-ring.js';
import type { Role } from './roles.js';
import { hashSecret, newKeyId, newSecret } from './secrets.js';

export const KEY_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** the key HCP_ADMIN_KEY (or a generated data/admin.key) stands for */
export const BOOTSTRAP_ADMIN = 'bootstrap-admin';

export interface NewKey {
  name?: string;
  role: Role;
  customerId?: string;
  siteId?: string;
}

export interface NewSite {
  id: string;
  name?: string;
  region?: string;
  powerCapacityKw?: number;
  timezone?: string;
}

export interface KeyAdmin {
  /** the key and its secret, shown this once */
  create(k: NewKey, by: string): Promise<{ key: KeyRow; secret: string }>;
  list(o: { includeRevoked: boolean }): Promise<KeyRow[]>;
  revoke(id: string, by: string, reason: string | null): Promise<KeyRow>;
  createSite(s: NewSite, by: string): Promise<SiteInfo>;
  /** HCP_ADMIN_KEY: an admin key with this secret exists after this */
  ensureAdmin(secret: string): Promise<'exists' | 'created'>;
  /** with no live admin key at all, makes one and writes it to dir/admin.key (0600); returns the file */
  ensureSomeAdmin(dir: string): Promise<string | null>;
}

const invalid = (field: string, message: string) =>
  new HcpError('invalid_argument', `${field}: ${message}`, 'validation_failed', { fields: [{ field, message }] });

/** stores a key, saying why the database refused it as the API does (name_taken, unknown_customer, unknown_site) */
async function insertKey(db: Db, k: Parameters<typeof storeKey>[1]): Promise<KeyRow> {
  try {
    return await storeKey(db, k);
  } catch (err) {
    if (!(err instanceof KeyStoreError)) throw err;
    if (err.reason === 'name_taken') {
      throw new HcpError('conflict', `a live key named ${k.name} exists; revoke it first or choose another name`, 'name_taken', { fields: [{ field: 'name', message: 'is taken by a live key' }] });
    }
    const what = err.reason === 'unknown_customer' ? 'customer' : 'site';
    const id = (what === 'customer' ? k.customerId : k.siteId)!;
    throw new HcpError('not_found', `${what} ${JSON.stringify(id)} not found`, err.reason, { [what]: id });
  }
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export function createKeyAdmin(d: { db: Db; ring: KeyRing; registry: Registry; audit: AuditWriter; log: Logger; maxSites: number }): KeyAdmin {
  const addSite = async (s: NewSite, by: string): Promise<SiteInfo> => {
    if (d.registry.siteCount() >= d.maxSites) {
      throw new HcpError('conflict', `the control plane keeps at most ${d.maxSites} sites (HCP_MAX_SITES)`, 'site_limit');
    }
    const info: SiteInfo = { id: s.id, name: s.name ?? s.id, region: s.region ?? 'unassigned', powerCapacityKw: s.powerCapacityKw ?? 0 };
    await insertSite(d.db, { ...info, timezone: s.timezone ?? 'UTC' });
    d.registry.addSite(info);
    d.audit.write({ actor: by, action: 'site.created', subject: s.id, details: { region: info.region, power_capacity_kw: info.powerCapacityKw, timezone: s.timezone ?? 'UTC' } });
    d.log.info({ site: s.id, region: info.region, by }, 'site created');
    return info;
  };

  const create: KeyAdmin['create'] = async (k, by) => {
    if ((k.role === 'customer') !== Boolean(k.customerId)) throw invalid('customer_id', k.role === 'customer' ? 'is required for a customer key' : 'only a customer key has one');
    if ((k.role === 'agent') !== Boolean(k.siteId)) throw invalid('site', k.role === 'agent' ? 'is required for an agent key' : 'only an agent key has one');
    if (k.siteId && !isValidSiteId(k.siteId)) throw invalid('site', 'must be lowercase letters, digits and dashes (e.g. texas-1)');
    const name = k.name ?? (k.role === 'agent' ? `agent-${k.siteId}` : undefined);
    if (!name) throw invalid('name', 'is required');
    if (!KEY_NAME_PATTERN.test(name)) throw invalid('name', 'must be 1-63 of a-z 0-9 . _ -, starting with a letter or digit');
    // A site exists when an admin creates it or its credential (never because a Hello named it).
    if (k.siteId && !d.registry.site(k.siteId)) await addSite({ id: k.siteId }, by);
    const secret = newSecret();
    const key = await insertKey(d.db, {
      id: newKeyId(), name, role: k.role, customerId: k.customerId ?? null, siteId: k.siteId ?? null, secretSha256: hashSecret(secret), createdBy: by,
    });
    await d.ring.refresh();
    d.audit.write({ actor: by, action: 'key.created', subject: key.id, details: { name, role: k.role, customer_id: key.customerId, site: key.siteId } });
    d.log.info({ key: key.id, name, role: k.role, by }, 'key created');
    return { key, secret };
  };

  const insertBootstrap = async (secret: string) => {
    const old = await liveKeyByName(d.db, BOOTSTRAP_ADMIN);
    // A new HCP_ADMIN_KEY rotates the bootstrap key: the old value stops working.
    if (old) await revokeKey(d.db, old.id, 'system:bootstrap', 'HCP_ADMIN_KEY changed');
    const key = await insertKey(d.db, { id: newKeyId(), name: BOOTSTRAP_ADMIN, role: 'admin', customerId: null, siteId: null, secretSha256: hashSecret(secret), createdBy: 'system:bootstrap' });
    d.audit.write({ actor: 'system:bootstrap', action: 'key.created', subject: key.id, details: { name: BOOTSTRAP_ADMIN, role: 'admin', replaced: old?.id ?? null } });
    await d.ring.refresh();
  };

  return {
    create,
    list: (o) => listKeys(d.db, o),
    async revoke(id, by, reason) {
      const k = await revokeKey(d.db, id, by, reason);
      if (!k) throw notFound('key', id);
      await d.ring.refresh();
      d.audit.write({ actor: by, action: 'key.revoked', subject: id, details: { name: k.name, role: k.role, reason } });
      d.log.info({ key: id, name: k.name, by }, 'key revoked');
      return k;
    },
    async createSite(s, by) {
      if (!isValidSiteId(s.id)) throw invalid('id', 'must be lowercase letters, digits and dashes (e.g. texas-1)');
      if (s.region !== undefined && !isValidSiteId(s.region)) throw invalid('region', 'must be lowercase letters, digits and dashes (e.g. ercot)');
      if (s.timezone !== undefined && !isTimeZone(s.timezone)) throw invalid('timezone', 'must be an IANA time zone, e.g. America/Chicago');
      if (d.registry.site(s.id)) throw new HcpError('conflict', `site ${s.id} exists`, 'site_exists', { site: s.id });
      return addSite(s, by);
    },
    async ensureAdmin(secret) {
      const k = await liveKeyByHash(d.db, hashSecret(secret));
      if (k) {
        if (k.role !== 'admin') throw new HcpError('invalid_argument', `HCP_ADMIN_KEY is the key ${k.name}, whose role is ${k.role}, not admin`, 'not_admin');
        return 'exists';
      }
      await insertBootstrap(secret);
      d.log.info({ name: BOOTSTRAP_ADMIN }, 'admin key from HCP_ADMIN_KEY stored');
      return 'created';
    },
    async ensureSomeAdmin(dir) {
      const admins = (await listKeys(d.db, { includeRevoked: false })).filter((k) => k.role === 'admin');
      if (admins.length) return null;
      const secret = newSecret();
      mkdirSync(dir, { recursive: true });
      const file = join(dir, 'admin.key');
      writeFileSync(file, `${secret}\n`, { mode: 0o600 });
      chmodSync(file, 0o600);
      await insertBootstrap(secret);
      d.log.warn({ file }, 'there was no admin key: one was made and written to this file (mode 0600)');
      return file;
    },
  };
}
