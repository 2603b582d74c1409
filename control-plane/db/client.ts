// One database handle for both back ends: a real PostgreSQL/TimescaleDB server (postgres.js)
// when DATABASE_URL is set, PGlite on disk otherwise. Drizzle serves ordinary queries; `query`
// is the raw path for bulk statements that bind whole arrays as single parameters.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.js';

export type Drizzle = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Db {
  readonly kind: 'postgres' | 'pglite';
  readonly orm: Drizzle;
  /** one statement with $n parameters; arrays are bound as one parameter each */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** several statements, no parameters */
  exec(text: string): Promise<void>;
  /** runs fn in one transaction on one connection */
  transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** a transaction's handle */
export interface DbTx extends Pick<Db, 'query' | 'exec'> {
  /**
   * runs fn in a SAVEPOINT: when it throws, what it did is rolled back, the transaction goes on
   * and the error is rethrown (postgres.js fails a whole transaction on any failed statement
   * outside one, even a caught one)
   */
  savepoint<T>(fn: (sp: Pick<Db, 'query' | 'exec'>) => Promise<T>): Promise<T>;
}

export interface DbOptions {
  /** postgres://… ; when absent PGlite is used */
  url?: string;
  /** PGlite data directory; ':memory:' for none */
  dataDir: string;
  maxConnections?: number;
  /**
   * PostgreSQL cancels any statement of this handle running longer than this (SQLSTATE 57014,
   * query_canceled; see isStatementTimeout), so a slow query gives its connection back instead
   * of holding it. For a handle serving API reads, not for ingest or migrations. PGlite ignores
   * it: one process, one connection, nothing to give back, and no timer to cancel with.
   */
  statementTimeoutMs?: number;
  /** application_name, so this handle's connections are told apart in pg_stat_activity */
  applicationName?: string;
}

export async function createDb(opts: DbOptions): Promise<Db> {
  return opts.url ? createPostgresDb(opts.url, opts) : createPgliteDb(opts.dataDir);
}

/** PostgreSQL's code for a statement cancelled by statement_timeout (Appendix A, class 57) */
export const QUERY_CANCELED = '57014';

/** a statement ended by statement_timeout (or by a cancel request: PostgreSQL gives both one code) */
export function isStatementTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === QUERY_CANCELED;
}

function createPostgresDb(url: string, opts: DbOptions): Db {
  // statement_timeout travels in the startup packet (a run-time parameter, PostgreSQL docs
  // §20.11.2), so it holds on every connection of the pool from its first statement, after a
  // reconnect too, with no SET to forget. A pooler in between (PgBouncer) may refuse or drop
  // startup parameters; there, set it for the API's role instead (ALTER ROLE … SET).
  const connection: Record<string, string | number> = {};
  if (opts.statementTimeoutMs !== undefined) connection.statement_timeout = opts.statementTimeoutMs;
  if (opts.applicationName) connection.application_name = opts.applicationName;
  const sql = postgres(url, { max: opts.maxConnections ?? 10, onnotice: () => {}, connect_timeout: 10, connection });
  let closed = false;
  const query = async <T>(text: string, params: unknown[] = []) =>
    (await sql.unsafe(text, params as never[])) as unknown as T[];
  return {
    kind: 'postgres',
    orm: drizzlePostgres(sql, { schema }) as unknown as Drizzle,
    query,
    exec: async (text) => {
      await sql.unsafe(text);
    },
    transaction: async (fn) =>
      (await sql.begin(async (tx) => {
        const on = (c: postgres.TransactionSql) => ({
          query: async <T>(text: string, params: unknown[] = []) =>
            (await c.unsafe(text, params as never[])) as unknown as T[],
          exec: async (text: string) => {
            await c.unsafe(text);
          },
        });
        return fn({ ...on(tx), savepoint: async (f) => (await tx.savepoint((sp) => f(on(sp)))) as never });
      })) as never,
    ping: async () => {
      try {
        await sql`select 1`;
        return true;
      } catch {
        return false;
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await sql.end({ timeout: 5 });
    },
  };
}

/**
 * PGlite is one process's database: two control planes on one data directory would corrupt it.
 * A lock file holding the owner's pid refuses the second; a lock left by a dead process is taken.
 */
function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'hcp.lock');
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    const pid = Number(readFileSync(file, 'utf8'));
    let alive = false;
    try {
      alive = pid > 0 && pid !== process.pid && process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (alive) throw new Error(`the data directory ${dataDir} is in use by another control plane (pid ${pid}); stop it or set HCP_DATA_DIR`);
    writeFileSync(file, String(process.pid));
  }
  return () => rmSync(file, { force: true });
}

async function createPgliteDb(dataDir: string): Promise<Db> {
  let unlock = () => {};
  if (dataDir !== ':memory:') {
    mkdirSync(dataDir, { recursive: true });
    unlock = lockDataDir(dataDir);
  }
  const pg = dataDir === ':memory:' ? new PGlite() : new PGlite(join(dataDir, 'pglite'));
  await pg.waitReady;
  let closed = false;
  return {
    kind: 'pglite',
    orm: drizzlePglite(pg, { schema }) as unknown as Drizzle,
    query: async <T>(text: string, params: unknown[] = []) => (await pg.query<T>(text, params)).rows,
    exec: async (text) => {
      await pg.exec(text);
    },
    transaction: (fn) =>
      pg.transaction((tx) => {
        const handle = {
          query: async <T>(text: string, params: unknown[] = []) => (await tx.query<T>(text, params)).rows,
          exec: async (text: string) => {
            await tx.exec(text);
          },
        };
        let n = 0;
        return fn({
          ...handle,
          savepoint: async (f) => {
            const name = `hcp_sp_${++n}`;
            await tx.exec(`SAVEPOINT ${name}`);
            try {
              const r = await f(handle);
              await tx.exec(`RELEASE SAVEPOINT ${name}`);
              return r;
            } catch (err) {
              await tx.exec(`ROLLBACK TO SAVEPOINT ${name}`);
              throw err;
            }
          },
        });
      }),
    ping: async () => !closed && !pg.closed,
    close: async () => {
      if (closed) return;
      closed = true;
      await pg.close();
      unlock();
    },
  };
}
