// query(…, { prepare: true }) on the real PostgreSQL: the statement is kept, named, on its
// connection, so the next call is one Bind/Execute instead of a Parse/Describe round trip first;
// without the option nothing is kept. The control path's inserts (claims, commands) use it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import { describePg } from './harness/pg.js';

describePg('prepared statements', (pg) => {
  let db: Db;
  beforeAll(async () => {
    // one connection: pg_prepared_statements is per session, so it must be the one asking
    db = await createDb({ url: pg.url, dataDir: ':memory:', maxConnections: 1 });
  });
  afterAll(async () => {
    await db?.close();
  });
  const kept = async () =>
    (await db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).map((r) => r.statement);

  it('keeps a statement asked to be prepared, once, and answers from it', async () => {
    const text = 'SELECT count(*)::int AS n FROM json_to_recordset($1::text::json) AS r(id text)';
    const rows = JSON.stringify([{ id: 'a' }, { id: 'b' }]);
    expect(await db.query(text, [rows], { prepare: true })).toEqual([{ n: 2 }]);
    expect(await db.query(text, [JSON.stringify([{ id: 'c' }])], { prepare: true })).toEqual([{ n: 1 }]);
    expect((await kept()).filter((s) => s === text)).toHaveLength(1);
    // and inside a transaction, on the same connection's cache
    expect(await db.transaction((tx) => tx.query(text, [rows], { prepare: true }))).toEqual([{ n: 2 }]);
    expect((await kept()).filter((s) => s === text)).toHaveLength(1);
  });

  it('keeps nothing for a statement not asked to be', async () => {
    const text = 'SELECT $1::int + 1 AS n';
    expect(await db.query(text, [41])).toEqual([{ n: 42 }]);
    expect(await kept()).not.toContain(text);
  });
});
