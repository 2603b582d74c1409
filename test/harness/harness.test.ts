import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { describePg } from './pg.js';
import { freePort } from './ports.js';
import { createTestDatabase } from './postgres.js';
import { waitFor, WaitForTimeoutError } from './wait-for.js';

describePg('postgres harness', (db) => {
  const exists = async (adminUrl: string, name: string): Promise<boolean> => {
    const sql = postgres(adminUrl, { max: 1 });
    try {
      const rows = await sql`select 1 from pg_database where datname = ${name}`;
      return rows.length === 1;
    } finally {
      await sql.end();
    }
  };

  it('gives this file a usable database', async () => {
    const sql = postgres(db.url, { max: 1 });
    try {
      const [row] = await sql<{ name: string }[]>`select current_database() as name`;
      expect(row?.name).toMatch(/^hcp_test_/);
    } finally {
      await sql.end();
    }
  });

  it('creates distinct, usable databases and drops them', async () => {
    const a = await createTestDatabase(db.adminUrl);
    const b = await createTestDatabase(db.adminUrl);
    expect(a.name).not.toBe(b.name);
    expect(a.url).not.toBe(b.url);

    const sessions: postgres.Sql[] = [];
    for (const t of [a, b]) {
      const sql = postgres(t.url, { max: 1, onnotice: () => {} });
      sessions.push(sql);
      const [row] = await sql<{ one: number; name: string }[]>`select 1 as one, current_database() as name`;
      expect(row).toEqual({ one: 1, name: t.name });
      // Left open on purpose: drop() must end sessions (WITH (FORCE)).
      await sql`create table marker (id int)`;
    }
    expect(await exists(db.adminUrl, a.name)).toBe(true);

    await a.drop();
    await b.drop();
    await b.drop(); // idempotent
    expect(await exists(db.adminUrl, a.name)).toBe(false);
    expect(await exists(db.adminUrl, b.name)).toBe(false);
    await Promise.all(sessions.map((s) => s.end({ timeout: 1 }).catch(() => {})));
  });
});

describe('waitFor', () => {
  it('resolves with the first truthy value', async () => {
    let n = 0;
    const value = await waitFor(() => (++n >= 3 ? { n } : undefined), { intervalMs: 1 });
    expect(value).toEqual({ n: 3 });
  });

  it('times out naming the message, the last value and the last error', async () => {
    let n = 0;
    const attempt = waitFor(
      () => {
        n += 1;
        if (n % 2 === 0) throw new Error(`boom ${n}`);
        return n > 1000 ? 'never' : 0;
      },
      { timeoutMs: 100, intervalMs: 5, message: 'agent registered' },
    );
    await expect(attempt).rejects.toBeInstanceOf(WaitForTimeoutError);
    await expect(attempt).rejects.toThrow(/^agent registered: timed out after 100 ms/);
    await expect(attempt).rejects.toThrow(/last value: 0/);
    await expect(attempt).rejects.toThrow(/last error: Error: boom \d+/);
  });

  it('does not hang on a condition that never settles', async () => {
    // Without the deadline race this would hang until the test timeout.
    await expect(waitFor(() => new Promise<never>(() => {}), { timeoutMs: 50 })).rejects.toThrow(/timed out/);
  });
});

describe('freePort', () => {
  it('returns a bindable port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });
});
