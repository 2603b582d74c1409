// One database handle for both back ends: a real PostgreSQL/TimescaleDB server (postgres.js)
// when DATABASE_URL is set, PGlite on disk otherwise. Drizzle serves ordinary queries; `query`
// is the raw path for bulk statements that bind whole arrays as single parameters.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzleProxy } from 'drizzle-orm/pg-proxy';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { DbUnavailableError, isDbUnavailable } from './db-error.js';
import type { SerializedError, WorkerInit, WorkerReply, WorkerRequest } from './pglite-worker.js';
import * as schema from './schema.js';

export type Drizzle = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Db {
  readonly kind: 'postgres' | 'pglite';
  readonly orm: Drizzle;
  /** one statement with $n parameters; arrays are bound as one parameter each */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], opts?: QueryOptions): Promise<T[]>;
  /** several statements, no parameters */
  exec(text: string): Promise<void>;
  /** runs fn in one transaction on one connection */
  transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T>;
  ping(): Promise<boolean>;
  /** false while the handle knows the database does not answer (its health circuit is open) */
  available(): boolean;
  close(): Promise<void>;
}

export interface QueryOptions {
  /**
   * PostgreSQL only: a named prepared statement, kept per connection, for a hot statement of
   * fixed text. postgres.js does not prepare `unsafe` text by default, and then sends every
   * statement with parameters as Parse/Describe first (a small write it holds for a
   * setImmediate), waits for the parameter types, and only then sends Bind/Execute: two round
   * trips, each behind whatever the event loop is doing. Prepared, the second time on a
   * connection is one write and one round trip. Not for text that varies (each text is a
   * statement kept on every connection). Behind PgBouncer in transaction mode this needs
   * max_prepared_statements (PgBouncer 1.21+).
   */
  prepare?: boolean;
}

/** a transaction's handle */
export interface DbTx extends Pick<Db, 'query' | 'exec'> {
  /**
   * runs fn in a SAVEPOINT: when it throws, what it did is rolled back, the transaction goes on
   * and the error is rethrown (postgres.js fails a whole transaction on any failed statement
   * outside one, even a caught one)
   */
  savepoint<T>(fn: (sp: Pick<Db, 'query' | 'exec'>) => Promise<T>): Promise<T>;
  /**
   * PostgreSQL only: `COPY … FROM STDIN` (text format) with body as its data. A COPY the server
   * refuses fails as CopyRefusedError, without the server's reason, and the transaction is
   * aborted: the caller writes the rows again another way to learn which row it was.
   */
  copyIn?(copySql: string, body: string | Iterable<string>): Promise<void>;
}

/**
 * The server refused a COPY. postgres.js 3.4.9 never settles a COPY stream whose error arrives
 * after its end (src/connection.js CopyInResponse: the final callback waits for a
 * CommandComplete that never comes, and the COPY query was resolved with the stream long
 * before), so the server's error is not ours to read: a statement sent after the COPY finds the
 * transaction aborted (25P02), and that is how the refusal is known.
 */
export class CopyRefusedError extends Error {
  readonly code = 'COPY_REFUSED';
  constructor(cause: unknown) {
    super('the server refused the COPY; the transaction is aborted', { cause });
    this.name = 'CopyRefusedError';
  }
}

/**
 * A COPY's rows chunk by chunk, each made only when the one before is on its way: the event loop
 * serves others between chunks (a flush of 10,000 rows built and sent at once held it for some
 * 20 ms, a REST call's whole budget gone behind one flush), and the socket's buffer is waited
 * for when full, so a slow server does not pile the body up in memory.
 */
