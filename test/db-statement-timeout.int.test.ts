// createDb({ statementTimeoutMs }) on the real PostgreSQL: a statement running past the timeout
// is cancelled by the server with SQLSTATE 57014, and the connection stays usable.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, isStatementTimeout, type Db } from '../control-plane/db/client.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

describePg('statement timeout', (pg) => {
  let api: Db;
  let plain: Db;
  beforeAll(async () => {
    api = await createDb({ url: pg.url, dataDir: ':memory:', statementTimeoutMs: 200, maxConnections: 2, applicationName: 'hcp-api-test' });
    plain = await createDb({ url: pg.url, dataDir: ':memory:', maxConnections: 1 });
  });
  afterAll(async () => {
    await api?.close();
    await plain?.close();
  });

  it('cancels a statement that runs past it with 57014', async () => {
    const err = await api.query('SELECT pg_sleep(2)').then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: '57014' });
    expect(isStatementTimeout(err)).toBe(true);
    // the connection went back to the pool in working order
    expect(await api.query<{ n: number }>('SELECT 1 AS n')).toEqual([{ n: 1 }]);
  });

  it('holds inside transactions and on every connection of the pool', async () => {
    const err = await api.transaction((tx) => tx.query('SELECT pg_sleep(2)')).then(() => null, (e: unknown) => e);
    expect(isStatementTimeout(err)).toBe(true);
    // two transactions at once hold both connections of the pool: each stays open until both
    // have read their settings (a transaction ending first would hand its connection on)
    let inside = 0;
    const settings = await Promise.all([0, 1].map(() => api.transaction(async (tx) => {
      const rows = await tx.query<{ t: string; a: string; pid: number }>(
        "SELECT current_setting('statement_timeout') AS t, current_setting('application_name') AS a, pg_backend_pid() AS pid");
      inside++;
      await waitFor(() => inside === 2, { message: 'both transactions open' });
      return rows;
    })));
    expect(new Set(settings.map(([r]) => r?.pid)).size).toBe(2);
    expect(settings.map(([r]) => r && { t: r.t, a: r.a })).toEqual([{ t: '200ms', a: 'hcp-api-test' }, { t: '200ms', a: 'hcp-api-test' }]);
  });

  it('is per handle: one created without it has the server default', async () => {
    const [r] = await plain.query<{ t: string }>("SELECT current_setting('statement_timeout') AS t");
    expect(r?.t).toBe('0');
  });
});
