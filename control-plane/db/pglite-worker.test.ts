// The embedded database on its own thread (pglite-worker.ts, client.ts createPgliteDb): the
// handle keeps the semantics the stores rely on — transactions isolated from statements sent
// meanwhile, rollback on a throw, savepoints, SQLSTATEs on errors, Drizzle's row mapping.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from './client.js';
import { sqlState } from './db-error.js';
import { migrate } from './migrate.js';
import { facilities } from './schema.js';

describe('PGlite on its own thread', () => {
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ dataDir: ':memory:' });
    await db.exec('CREATE TABLE t (id int PRIMARY KEY, v text)');
  });
  afterAll(async () => {
    await db.close();
  });

  it('commits a transaction, and a statement sent during it waits for its end', async () => {
    let outsideSaw: number | null = null;
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES (1, $1)', ['a']);
      // sent while the transaction is open: it runs after the COMMIT, so it sees the row
      void db.query<{ n: number }>('SELECT count(*)::int AS n FROM t').then((r) => (outsideSaw = r[0]!.n));
      await tx.query('INSERT INTO t VALUES (2, $1)', ['b']);
    });
    await db.query('SELECT 1');
    expect(outsideSaw).toBe(2);
  });

  it('rolls back when the function throws, and rethrows its error', async () => {
    const boom = new Error('boom');
    await expect(db.transaction(async (tx) => {
      await tx.query('INSERT INTO t VALUES (3, $1)', ['c']);
      throw boom;
    })).rejects.toBe(boom);
    expect(await db.query('SELECT id FROM t WHERE id = 3')).toEqual([]);
  });

  it('keeps the SQLSTATE and severity of a refused statement, and a savepoint lets the transaction go on', async () => {
    const err = await db.query('INSERT INTO t VALUES (1, $1)', ['dup']).catch((e: unknown) => e);
    expect(sqlState(err)).toBe('23505');
    await db.transaction(async (tx) => {
      await expect(tx.savepoint((sp) => sp.query('INSERT INTO t VALUES (1, $1)', ['dup']))).rejects.toMatchObject({ code: '23505' });
      await tx.query('INSERT INTO t VALUES (4, $1)', ['d']);
    });
    expect(await db.query('SELECT v FROM t WHERE id = 4')).toEqual([{ v: 'd' }]);
  });

  it('serves Drizzle on the migrated schema: typed columns and timestamps as Dates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-pglite-worker-'));
    const store = await createDb({ dataDir: dir });
    try {
      await migrate(store);
      const seen = new Date('2026-12-02T10:00:00.123Z');
      await store.orm.insert(facilities).values({ id: 'worker-site', name: 'Worker site', region: 'ercot', powerCapacityKw: 250.5, lastSeenAt: seen });
      const [row] = await store.orm.select().from(facilities).where(eq(facilities.id, 'worker-site'));
      expect(row).toMatchObject({ id: 'worker-site', region: 'ercot', powerCapacityKw: 250.5, online: false, lastSeenAt: seen });
      expect(row!.createdAt).toBeInstanceOf(Date);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails every call after close with an error, and close is idempotent', async () => {
    const other = await createDb({ dataDir: ':memory:' });
    await other.close();
    await other.close();
    expect(other.available()).toBe(false);
    await expect(other.query('SELECT 1')).rejects.toThrow();
  });
});
