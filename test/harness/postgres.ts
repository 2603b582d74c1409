/**
 * Real PostgreSQL for integration tests: either the server named by DATABASE_URL or a
 * throwaway cluster started from the installed binaries on a random port.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePort } from './ports.js';

const execFileAsync = promisify(execFile);

/** No usable PostgreSQL; `reason` says why. */
export class PostgresUnavailableError extends Error {
  readonly code = 'POSTGRES_UNAVAILABLE';
  override readonly name = 'PostgresUnavailableError';
  constructor(readonly reason: string, options?: { cause?: unknown }) {
    super(`PostgreSQL unavailable for tests: ${reason}`, options);
  }
}

export interface PostgresServer {
  /** Connection URL of a role that may CREATE DATABASE. */
  adminUrl: string;
  source: 'DATABASE_URL' | 'throwaway-cluster';
  /** Stops the throwaway cluster and removes its directory; a no-op for DATABASE_URL. Idempotent. */
  stop(): Promise<void>;
}

export interface EnsurePostgresOptions {
  env?: NodeJS.ProcessEnv;
}

const CONNECT_TIMEOUT_S = 10;
/** how long a drop waits for an autovacuum worker it may not end */
const DROP_RETRY_MS = 30_000;

/**
 * DATABASE_URL when set, else a throwaway cluster. Throws PostgresUnavailableError, saying why,
 * when neither works: the tests need a real server and never skip without one.
 */
export async function ensurePostgres(options: EnsurePostgresOptions = {}): Promise<PostgresServer> {
  const env = options.env ?? process.env;
  const url = env.DATABASE_URL?.trim();
  if (url) {
    await checkAdminUrl(url, 'DATABASE_URL');
    return { adminUrl: url, source: 'DATABASE_URL', stop: async () => {} };
  }
  return startThrowawayCluster();
}

export interface TestDatabase {
  url: string;
  name: string;
  /** Drops the database, ending any open sessions on it. Idempotent. */
  drop(): Promise<void>;
}

/** Creates a uniquely named, empty database, so test files running in parallel are isolated. */
export async function createTestDatabase(adminUrl: string, prefix = 'hcp_test'): Promise<TestDatabase> {
  // 63 bytes is Postgres's identifier limit (NAMEDATALEN - 1).
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`
    .toLowerCase()
    .slice(0, 63);
  await withAdmin(adminUrl, (sql) => sql.unsafe(`CREATE DATABASE ${quoteIdent(name)}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;

  let dropping: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    drop: () =>
      (dropping ??= withAdmin(adminUrl, async (sql) => {
        // WITH (FORCE): PostgreSQL 13+, terminates sessions a test left open. An autovacuum
        // worker on the database has no role, so a role without pg_signal_backend may not end
        // it (42501) and the drop is refused until the worker is done: try again until then.
        const deadline = Date.now() + DROP_RETRY_MS;
        for (;;) {
          try {
            await sql.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
            return;
          } catch (err) {
            const code = (err as { code?: string }).code;
            if ((code !== '42501' && code !== '55006') || Date.now() > deadline) throw err;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      })),
  };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

async function withAdmin<R>(adminUrl: string, fn: (sql: postgres.Sql) => Promise<R>): Promise<R> {
  const sql = postgres(adminUrl, { max: 1, connect_timeout: CONNECT_TIMEOUT_S, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable URL>';
  }
}

async function checkAdminUrl(url: string, label: string): Promise<void> {
  let row: { can_create: boolean } | undefined;
  try {
    row = await withAdmin(url, async (sql) => {
      const rows = await sql<{ can_create: boolean }[]>`
        select (rolcreatedb or rolsuper) as can_create from pg_roles where rolname = current_user`;
      return rows[0];
    });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new PostgresUnavailableError(`${label} (${redact(url)}) is not reachable: ${detail}`, { cause: err });
  }
  if (!row?.can_create) {
    throw new PostgresUnavailableError(`${label} (${redact(url)}) connects as a role without CREATEDB`);
  }
}

// ---------------------------------------------------------------------------------------------
// Throwaway cluster

interface PgBinaries {
  dir: string;
  initdb: string;
  pgCtl: string;
}

function findBinaries(): PgBinaries | undefined {
  const candidates: string[] = [];
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => join(root, v, 'bin')));
  }
  candidates.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean));
  for (const dir of candidates) {
    const initdb = join(dir, 'initdb');
    const pgCtl = join(dir, 'pg_ctl');
    if (existsSync(initdb) && existsSync(pgCtl) && existsSync(join(dir, 'postgres'))) {
      return { dir, initdb, pgCtl };
    }
  }
  return undefined;
}

interface RunAs {
  /** Command prefix that runs a program as the cluster's owner. */
  prefix: string[];
  uid?: number;
  gid?: number;
}

/** initdb and postgres refuse to run as root, so as root they run as the `postgres` user. */
function runAs(): RunAs {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) {
    throw new PostgresUnavailableError('running as root and there is no `postgres` system user to run initdb as');
  }
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'].find(existsSync);
  if (!runuser) throw new PostgresUnavailableError('running as root and `runuser` was not found');
  return { prefix: [runuser, '-u', 'postgres', '--'], uid: Number(uid), gid: Number(gid) };
}