async function sendChunks(w: Writable, chunks: Iterable<string>): Promise<void> {
  for (const chunk of chunks) {
    // gone (the connection closed, or the server's error destroyed it): the caller hears why
    if (w.destroyed) throw new Error('the COPY stream closed before its rows were sent');
    if (!w.write(chunk)) await new Promise<void>((resolve) => {
      const done = () => {
        w.off('drain', done);
        w.off('close', done);
        resolve();
      };
      w.on('drain', done);
      w.on('close', done);
    });
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
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
  /** seconds a new connection may take before the statement waiting on it fails (default DEFAULT_CONNECT_TIMEOUT_S) */
  connectTimeoutS?: number;
  /** hears the health circuit open (up false, with the error that opened it) and close again */
  onAvailability?: (up: boolean, err?: unknown) => void;
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

/** how long a new connection may take (postgres.js connect_timeout), unless the caller says */
export const DEFAULT_CONNECT_TIMEOUT_S = 3;
/** how long close() lets statements finish before it ends the connections */
const CLOSE_GRACE_S = 1;
/** while the circuit is open, the server is asked this often whether it answers again */
const PROBE_MS = 500;

/**
 * A health circuit in front of one postgres.js pool. A statement failing because the database
 * does not answer (isDbUnavailable: refused, reset, terminated, shutting down, connect timeout)
 * opens it, and a probe (`select 1`) is sent at once and then every PROBE_MS until one answers.
 * While it is open every statement fails at once with DbUnavailableError instead of waiting on a
 * connection that cannot be made: the REST API answers 503 within milliseconds, and writers keep
 * their rows and retry (batch-writer.ts). One terminated connection among healthy ones opens it
 * only for the one probe's round trip.
 */
function createCircuit(probe: () => Promise<unknown>, onChange: (up: boolean, err?: unknown) => void) {
  let downSince: number | null = null;
  let timer: NodeJS.Timeout | null = null;
  let probing = false;
  let stopped = false;
  const runProbe = () => {
    timer = null;
    if (stopped || probing || downSince === null) return;
    probing = true;
    probe().then(
      () => {
        probing = false;
        if (downSince === null) return;
        downSince = null;
        onChange(true);
      },
      () => {
        probing = false;
        if (!stopped && downSince !== null) timer = setTimeout(runProbe, PROBE_MS).unref();
      },
    );
  };
  return {
    get downSince() {
      return downSince;
    },
    /** an error seen on a statement: opens the circuit when it says the database is gone */
    saw(err: unknown) {
      if (stopped || downSince !== null || !isDbUnavailable(err)) return;
      downSince = Date.now();
      onChange(false, err);
      runProbe();
    },
    check() {
      if (downSince !== null) throw new DbUnavailableError(downSince);
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** a rejected promise with postgres.js Query's methods drizzle calls, handled so it is never unhandled */
function refused(err: Error) {
  const p = Promise.reject(err);
  p.catch(() => {});
  return Object.assign(p, { values: () => p, raw: () => p, execute: () => p, simple: () => p });
}

function createPostgresDb(url: string, opts: DbOptions): Db {
  // statement_timeout travels in the startup packet (a run-time parameter, PostgreSQL docs
  // §20.11.2), so it holds on every connection of the pool from its first statement, after a
  // reconnect too, with no SET to forget. A pooler in between (PgBouncer) may refuse or drop
  // startup parameters; there, set it for the API's role instead (ALTER ROLE … SET).
  const connection: Record<string, string | number> = {};
  if (opts.statementTimeoutMs !== undefined) connection.statement_timeout = opts.statementTimeoutMs;
  if (opts.applicationName) connection.application_name = opts.applicationName;
  const sql = postgres(url, {
    max: opts.maxConnections ?? 10, onnotice: () => {}, connect_timeout: opts.connectTimeoutS ?? DEFAULT_CONNECT_TIMEOUT_S, connection,
  });
  let closed = false;
  const circuit = createCircuit(() => observed(sql`select 1`), (up, err) => opts.onAvailability?.(up, err));
  // postgres.js fetches the array types (fetch_types) on every new connection from a promise it
  // never awaits (src/connection.js ReadyForQuery → fetchArrayTypes): a connection ended while
  // that query runs is an unhandled rejection, which main.ts knows (isTypeFetchRejection). It
  // cannot be turned off after the first fetch: with fetch_types false, sql.reserve() on a
  // newly made connection never resolves (postgres 3.4.9: ReadyForQuery drops a reserve
  // `initial` without handing the connection over), and transactions reserve.
  const observed = <T>(p: Promise<T>): Promise<T> =>
    p.then(undefined, (err: unknown) => {
      circuit.saw(err);
      throw err;
    });
  // Drizzle's statements go through sql.unsafe too (drizzle-orm/postgres-js/session.js): the
  // circuit refuses them while open and hears their failures. The Query is awaited by drizzle,
  // directly or after .values(), so its own then() is where the failure shows.
  const guarded = new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop !== 'unsafe') return Reflect.get(target, prop, receiver);
      return (...args: Parameters<typeof sql.unsafe>) => {
        if (circuit.downSince !== null) return refused(new DbUnavailableError(circuit.downSince));
        const q = target.unsafe(...args);
        const then = q.then;
        Object.defineProperty(q, 'then', {
          value: function (this: typeof q, ok?: (v: unknown) => unknown, fail?: (e: unknown) => unknown) {
            return then.call(this, ok, (err: unknown) => {
              circuit.saw(err);
              if (fail) return fail(err);
              throw err;
            });
          },
        });
        return q;
      };
    },
  });
  const query = async <T>(text: string, params: unknown[] = [], opts: QueryOptions = {}) => {
    circuit.check();
    return (await observed(sql.unsafe(text, params as never[], { prepare: opts.prepare === true }))) as unknown as T[];
  };
  return {
    kind: 'postgres',
    orm: drizzlePostgres(guarded, { schema }) as unknown as Drizzle,
    query,
    exec: async (text) => {
      circuit.check();
      await observed(sql.unsafe(text));
    },
    transaction: async (fn) => {
      circuit.check();
      return observed(transaction(sql, fn));
    },
    ping: async () => {
      if (closed) return false;
      if (circuit.downSince !== null) return false;
      try {
        await observed(sql`select 1`);
        return true;
      } catch {
        return false;
      }
    },
    available: () => !closed && circuit.downSince === null,
    close: async () => {
      if (closed) return;
      closed = true;
      circuit.stop();
      // The owner closes the handle after the parts using it (docs/conventions.md shutdown
      // order), so no statement is left to wait for but one on a connection the server ended:
      // postgres.js keeps such a connection's last query (src/connection.js closed() does not
      // clear it) and end() waits the whole timeout for it. A short grace, then terminate.
      await sql.end({ timeout: CLOSE_GRACE_S });
    },
  };
}

/** the parts of postgres.js's Connection (src/connection.js) a transaction looks at */
interface ConnectionHandle {
  reserved: unknown;
}

/**
 * One transaction on one reserved connection: BEGIN, fn, COMMIT; ROLLBACK on failure — but only
 * while the connection is still this transaction's. postgres.js's own sql.begin() sends its
 * ROLLBACK on a connection the server has already closed (the session was terminated, or ended
 * by a FATAL such as `extension "timescaledb" must be preloaded`); that write is made from a
 * setImmediate after the socket is gone and throws `TypeError: Cannot read properties of null
 * (reading 'write')` where nothing can catch it, ending the process (postgres 3.4.9
 * src/connection.js nextWrite). A closed connection is told by its `reserved` slot: sql.reserve()
 * sets it to a function of its own, and the pool's onclose sets it to null (src/index.js), all
 * in the same synchronous step that drops the socket. The server rolls back a transaction
 * whose session ended, so nothing is left to undo there; and the pool already has the
 * connection back, so it is not released a second time either.
 */
/**
 * DbTx.savepoint as plain statements inside one transaction (the telemetry writer's careful mode:
 * a failed statement inside one leaves the transaction usable). `alive`: false once the
 * connection is gone, when there is nothing to roll back to.
 */
function savepoints(on: Pick<Db, 'query' | 'exec'>, alive: () => boolean = () => true): DbTx['savepoint'] {
  let n = 0;
  return async (f) => {
    const name = `hcp_sp_${++n}`;
    await on.exec(`SAVEPOINT ${name}`);
    try {
      const r = await f(on);
      await on.exec(`RELEASE SAVEPOINT ${name}`);
      return r;
    } catch (err) {
      if (alive()) await on.exec(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    }
  };
}

/** how long a transaction waits for a connection of its own before it counts the database as away */
const RESERVE_TIMEOUT_MS = 5000;

/**
 * sql.reserve(), bounded: with connections being terminated, a reserve was seen never to resolve
 * (a shutdown waited on the scheduler's transaction for good). Past the bound it fails as the
 * database being away, and a connection handed over later goes straight back to the pool.
 */
async function reserveWithin(sql: postgres.Sql, ms: number): Promise<postgres.ReservedSql> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const pending = sql.reserve();
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          late = true;
          reject(new DbUnavailableError(Date.now(), { cause: new Error(`no connection within ${ms} ms`) }));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (late) pending.then((r) => r.release(), () => {});
  }
}

