// The key ring on a real PostgreSQL: a key this process makes or revokes counts at once after
// refresh() (which reads only what changed), and a key of another process that commits with a
// lower version than one already read is still found by the next poll.
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createKeyRing, type KeyRing } from '../control-plane/auth/key-ring.js';
import { hashSecret, newSecret } from '../control-plane/auth/secrets.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { insertKey, revokeKey } from '../control-plane/db/key-store.js';
import { migrate } from '../control-plane/db/migrate.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

describePg('key ring on PostgreSQL', (pg) => {
  let db: Db;
  let ring: KeyRing;
  const revoked: string[] = [];
  let n = 0;
  const make = async (over: { version?: number } = {}) => {
    const secret = newSecret();
    const id = `kr-${++n}`;
    if (over.version === undefined) {
      await insertKey(db, { id, name: id, role: 'viewer', customerId: null, siteId: null, secretSha256: hashSecret(secret), createdBy: 'test' });
    } else {
      await db.query(`INSERT INTO api_keys (id, name, role, secret_sha256, created_by, version) VALUES ($1, $1, 'viewer', $2, 'test', $3)`, [id, hashSecret(secret), over.version]);
    }
    return { id, secret };
  };
  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
    // a poll slow enough that only refresh() can explain a key counting at once
    ring = await createKeyRing({ db, log: pino({ level: 'silent' }), pollMs: 60_000 });
    ring.onRevoked((ids) => void revoked.push(...ids));
  });
  afterAll(async () => {
    await ring?.close();
    await db?.close();
  });

  it('counts a key made here, and stops counting it once revoked here, right after refresh()', async () => {
    const k = await make();
    expect(ring.authenticate(k.secret)).toBeNull();
    await ring.refresh();
    expect(ring.authenticate(k.secret)?.keyId).toBe(k.id);
    await revokeKey(db, k.id, 'test', 'gone');
    await ring.refresh();
    expect(ring.authenticate(k.secret)).toBeNull();
    expect(ring.isLive(k.id)).toBe(false);
    expect(revoked).toContain(k.id);
  });

  it('finds at the next poll a key that committed with a lower version than one refresh() already read', async () => {
    const polled = await createKeyRing({ db, log: pino({ level: 'silent' }), pollMs: 50 });
    try {
      const { v } = (await db.query<{ v: string }>(`SELECT nextval('api_keys_version_seq')::text AS v`))[0]!;
      const high = await make({ version: Number(v) + 1000 });
      await polled.refresh();
      expect(polled.authenticate(high.secret)?.keyId).toBe(high.id);
      // drawn before `high`, committed after it
      const late = await make({ version: Number(v) + 500 });
      await waitFor(() => polled.authenticate(late.secret)?.keyId === late.id, { message: 'the poll read the late key' });
      expect(polled.authenticate(high.secret)?.keyId).toBe(high.id);
    } finally {
      await polled.close();
    }
  });
});
