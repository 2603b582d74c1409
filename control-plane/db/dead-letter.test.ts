// The search for bad rows, on a real database (PGlite in memory): what it writes, what it hands
// back, and how many statements it costs.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDb, type Db } from './client.js';
import { WriteInterruptedError, writeWithDeadLetters } from './dead-letter.js';

interface Row {
  id: number;
  v: number;
  s?: string;
}

describe('writeWithDeadLetters (PGlite)', () => {
  let db: Db;
  let statements = 0;
  let beforeWrite: (n: number) => Promise<void> = async () => {};
  const write = async (rows: Row[]) => {
    statements++;
    await beforeWrite(statements);
    await db.query(
      `INSERT INTO t (id, v, s) SELECT id, v, s FROM unnest($1::int4[], $2::int4[], $3::text[]) AS r(id, v, s)
       ON CONFLICT (id) DO UPDATE SET v = excluded.v`,
      [rows.map((r) => r.id), rows.map((r) => r.v), rows.map((r) => r.s ?? '')],
    );
  };
  const ids = async () => (await db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).map((r) => r.id);
  const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

  beforeAll(async () => {
    db = await createDb({ dataDir: ':memory:' });
    await db.exec('CREATE TABLE t (id int4 PRIMARY KEY, v int4 NOT NULL, s text NOT NULL)');
  });
  afterAll(async () => {
    await db.close();
  });
  beforeEach(async () => {
    statements = 0;
    beforeWrite = async () => {};
    await db.exec('DELETE FROM t');
  });

  it('writes a clean batch with one statement', async () => {
    const rows = range(1000).map((id) => ({ id, v: id }));
    expect(await writeWithDeadLetters(rows, write)).toEqual([]);
    expect(statements).toBe(1);
    expect(await ids()).toEqual(range(1000));
  });

  it('hands back the one bad row of 100 with the database message and writes the other 99', async () => {
    const rows = range(100).map((id) => ({ id, v: id === 37 ? 4e9 : id }));
    const dead = await writeWithDeadLetters(rows, write);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ row: { id: 37 }, code: '22003', unresolved: false });
    expect(dead[0]!.message).toMatch(/out of range for type integer/);
    expect(await ids()).toEqual(range(100).filter((id) => id !== 37));
    // one full try, then about two per halving down to 16 rows, then the 16 one by one
    expect(statements).toBeLessThan(30);
  });

  it('finds rows bad for different reasons, each with its own SQLSTATE', async () => {
    const rows: Row[] = range(200).map((id) => ({ id, v: id }));
    rows[3] = { id: 3, v: 1.5 };
    rows[150] = { id: 150, v: 1, s: 'a\u0000b' };
    const dead = await writeWithDeadLetters(rows, write);
    expect(dead.map((d) => [d.row.id, d.code]).sort()).toEqual([[150, '22021'], [3, '22P02']]);
    expect(await ids()).toHaveLength(198);
  });

  it('does not call rows bad that the database refuses only together', async () => {
    // ids 5 and 30 twice in one statement: ON CONFLICT DO UPDATE cannot affect a row twice
    // (21000); apart, both are fine
    const rows = range(40).map((id) => ({ id: id === 30 ? 5 : id, v: id }));
    expect(await writeWithDeadLetters(rows, write)).toEqual([]);
    expect(await ids()).toEqual(range(40).filter((id) => id !== 30));
    // halving down to single rows, which are tried before they are called bad
    await db.exec('DELETE FROM t');
    expect(await writeWithDeadLetters(rows, write, { leafRows: 1 })).toEqual([]);
    expect(await ids()).toEqual(range(40).filter((id) => id !== 30));
  });

  it('bounds the work when many rows are bad', async () => {
    const rows = range(2000).map((id) => ({ id, v: id % 2 ? 4e9 : id }));
    const dead = await writeWithDeadLetters(rows, write, { maxStatements: 60 });
    expect(statements).toBeLessThanOrEqual(61);
    // every row is either written or handed back, never both, never neither
    const written = new Set(await ids());
    expect(dead.every((d) => !written.has(d.row.id))).toBe(true);
    expect(written.size + dead.length).toBe(2000);
    expect(dead.filter((d) => !d.unresolved).every((d) => d.row.v === 4e9)).toBe(true);
    expect(dead.some((d) => d.unresolved)).toBe(true);
    expect([...written].every((id) => id % 2 === 0)).toBe(true);
  });

  it('throws a transient error with every row as unwritten', async () => {
    await db.exec('ALTER TABLE t RENAME TO t_away');
    try {
      const rows = range(10).map((id) => ({ id, v: id }));
      const err = await writeWithDeadLetters(rows, write).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WriteInterruptedError);
      expect((err as WriteInterruptedError<Row>).unwritten).toEqual(rows);
      expect((err as WriteInterruptedError<Row>).rejected).toEqual([]);
    } finally {
      await db.exec('ALTER TABLE t_away RENAME TO t');
    }
  });

  it('when a fault interrupts the search, names exactly the rows it did not write', async () => {
    const rows = range(100).map((id) => ({ id, v: id === 80 || id === 10 ? 4e9 : id }));
    // the table goes away at the sixth statement, in the middle of the search: the whole, both
    // halves and 0..24 have failed, 25..49 is written
    beforeWrite = async (n) => {
      if (n === 6) await db.exec('ALTER TABLE t RENAME TO t_away');
    };
    const err = (await writeWithDeadLetters(rows, write).catch((e: unknown) => e)) as WriteInterruptedError<Row>;
    await db.exec('ALTER TABLE t_away RENAME TO t');
    expect(err).toBeInstanceOf(WriteInterruptedError);
    const written = await ids();
    const unwritten = err.unwritten.map((r) => r.id);
    const rejected = err.rejected.map((r) => r.row.id);
    expect(written.length).toBeGreaterThan(0);
    expect([...written, ...unwritten, ...rejected].sort((a, b) => a - b)).toEqual(range(100));
    // the retry of the unwritten rows finishes the job
    beforeWrite = async () => {};
    const dead = await writeWithDeadLetters(err.unwritten, write);
    expect([...rejected, ...dead.map((d) => d.row.id)].sort((a, b) => a - b)).toEqual([10, 80]);
    expect(await ids()).toEqual(range(100).filter((id) => id !== 10 && id !== 80));
  });
});