/** how often a statement of a transaction looks whether its connection is still there */
const ALIVE_CHECK_MS = 200;

/** SQLSTATE in_failed_transaction: a statement after an error in the same transaction */
const IN_FAILED_TRANSACTION = '25P02';

const connectionClosed = () => Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });

/**
 * A statement on a reserved connection that is there, failed as CONNECTION_CLOSED once it is not.
 * postgres.js 3.4.9 does neither for us. A statement given to a reserved connection after the
 * server closed it is written to the socket the pool has since dropped (a TypeError thrown from
 * a setImmediate, which ends the process) or to the socket the pool reopened it with for a
 * queued query (it never settles); and with the session terminated mid-statement a statement was
 * seen pending for good (porsager/postgres#1186 is one such path), stalling the writer waiting on
 * it. The pool's onclose clears the connection's `reserved` slot (see `alive` in transaction()):
 * it is looked at before the statement is sent, and by a timer while it runs.
 */
function whileAlive<T>(send: () => Promise<T>, alive: () => boolean): Promise<T> {
  if (!alive()) return Promise.reject(connectionClosed());
  const statement = send();
  let timer: NodeJS.Timeout | undefined;
  const gone = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (!alive()) reject(connectionClosed());
    }, ALIVE_CHECK_MS);
  });
  statement.catch(() => {}); // settled late, after the race is lost: nobody waits for it
  return Promise.race([statement, gone]).finally(() => clearInterval(timer));
}

