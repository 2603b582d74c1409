// The fenced insert of new commands (db/command-store.ts insertCommands): one statement that locks
// the lease row FOR SHARE and inserts only while the lease carries the fence's token. On a real
// PostgreSQL, with a second session standing in for the replica that takes over.
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import { insertCommands, type StoredCommand } from '../control-plane/db/command-store.js';
import { migrate } from '../control-plane/db/migrate.js';
import { FencedError, type Fence } from '../control-plane/ha/fence.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

function command(id: string): StoredCommand {
  const now = Date.now();
  return {
    id, siteId: 'texas-1', payload: { type: 'set_mining', enabled: false, deviceIds: ['asic-1'], powerTargetW: null } as StoredCommand['payload'],
    state: 'pending', actor: 'system:reconciler', workloadId: null, createdAtMs: now, deadlineMs: now + 60_000, sentAtMs: null, ackedAtMs: null,
    finishedAtMs: null, attempts: 0, reasonCode: null, message: null, devices: null, details: { source: 'operator', reason: 'with "quotes" and ü' },
  };
}

describePg('fenced command inserts on PostgreSQL', (pg) => {
  let db: Db;
  let other: postgres.Sql;
  const told: FencedError[] = [];
  const fence = (token: string): Fence => ({ name: 'singletons', token, onFenced: (e) => void told.push(e) });
  const stored = async (prefix: string) =>
    (await db.query<{ id: string; payload: { deviceIds: string[] }; details: { reason: string } }>(`SELECT id, payload, details FROM commands WHERE id LIKE $1 ORDER BY id`, [`${prefix}%`]));

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
    await db.query(`INSERT INTO leases (name, holder, token, expires_at) VALUES ('singletons', 'a', 7, now() + interval '1 minute')`);
    other = postgres(pg.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await other?.end();
    await db?.close();
  });

  it('stores every command, payload and details intact, under the token the lease carries', async () => {
    await insertCommands(db, [command('ok-1'), command('ok-2')], fence('7'));
    const rows = await stored('ok-');
    expect(rows.map((r) => r.id)).toEqual(['ok-1', 'ok-2']);
    expect(rows[0]!.payload.deviceIds).toEqual(['asic-1']);
    expect(rows[0]!.details.reason).toBe('with "quotes" and ü');
  });

  it('refuses a deposed leader’s commands, stores none, and tells the fence’s holder', async () => {
    const err = await insertCommands(db, [command('old-1'), command('old-2')], fence('6')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ token: '6', current: '7' });
    expect(told.at(-1)).toBe(err);
    expect(await stored('old-')).toEqual([]);
  });

  it('waits for a takeover under way, then refuses: never lands after the new leader’s token', async () => {
    const before = told.length;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let updated!: () => void;
    const holding = new Promise<void>((r) => (updated = r));
    // the other replica takes the lease (token 8) and has not committed yet
    const takeover = other.begin(async (tx) => {
      await tx`UPDATE leases SET token = 8, holder = 'b' WHERE name = 'singletons'`;
      updated();
      await held;
    });
    await holding;
    const watcher = postgres(pg.url, { max: 1, onnotice: () => {} });
    const insert = insertCommands(db, [command('race-1')], fence('7')).then(() => 'stored', (e: unknown) => e);
    // the insert waits on the lease row's lock, behind the takeover
    await waitFor(async () => (await watcher.unsafe(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%'`)).length > 0 || undefined,
      { timeoutMs: 10_000, message: 'the insert waits for the takeover' });
    await watcher.end();
    release();
    await takeover;
    const err = await insert;
    expect(err).toBeInstanceOf(FencedError);
    expect(err).toMatchObject({ token: '7', current: '8' });
    expect(told.length).toBe(before + 1);
    expect(await stored('race-')).toEqual([]);
    // and the new leader's own commands land
    await insertCommands(db, [command('new-1')], fence('8'));
    expect((await stored('new-')).map((r) => r.id)).toEqual(['new-1']);
  });
});