async function run(as: RunAs, argv: string[], cwd: string): Promise<void> {
  const [file, ...args] = [...as.prefix, ...argv];
  try {
    await execFileAsync(file!, args, { cwd, timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${(e.stderr || e.stdout || e.message).trim()}`, { cause: err });
  }
}

async function startThrowawayCluster(): Promise<PostgresServer> {
  const cluster = await createThrowawayCluster({ crashSafe: false });
  return { adminUrl: cluster.adminUrl, source: 'throwaway-cluster', stop: () => cluster.destroy() };
}

/**
 * A PostgreSQL server of a test's own, to stop and start (never the shared one on 5432): its
 * data directory and port are kept across stop() and start(), so clients reconnect to the same
 * URL and find the same databases.
 */
export interface ThrowawayCluster {
  /** the superuser `postgres`, trust authentication, on 127.0.0.1:port */
  readonly adminUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** is the server running (as far as this handle started and stopped it) */
  readonly running: boolean;
  /** `pg_ctl stop -m immediate` (a crash: no checkpoint, every session cut); keeps dir and port */
  stop(): Promise<void>;
  /** starts it again on the same port and data directory; resolves once it takes connections */
  start(): Promise<void>;
  /** stops it and removes its directory. Idempotent. */
  destroy(): Promise<void>;
  /** the server log's last lines, for failure messages */
  log(): Promise<string>;
}

export interface ThrowawayClusterOptions {
  /** the port (default: a free one); a port picked by the test lets a client wait on it first */
  port?: number;
  /** start it now (default true); false: initdb only, start() later */
  start?: boolean;
  /**
   * keep every commit across stop() (default true): synchronous_commit on, so a commit the
   * client saw is in the WAL before `-m immediate` stops the server (fsync stays off: the OS
   * keeps what was written). false: faster, for a cluster that is only ever discarded.
   */
  crashSafe?: boolean;
}

/** initdb and (unless start: false) start a throwaway cluster from the installed binaries */
export async function createThrowawayCluster(options: ThrowawayClusterOptions = {}): Promise<ThrowawayCluster> {
  const bins = findBinaries();
  if (!bins) {
    throw new PostgresUnavailableError(
      'DATABASE_URL is not set and no PostgreSQL binaries (initdb, pg_ctl, postgres) were found under ' +
        '/usr/lib/postgresql/*/bin or on PATH; install postgresql or set DATABASE_URL',
    );
  }
  const as = runAs();
  const dir = await mkdtemp(join(tmpdir(), 'hcp-pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const removeDir = () => rm(dir, { recursive: true, force: true });

  try {
    if (as.uid !== undefined && as.gid !== undefined) await chown(dir, as.uid, as.gid);
    await run(
      as,
      [bins.initdb, '-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      dir,
    );
  } catch (err) {
    await removeDir();
    throw new PostgresUnavailableError(`initdb (${bins.dir}) failed: ${(err as Error).message}`, { cause: err });
  }

  let running = false;
  let destroyed = false;
  const pgStop = () => run(as, [bins.pgCtl, '-D', dataDir, '-m', 'immediate', '-w', 'stop'], dir);
  const stopSync = () => {
    try {
      const [file, ...args] = [...as.prefix, bins.pgCtl, '-D', dataDir, '-m', 'immediate', '-w', 'stop'];
      if (running) execFileSync(file!, args, { cwd: dir, stdio: 'ignore' });
    } catch {
      // Already stopped.
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Last resort if the test runner exits without calling destroy(): do not leak a server.
  process.once('exit', stopSync);

  const pgStart = async (port: number) => {
    // Durability settings are off (but see crashSafe): the cluster is discarded after the run.
    const serverOptions = [
      `-p ${port}`,
      `-k '${dir}'`,
      `-c listen_addresses=127.0.0.1`,
      `-c fsync=off`,
      `-c synchronous_commit=${options.crashSafe === false ? 'off' : 'on'}`,
      `-c full_page_writes=off`,
      `-c max_connections=200`,
    ].join(' ');
    try {
      await run(as, [bins.pgCtl, '-D', dataDir, '-l', logFile, '-w', '-t', '30', '-o', serverOptions, 'start'], dir);
    } catch (err) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}\n${log.split('\n').slice(-15).join('\n')}`, { cause: err });
    }
    running = true;
  };

  // A port found free can be taken before postgres binds it; retry on a fresh one (unless the
  // caller chose the port).
  let port = options.port ?? 0;
  if (options.start !== false) {
    let lastError: unknown;
    for (let attempt = 0; attempt < 3 && !running; attempt++) {
      port = options.port ?? (await freePort());
      try {
        await pgStart(port);
      } catch (err) {
        lastError = err;
        if (options.port !== undefined) break;
      }
    }
    if (!running) {
      process.removeListener('exit', stopSync);
      await removeDir();
      throw new PostgresUnavailableError(`could not start a throwaway cluster from ${bins.dir}: ${(lastError as Error).message}`, { cause: lastError });
    }
  } else if (!port) {
    port = await freePort();
  }

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let destroying: Promise<void> | undefined;
  const cluster: ThrowawayCluster = {
    adminUrl,
    port,
    dataDir,
    get running() {
      return running;
    },
    async stop() {
      if (!running || destroyed) return;
      await pgStop();
      running = false;
    },
    async start() {
      if (running || destroyed) return;
      await pgStart(port);
    },
    destroy: () =>
      (destroying ??= (async () => {
        destroyed = true;
        process.removeListener('exit', stopSync);
        // Immediate shutdown: nothing in a throwaway cluster needs a checkpoint.
        if (running) await pgStop().catch(() => {});
        running = false;
        await removeDir();
      })()),
    log: async () => (await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n'),
  };
  if (running) {
    try {
      await checkAdminUrl(adminUrl, 'throwaway cluster');
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }
  return cluster;
}