async function transaction<T>(sql: postgres.Sql, fn: (tx: DbTx) => Promise<T>): Promise<T> {
  const reserved = await reserveWithin(sql, RESERVE_TIMEOUT_MS);
  let handle: ConnectionHandle | undefined;
  let mine: unknown;
  const alive = () => handle !== undefined && handle.reserved === mine && mine != null;
  try {
    await whileAlive(() => reserved.unsafe('begin', [], {
      // called with the connection as the statement is written (src/connection.js execute);
      // true keeps the connection where reserve() put it
      onexecute: (c: ConnectionHandle) => {
        handle = c;
        mine = c.reserved;
        return true;
      },
    } as never), () => handle === undefined || alive());
    const on: Pick<Db, 'query' | 'exec'> = {
      query: async <R>(text: string, params: unknown[] = [], opts: QueryOptions = {}) =>
        (await whileAlive(() => reserved.unsafe(text, params as never[], { prepare: opts.prepare === true }), alive)) as unknown as R[],
      exec: async (text: string) => {
        await whileAlive(() => reserved.unsafe(text), alive);
      },
    };
    const copyIn = async (copySql: string, body: string) => {
      await whileAlive(async () => {
        const w = (await reserved.unsafe(copySql).writable()) as Writable & { _final(cb: (err?: Error | null) => void): void };
        // sent once the stream's final() has written CopyDone: a statement sent before that is
        // refused (COPY_IN_PROGRESS); its finish may never come (CopyRefusedError)
        await new Promise<void>((resolve, reject) => {
          const final = w._final;
          w._final = function (cb) {
            final.call(this, cb);
            resolve();
          };
          w.once('error', reject);
          if (typeof body === 'string') return void w.end(body);
          void sendChunks(w, body).then(() => w.end(), reject);
        });
        w.on('error', () => {}); // a late error is the probe's to report
      }, alive);
      try {
        await whileAlive(() => reserved.unsafe('SELECT 1'), alive);
      } catch (err) {
        if ((err as { code?: unknown }).code === IN_FAILED_TRANSACTION) throw new CopyRefusedError(err);
        throw err;
      }
    };
    const result = await fn({ ...on, savepoint: savepoints(on, alive), copyIn });
    await whileAlive(() => reserved.unsafe('commit'), alive);
    if (alive()) reserved.release();
    return result;
  } catch (err) {
    if (alive()) {
      try {
        await whileAlive(() => reserved.unsafe('rollback'), alive);
      } catch {
        // the connection went while rolling back: the server ends the transaction with it
      }
      if (alive()) reserved.release();
    }
    throw err;
  }
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

/** a database error as the worker sent it, rebuilt with the fields db-error.ts reads */
function rebuildError(e: SerializedError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  Object.assign(err, e.fields);
  return err;
}

/**
 * The embedded database, on a thread of its own (pglite-worker.ts: why, and the protocol). The
 * handle is the same as the server's: Drizzle through drizzle-orm/pg-proxy, whose callback sends
 * each statement to the worker; transactions are the worker's, by number.
 */
async function createPgliteDb(dataDir: string): Promise<Db> {
  let unlock = () => {};
  if (dataDir !== ':memory:') {
    mkdirSync(dataDir, { recursive: true });
    unlock = lockDataDir(dataDir);
  }
  // the worker's TypeScript is compiled by tsx's API in a bootstrap module: a worker thread does
  // not inherit tsx's loader on Node 20 (nor vitest's transform)
  const worker = new Worker(new URL('./pglite-worker-boot.mjs', import.meta.url), {
    workerData: { dataDir: dataDir === ':memory:' ? null : join(dataDir, 'pglite') } satisfies WorkerInit,
  });
  const pending = new Map<number, { resolve: (r: WorkerReply & { ok: true }) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let closed = false;
  /** why the worker is gone, once it is: every request after fails with it */
  let gone: Error | null = null;
  const failAll = (err: Error) => {
    gone ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const ready = new Promise<void>((resolve, reject) => {
    worker.once('message', (m: { ready: boolean; error?: SerializedError }) => (m.ready ? resolve() : reject(rebuildError(m.error!))));
    worker.once('error', reject);
  });
  worker.on('message', (m: WorkerReply | { ready: boolean }) => {
    if (!('id' in m)) return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m);
    else p.reject(rebuildError(m.error));
  });
  worker.on('error', (err) => failAll(new Error(`the embedded database's thread failed: ${err.message}`, { cause: err })));
  worker.on('exit', (code) => failAll(new Error(`the embedded database's thread exited (${code})`)));
  try {
    await ready;
  } catch (err) {
    await worker.terminate();
    unlock();
    throw err;
  }

  type Req = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;
  const call = (req: Req): Promise<WorkerReply & { ok: true }> => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ ...req, id });
    });
  };
  const on = (tx: number): Pick<Db, 'query' | 'exec'> => ({
    query: async <T>(text: string, params: unknown[] = []) => (await call({ op: 'query', text, params, mode: 'object', drizzle: false, tx })).rows as T[],
    exec: async (text: string) => {
      await call({ op: 'exec', text, tx });
    },
  });
  const top = on(0);
  const orm = drizzleProxy(
    async (text, params, method) => ({ rows: (await call({ op: 'query', text, params, mode: method === 'all' ? 'array' : 'object', drizzle: true, tx: 0 })).rows ?? [] }),
    { schema },
  );
  return {
    kind: 'pglite',
    orm: orm as unknown as Drizzle,
    ...top,
    transaction: async (fn) => {
      const { tx } = await call({ op: 'begin' });
      const handle = on(tx!);
      let result;
      try {
        result = await fn({ ...handle, savepoint: savepoints(handle) });
      } catch (err) {
        await call({ op: 'end', tx: tx!, commit: false }).catch(() => undefined);
        throw err;
      }
      await call({ op: 'end', tx: tx!, commit: true });
      return result;
    },
    ping: async () => !closed && !gone,
    available: () => !closed && !gone,
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        if (!gone) await call({ op: 'close' });
      } finally {
        await worker.terminate();
        unlock();
      }
    },
  };
}
