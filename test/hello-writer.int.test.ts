// Hellos that arrive together share one statement (db/hello-writer.ts): on a real PostgreSQL and
// on PGlite, a burst of Hellos lands in one round trip, Hellos that come while it runs go in the
// next, a Hello the database refuses fails alone, and a device named twice keeps the last value.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import { createHelloWriter, HelloRefusedError } from '../control-plane/db/hello-writer.js';
import { migrate } from '../control-plane/db/migrate.js';
import { insertSite, type HelloRow } from '../control-plane/db/registry-store.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

let sites = 0;
/** a fresh site with `n` ASICs in its Hello */
async function helloFor(db: Db, n: number, over: Partial<HelloRow['devices'][number]> = {}): Promise<HelloRow> {
  const id = `hw-${++sites}`;
  await insertSite(db, { id, name: id, region: 'ercot', powerCapacityKw: 0, timezone: 'UTC' });
  return {
    site: { id, lastSeenMs: Date.now(), agentVersion: '1.2.3', agentSession: `s-${id}`, agentHostname: `host-${id}` },
    devices: Array.from({ length: n }, (_, i) => ({
      id: `asic-${id}-${i}`, siteId: id, kind: 'asic' as const, model: 'S21', driver: 'sim', endpoint: null, serial: `sn-${i}`,
      ratedPowerW: 3500, ratedHashrateThs: 200, memoryTotalMib: null, ...over,
    })),
  };
}

/** the real database, its statements counted; `gate` holds the next statement until released */
function counted(db: Db) {
  const calls: unknown[][] = [];
  let gate: Promise<void> | null = null;
  let open = () => {};
  const on: Pick<Db, 'query'> = {
    query: (async (text: string, params?: unknown[], opts?: unknown) => {
      calls.push(params ?? []);
      if (gate) await gate;
      return db.query(text, params as never, opts as never);
    }) as Db['query'],
  };
  return {
    on, calls,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      gate = null;
      open();
    },
  };
}

const n = async (db: Db, sql: string, params: unknown[]) => Number((await db.query<{ n: number }>(sql, params))[0]!.n);

function helloWriterTests(db: () => Db) {
  it('writes 200 Hellos made in one turn with one statement: every site and device is there', async () => {
    const c = counted(db());
    const save = createHelloWriter(c.on);
    const hellos = await Promise.all(Array.from({ length: 200 }, () => helloFor(db(), 5)));
    await Promise.all(hellos.map((h) => save(h)));
    expect(c.calls).toHaveLength(1);
    const ids = hellos.map((h) => h.site.id);
    expect(await n(db(), `SELECT count(*)::int AS n FROM resources WHERE facility_id = ANY($1::text[])`, [ids])).toBe(1000);
    expect(await n(db(), `SELECT count(*)::int AS n FROM facilities WHERE id = ANY($1::text[]) AND agent_session = 's-' || id AND agent_hostname = 'host-' || id AND last_seen_at IS NOT NULL`, [ids])).toBe(200);
  });

  it('puts the Hellos that arrive while a statement runs in the next one', async () => {
    const c = counted(db());
    const save = createHelloWriter(c.on);
    const first = await helloFor(db(), 2);
    const later = await Promise.all(Array.from({ length: 30 }, () => helloFor(db(), 2)));
    c.hold();
    const p1 = save(first);
    await waitFor(() => c.calls.length === 1, { message: 'the first statement started' });
    const rest = later.map((h) => save(h));
    c.release();
    await Promise.all([p1, ...rest]);
    expect(c.calls).toHaveLength(2);
    // the second statement's first parameter is its sites' ids: all 30
    expect((c.calls[1]![0] as string[]).sort()).toEqual(later.map((h) => h.site.id).sort());
  });

  it('fails only the Hello the database refuses (a NUL in a model): the other 49 are written', async () => {
    const save = createHelloWriter(db());
    const hellos = await Promise.all(Array.from({ length: 50 }, (_, i) => helloFor(db(), 3, i === 17 ? { model: 'S21\u0000' } : {})));
    const out = await Promise.allSettled(hellos.map((h) => save(h)));
    const failed = out.flatMap((o, i) => (o.status === 'rejected' ? [{ i, err: o.reason as unknown }] : []));
    expect(failed.map((f) => f.i)).toEqual([17]);
    expect(failed[0]!.err).toBeInstanceOf(HelloRefusedError);
    expect((failed[0]!.err as HelloRefusedError).sqlState).toBe('22021');
    const good = hellos.filter((_, i) => i !== 17).map((h) => h.site.id);
    expect(await n(db(), `SELECT count(*)::int AS n FROM resources WHERE facility_id = ANY($1::text[])`, [good])).toBe(49 * 3);
    expect(await n(db(), `SELECT count(*)::int AS n FROM resources WHERE facility_id = $1`, [hellos[17]!.site.id])).toBe(0);
  });

  it('takes a site said twice in one batch (an agent that reconnected at once) with its last Hello', async () => {
    const save = createHelloWriter(db());
    const a = await helloFor(db(), 2);
    const again: HelloRow = {
      site: { ...a.site, agentSession: 'second' },
      devices: a.devices.map((d) => ({ ...d, model: 'S21 Pro' })),
    };
    await Promise.all([save(a), save(again)]);
    const rows = await db().query<{ model: string }>(`SELECT model FROM resources WHERE facility_id = $1`, [a.site.id]);
    expect(rows.map((r) => r.model)).toEqual(['S21 Pro', 'S21 Pro']);
    expect((await db().query<{ s: string }>(`SELECT agent_session AS s FROM facilities WHERE id = $1`, [a.site.id]))[0]!.s).toBe('second');
  });

  it('judges a site said twice in one batch by its last Hello alone: an earlier one the database would refuse shares the last one’s outcome', async () => {
    const save = createHelloWriter(db());
    const a = await helloFor(db(), 2, { model: 'S21\u0000' });
    const again: HelloRow = { site: { ...a.site, agentSession: 'fixed' }, devices: a.devices.map((d) => ({ ...d, model: 'S21 XP' })) };
    // another site's refused Hello splits the batch, so the two no longer share a statement
    const other = await helloFor(db(), 1, { model: 'S21\u0000' });
    const out = await Promise.allSettled([save(a), save(other), save(again)]);
    expect(out.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const rows = await db().query<{ model: string }>(`SELECT model FROM resources WHERE facility_id = $1`, [a.site.id]);
    expect(rows.map((r) => r.model)).toEqual(['S21 XP', 'S21 XP']);
  });

  it('leaves a device with the site that owns it when another site’s Hello names it', async () => {
    const save = createHelloWriter(db());
    const owner = await helloFor(db(), 1);
    await save(owner);
    const thief = await helloFor(db(), 0);
    await save({ ...thief, devices: owner.devices.map((d) => ({ ...d, siteId: thief.site.id, model: 'stolen' })) });
    const row = (await db().query<{ f: string; model: string }>(`SELECT facility_id AS f, model FROM resources WHERE id = $1`, [owner.devices[0]!.id]))[0]!;
    expect(row).toEqual({ f: owner.site.id, model: 'S21' });
  });
}

describePg('hello writer on PostgreSQL', (pg) => {
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
  });
  helloWriterTests(() => db);
});

describe('hello writer on PGlite', () => {
  let db: Db;
  const dir = mkdtempSync(join(tmpdir(), 'hcp-hello-writer-'));
  beforeAll(async () => {
    db = await createDb({ dataDir: dir });
    await migrate(db);
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  helloWriterTests(() => db);
});
