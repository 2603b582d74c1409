// GET /api/v1/audit: the real route on real PostgreSQL, the entries written by the real audit
// writer; filters, keyset pages, 400s naming the field, and who may read it.
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { KeyRing } from '../control-plane/auth/key-ring.js';
import type { Principal } from '../control-plane/auth/roles.js';
import { createAuditWriter, type AuditWriter } from '../control-plane/db/audit-writer.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate } from '../control-plane/db/migrate.js';
import type { Api } from '../control-plane/http/deps.js';
import { Registry } from '../control-plane/registry/registry.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';
import { testHttpApp } from './harness/http-app.js';
import { describePg } from './harness/pg.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const KEYS: Record<string, Principal> = {
  [TEST_ADMIN_KEY]: { keyId: 'key_a', name: 'test-admin', role: 'admin', customerId: null, siteId: null },
  hcp_viewer_key_of_the_audit_test_000000: { keyId: 'key_v', name: 'v', role: 'viewer', customerId: null, siteId: null },
  hcp_customer_key_of_the_audit_test_0000: { keyId: 'key_c', name: 'c', role: 'customer', customerId: 'acme', siteId: null },
};
const ring: KeyRing = {
  authenticate: (s) => (s ? KEYS[s] ?? null : null),
  isLive: () => true,
  refresh: async () => {},
  onRevoked: () => () => {},
  size: () => Object.keys(KEYS).length,
  close: async () => {},
};

const T0 = Date.parse('2026-11-24T09:00:00Z');
const min = 60_000;

describePg('the audit log, read', (pg) => {
  let db: Db;
  let audit: AuditWriter;
  let app: Api;
  const get = async (path: string, key = TEST_ADMIN_KEY) => {
    const r = await app.request(path, { headers: bearer(key) });
    return { status: r.status, body: (await r.json()) as Json };
  };

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: ':memory:' });
    await migrate(db);
    audit = createAuditWriter({ db, log: pino({ level: 'silent' }) });
    const registry = new Registry({ staleAfterMs: 60_000 });
    app = testHttpApp({ registry, db, audit, ring });
    // 30 entries a minute apart: claims on texas-1 / canada-1 by two operators, and key changes
    for (let i = 0; i < 30; i++) {
      const site = i % 2 === 0 ? 'texas-1' : 'canada-1';
      if (i % 3 === 0) audit.write({ actor: 'key:alice', action: 'key.created', subject: `key_${i}`, details: { name: `k${i}` }, timeMs: T0 + i * min });
      else audit.write({ actor: i % 3 === 1 ? 'key:alice' : 'key:bob', action: i % 4 === 0 ? 'claim.released' : 'claim.created', subject: `clm_${i}`, details: { site, n: i }, timeMs: T0 + i * min });
    }
    audit.write({ actor: 'key:bob', action: 'site.ramp_set', subject: 'texas-1', details: { from: 1, to: 2 }, timeMs: T0 + 30 * min });
  });
  afterAll(async () => {
    await audit?.close();
    await db?.close();
  });

  it('answers every entry newest first, a page at a time, none twice across pages', async () => {
    const seen: Json[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await get(`/api/v1/audit?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.entries);
      cursor = r.body.next_cursor;
      pages++;
    } while (cursor && pages < 20);
    expect(pages).toBe(5); // 31 entries by 7
    expect(seen).toHaveLength(31);
    expect(new Set(seen.map((e) => e.id)).size).toBe(31);
    const times = seen.map((e) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(seen[0]).toMatchObject({ actor: 'key:bob', action: 'site.ramp_set', subject: 'texas-1', details: { from: 1, to: 2 }, time: new Date(T0 + 30 * min).toISOString() });
  });

  it('filters by site (subject or details.site), actor, action or family, and time', async () => {
    const texas = (await get('/api/v1/audit?site=texas-1')).body.entries as Json[];
    expect(texas.length).toBe(1 + [...Array(30).keys()].filter((i) => i % 3 !== 0 && i % 2 === 0).length);
    expect(texas.every((e) => e.subject === 'texas-1' || e.details.site === 'texas-1')).toBe(true);

    const bob = (await get('/api/v1/audit?actor=key:bob&action=claim.created')).body.entries as Json[];
    expect(bob.map((e) => e.details.n)).toEqual([...Array(30).keys()].filter((i) => i % 3 === 2 && i % 4 !== 0).reverse());

    const claims = (await get('/api/v1/audit?action=claim.')).body.entries as Json[];
    expect(claims).toHaveLength(20);
    expect(new Set(claims.map((e) => e.action))).toEqual(new Set(['claim.created', 'claim.released']));

    const from = new Date(T0 + 10 * min).toISOString();
    const to = new Date(T0 + 14 * min).toISOString();
    const window = (await get(`/api/v1/audit?from=${from}&to=${to}`)).body.entries as Json[];
    expect(window.map((e) => Date.parse(e.time))).toEqual([14, 13, 12, 11, 10].map((i) => T0 + i * min));
  });

  it('names the field of a bad query parameter in a 400', async () => {
    for (const [q, field] of [['from=yesterday', 'from'], ['to=2026-13-45', 'to'], ['limit=0', 'limit'], ['limit=5000', 'limit'], ['cursor=nope!', 'cursor'], ['cursor=YWJj', 'cursor'], ['action=DROP%20TABLE', 'action'], [`from=${new Date(T0 + min).toISOString()}&to=${new Date(T0).toISOString()}`, 'from']] as const) {
      const r = await get(`/api/v1/audit?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error.fields.map((f: Json) => f.field), q).toContain(field);
    }
  });

  it('is read with fleet.read: a viewer may, a customer is refused 403', async () => {
    expect((await get('/api/v1/audit?limit=1', 'hcp_viewer_key_of_the_audit_test_000000')).status).toBe(200);
    const r = await get('/api/v1/audit', 'hcp_customer_key_of_the_audit_test_0000');
    expect(r.status).toBe(403);
    expect((await app.request('/api/v1/audit')).status).toBe(401);
  });

  it("tells its listener of each write once the entries are in the table (the console's live audit event)", async () => {
    const told: Array<{ action: string; site: string | null; found: boolean }> = [];
    let wrote!: () => void;
    const written = new Promise<void>((r) => (wrote = r));
    const w = createAuditWriter({
      db, log: pino({ level: 'silent' }),
      onWritten: (entries) => void (async () => {
        // read at once, as the console's re-read does: the entry must already be there
        const rows = (await get('/api/v1/audit?actor=key:carol')).body.entries as Json[];
        for (const e of entries) told.push({ action: e.action, site: e.site, found: rows.some((r) => r.subject === e.subject) });
        wrote();
      })(),
    });
    try {
      w.write({ actor: 'key:carol', action: 'claim.set', subject: 'clm_carol', details: { site: 'texas-2', reason: 'ERCOT EEA' } });
      await written;
      expect(told).toEqual([{ action: 'claim.set', site: 'texas-2', found: true }]);
    } finally {
      await w.close();
    }
  });
});
