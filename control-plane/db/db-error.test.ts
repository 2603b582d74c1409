// Classification of the errors PGlite really raises (the postgres.js ones are classified in
// test/dead-letter.int.test.ts against a real server).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from './client.js';
import { classifyDbError, sqlState } from './db-error.js';

const raised = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the statement to fail');
};

describe('classifyDbError', () => {
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ dataDir: ':memory:' });
    await db.exec('CREATE TABLE t (id int4 PRIMARY KEY, n int4 NOT NULL, d jsonb)');
  });
  afterAll(async () => {
    await db.close();
  });

  it.each([
    ['int4 out of range', 'SELECT x FROM unnest($1::int4[]) x', [[4e9]], '22003'],
    ['a fraction for int8', 'SELECT x FROM unnest($1::int8[]) x', [[1.5]], '22P02'],
    ['float8 beyond float4', 'SELECT x::real FROM unnest($1::float8[]) x', [[1e39]], '22003'],
    ['NUL in text', 'SELECT x FROM unnest($1::text[]) x', [['a\u0000b']], '22021'],
    ['\\u0000 in jsonb', 'SELECT x::jsonb FROM unnest($1::text[]) x', [[JSON.stringify({ m: 'a\u0000b' })]], '22P05'],
    ['NULL into NOT NULL', 'INSERT INTO t (id, n) VALUES (1, NULL)', [], '23502'],
  ])('PGlite: %s is content (%s)', async (_what, text, params, code) => {
    const err = await raised(db.query(text, params));
    expect(sqlState(err)).toBe(code);
    expect(classifyDbError(err)).toBe('content');
  });

  it('PGlite: a unique violation is content', async () => {
    await db.query('INSERT INTO t (id, n) VALUES (7, 1)');
    const err = await raised(db.query('INSERT INTO t (id, n) VALUES (7, 1)'));
    expect(sqlState(err)).toBe('23505');
    expect(classifyDbError(err)).toBe('content');
  });

  it('PGlite: an undefined table is transient: it is the same for every row', async () => {
    const err = await raised(db.query('SELECT * FROM no_such_table'));
    expect(sqlState(err)).toBe('42P01');
    expect(classifyDbError(err)).toBe('transient');
  });

  it('PGlite: a closed database is transient', async () => {
    const closed = await createDb({ dataDir: ':memory:' });
    await closed.close();
    const err = await raised(closed.query('SELECT 1'));
    expect(sqlState(err)).toBeNull();
    expect(classifyDbError(err)).toBe('transient');
  });

  it('an errno that looks like a SQLSTATE is not one', () => {
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' });
    expect(sqlState(epipe)).toBeNull();
    expect(classifyDbError(epipe)).toBe('transient');
    expect(classifyDbError(Object.assign(new Error('x'), { code: 'CONNECTION_CLOSED' }))).toBe('transient');
    expect(classifyDbError(undefined)).toBe('transient');
  });
});
