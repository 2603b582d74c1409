// A database connection ended under a statement (pg_terminate_backend: what a failover, an
// operator or a FATAL does) fails that statement and nothing else: no uncaught exception, and the
// handle's next statements run on new connections. Before db/client.ts ran transactions itself,
// a transaction whose session was terminated made postgres.js write its ROLLBACK to the closed
// socket from a setImmediate (`TypeError: Cannot read properties of null (reading 'write')`),
// ending the process: vitest reports such an error as a failure of this file. Also here, on the
// real server: migrate() over a session killed mid-migration reports an error, and the
// extension-less (plain-table) path runs.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sql as dsql } from 'drizzle-orm';
import { createDb, type Db } from '../control-plane/db/client.js';
import { isDbUnavailable } from '../control-plane/db/db-error.js';
import { MIGRATIONS_DIR, migrate } from '../control-plane/db/migrate.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

describePg('connections terminated mid-statement', (pg) => {
  const app = `hcp-term-${process.pid}`;
  let db: Db;
  let admin: postgres.Sql;
  const changes: boolean[] = [];
  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: ':memory:', maxConnections: 3, applicationName: app, onAvailability: (up) => changes.push(up) });
    admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await db?.close();
    await admin?.end();
  });

  /** terminates this handle's backends once one of them runs `marker` */
  const terminateWhenRunning = async (marker: string) => {
    await waitFor(async () => (await admin`SELECT 1 FROM pg_stat_activity WHERE application_name = ${app} AND query LIKE ${`%${marker}%`} AND state = 'active'`).length > 0, {
      message: `a backend running ${marker}`,
    });
    const r = await admin`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = ${app}`;
    return r.length;
  };

  it('a transaction whose session is terminated rejects, and the next one runs', async () => {
    const tx = db.transaction(async (t) => {
      await t.query('SELECT 1');
      await t.query("SELECT pg_sleep(10), 'tx-marker'");
    });
    const terminated = terminateWhenRunning('tx-marker');
    const err = await tx.then(() => null, (e: unknown) => e);
    expect(await terminated).toBeGreaterThan(0);
    expect(isDbUnavailable(err)).toBe(true);
    await waitFor(() => db.available(), { message: 'the circuit closes again' });
    expect(await db.transaction((t) => t.query<{ n: number }>('SELECT 2 AS n'))).toEqual([{ n: 2 }]);
    // a failing statement inside a live transaction still rolls back and gives the connection back
    await expect(db.transaction((t) => t.query('SELECT 1/0'))).rejects.toMatchObject({ code: '22012' });
    expect(await db.query<{ n: number }>('SELECT 3 AS n')).toEqual([{ n: 3 }]);
    expect(changes).toContain(false);
    expect(changes.at(-1)).toBe(true);
  });

  it('a transaction whose session is terminated between two statements fails its next one, and the pool serves on', async () => {
    // The session ends while the transaction's code runs between statements, and a pool query
    // is queued for a connection meanwhile, so the pool reopens the closed connection for it.
    // postgres.js 3.4.9 writes the transaction's next statement to that connection's dropped
    // socket (an uncaught TypeError) or its reopened one (never settles): client.ts fails it
    // as CONNECTION_CLOSED without sending it.
    for (const queued of [false, true]) {
      const busy = queued ? Array.from({ length: 3 }, () => db.query('SELECT pg_sleep(0.3)').then(() => 'ok', () => 'failed')) : [];
      let between = '';
      const tx = db.transaction(async (t) => {
        const pid = (await t.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid;
        await admin`SELECT pg_terminate_backend(${pid})`;
        // the client hears the session end (the pool's onclose) before the next statement
        await waitFor(async () => (await admin`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length === 0, { message: 'the backend gone' });
        await new Promise((r) => setImmediate(r));
        between = 'sent';
        await t.query('SELECT 1');
      });
      const err = await tx.then(() => null, (e: unknown) => e);
      expect(between).toBe('sent');
      expect(isDbUnavailable(err), String(err)).toBe(true);
      await Promise.all(busy);
      await waitFor(() => db.available(), { message: 'the circuit closes again' });
      expect(await db.transaction((t) => t.query<{ n: number }>('SELECT 5 AS n'))).toEqual([{ n: 5 }]);
      expect(await db.query<{ n: number }>('SELECT 6 AS n')).toEqual([{ n: 6 }]);
    }
  });

  it('a plain query and a Drizzle query whose sessions are terminated reject, and the handle recovers', async () => {
    // handled from the start: it may reject before terminateWhenRunning returns
    const q = db.query("SELECT pg_sleep(10), 'plain-marker'").then(() => null, (e: unknown) => e);
    await terminateWhenRunning('plain-marker');
    expect(isDbUnavailable(await q)).toBe(true);
    await waitFor(() => db.available(), { message: 'the circuit closes again' });
    // a Drizzle query runs when awaited: then() starts it
    // (the first statement on a pooled connection the last termination ended can fail before it
    // runs: then it is sent again, until one is running to be terminated)
    let settled = false;
    let o: Promise<unknown> = Promise.resolve(null);
    const start = () => {
      settled = false;
      o = db.orm.execute(dsql`SELECT pg_sleep(10), 'orm-marker'`).then(() => null, (e: unknown) => e).finally(() => (settled = true));
    };
    start();
    await waitFor(async () => {
      if (settled) start();
      return (await admin`SELECT 1 FROM pg_stat_activity WHERE application_name = ${app} AND query LIKE '%orm-marker%' AND state = 'active'`).length > 0;
    }, { message: 'a backend running orm-marker', timeoutMs: 10_000 });
    await terminateWhenRunning('orm-marker');
    expect(isDbUnavailable(await o)).toBe(true);
    await waitFor(() => db.available(), { message: 'the circuit closes again' });
    expect(await db.orm.execute(dsql`SELECT 4 AS n`)).toMatchObject([{ n: 4 }]);
    expect(await db.ping()).toBe(true);
  });

  it('migrate() over a session that is killed mid-migration reports the error; a later run completes', async () => {
    // A copy of the migrations with one more file that ends its own session, like CREATE
    // EXTENSION's `FATAL: extension "timescaledb" must be preloaded` does.
    const dir = mkdtempSync(join(tmpdir(), 'hcp-mig-'));
    for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql'))) writeFileSync(join(dir, f), readFileSync(join(MIGRATIONS_DIR, f)));
    writeFileSync(join(dir, '9990_kill.sql'), 'CREATE TABLE killed_here (id int);\nSELECT pg_terminate_backend(pg_backend_pid());\n');
    const err = await migrate(db, dir).then(() => null, (e: unknown) => e);
    expect(err).toBeTruthy();
    expect(isDbUnavailable(err)).toBe(true);
    await waitFor(() => db.available(), { message: 'the circuit closes again' });
    // the killed file's transaction was rolled back by the server, and not recorded
    expect(await db.query(`SELECT 1 FROM hcp_migrations WHERE name = '9990_kill.sql'`)).toEqual([]);
    expect(await db.query(`SELECT to_regclass('killed_here') AS t`)).toEqual([{ t: null }]);
    const outcomes = await migrate(db);
    expect(outcomes.every((o) => o.status !== 'applied' || !o.name.startsWith('9990'))).toBe(true);
  });

  it('runs the plain-table schema where timescaledb is not available, and says why', async () => {
    const outcomes = await migrate(db);
    const timescale = outcomes.filter((o) => /timescale/.test(o.name));
    expect(timescale.length).toBeGreaterThan(0);
    for (const o of timescale) expect(o).toMatchObject({ status: 'skipped', reason: 'extension timescaledb is not available' });
    expect(await db.query(`SELECT to_regclass('gpu_telemetry') AS t`)).toEqual([{ t: 'gpu_telemetry' }]);
  });

  it('a file whose extension turns out not preloaded is skipped with one warning, and the rest applies', async () => {
    // plpgsql is available everywhere; the file raises the server's words for a missing preload,
    // as an ERROR (a FATAL cannot be raised from SQL; the session-ending kind is the test above)
    const dir = mkdtempSync(join(tmpdir(), 'hcp-mig-'));
    const raise = `DO $$ BEGIN RAISE EXCEPTION 'extension "plpgsql" must be preloaded' USING ERRCODE = '0A000'; END $$;\n`;
    writeFileSync(join(dir, '0001_a.sql'), `-- hcp:requires-extension plpgsql\n${raise}`);
    writeFileSync(join(dir, '0002_b.sql'), `-- hcp:requires-extension plpgsql\n${raise}`);
    writeFileSync(join(dir, '0003_plain.sql'), 'CREATE TABLE after_preload (id int);\n');
    const warnings: Array<{ msg: string; details: Record<string, unknown> }> = [];
    const outcomes = await migrate(db, dir, { warn: (msg, details) => warnings.push({ msg, details }) });
    expect(outcomes.map((o) => `${o.name}:${o.status}`)).toEqual(['0001_a.sql:skipped', '0002_b.sql:skipped', '0003_plain.sql:applied']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain("shared_preload_libraries = 'plpgsql'");
    expect(outcomes[0]!.reason).toContain('not preloaded');
  });
});
