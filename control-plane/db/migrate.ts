// Applies migrations/NNNN_*.sql in order, each in its own transaction, recording them in
// hcp_migrations. A file whose first line is `-- hcp:requires-extension NAME` runs only where
// that extension is available; elsewhere it is recorded as skipped and retried at every start,
// so a server that gains TimescaleDB later gets its hypertables then. 0001–0009 are hand-written
// and frozen; later files are generated from schema.ts by drizzle-kit (`npm run db:generate`,
// docs/database.md), whose migrations/meta/ this does not read.
//
// TimescaleDB must also be in shared_preload_libraries: on a server where it is installed but
// not preloaded, CREATE EXTENSION ends the session with `FATAL: extension "timescaledb" must be
// preloaded`. That is checked first (extensionReadiness) where the role may read the setting
// (superuser or pg_read_all_settings), and the FATAL itself is caught where it may not: either
// way the file is skipped like one whose extension is missing, the plain-table schema goes on,
// and one warning names the missing postgresql.conf line.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './client.js';
import { driverError } from './db-error.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface MigrateOptions {
  /** hears the one warning per extension that is installed but not preloaded */
  warn?: (message: string, details: Record<string, unknown>) => void;
}

export interface MigrationOutcome {
  name: string;
  status: 'applied' | 'skipped' | 'already';
  reason?: string;
}

const REQUIRES = /^--\s*hcp:requires-extension\s+([a-z0-9_]+)/;

/** extensions whose library must be loaded at server start before CREATE EXTENSION works */
const MUST_PRELOAD = new Set(['timescaledb']);

export type ExtensionReadiness = 'ready' | 'unavailable' | 'not_preloaded' | 'unknown';

/**
 * Whether a file needing extension `name` can run, from what the server says: `available`, a
 * row in pg_available_extensions; `preload`, current_setting('shared_preload_libraries') or null
 * when the role may not read it. 'unknown': try it, and catch the FATAL (isNotPreloaded).
 */
export function extensionReadiness(name: string, available: boolean, preload: string | null): ExtensionReadiness {
  if (!available) return 'unavailable';
  if (!MUST_PRELOAD.has(name)) return 'ready';
  if (preload === null) return 'unknown';
  return preloadList(preload).includes(name) ? 'ready' : 'not_preloaded';
}

/** shared_preload_libraries as names: a comma-separated list, entries maybe quoted, a path or a .so */
export function preloadList(setting: string): string[] {
  return setting
    .split(',')
    .map((s) => s.trim().replace(/^"(.*)"$/, '$1').trim())
    .filter(Boolean)
    .map((s) => s.replace(/^.*\//, '').replace(/\.(so|dylib|dll)$/, ''));
}

/** the server ended the session because the extension's library was not preloaded */
export function isNotPreloaded(err: unknown): boolean {
  const e = driverError(err) as { message?: unknown } | null;
  return typeof e?.message === 'string' && /must be preloaded/.test(e.message);
}

/** the postgresql.conf line that is missing, for the warning */
export function preloadHint(name: string, preload: string | null): string {
  const others = preload === null ? [] : preloadList(preload).filter((l) => l !== name);
  return `shared_preload_libraries = '${[...others, name].join(',')}'`;
}

const warned = new Set<string>();

export async function migrate(db: Db, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Promise<MigrationOutcome[]> {
  await db.exec(`CREATE TABLE IF NOT EXISTS hcp_migrations (
    name text PRIMARY KEY,
    status text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const done = new Map(
    (await db.query<{ name: string; status: string }>('SELECT name, status FROM hcp_migrations')).map((r) => [r.name, r.status]),
  );
  const files = readdirSync(dir).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
  const outcomes: MigrationOutcome[] = [];
  /** extensions whose CREATE EXTENSION ended the session in this run: not tried again */
  const failedPreload = new Set<string>();
  for (const name of files) {
    if (done.get(name) === 'applied') {
      outcomes.push({ name, status: 'already' });
      continue;
    }
    const text = readFileSync(join(dir, name), 'utf8');
    const ext = REQUIRES.exec(text)?.[1];
    const skip = async (reason: string) => {
      if (!done.has(name)) {
        await db.query(`INSERT INTO hcp_migrations (name, status) VALUES ($1, 'skipped') ON CONFLICT (name) DO NOTHING`, [name]);
        done.set(name, 'skipped');
      }
      outcomes.push({ name, status: 'skipped', reason });
    };
    const notPreloaded = async (extName: string, preload: string | null) => {
      const line = preloadHint(extName, preload);
      if (!warned.has(extName)) {
        warned.add(extName);
        opts.warn?.(
          `the ${extName} extension is installed but not preloaded: add ${line} to postgresql.conf and restart PostgreSQL; until then the plain-table schema is used`,
          { extension: extName, missing: line },
        );
      }
      await skip(`extension ${extName} is not preloaded (${line})`);
    };
    let preload: string | null = null;
    if (ext) {
      const state = await extensionState(db, ext);
      preload = state.preload;
      const readiness = failedPreload.has(ext) ? 'not_preloaded' : extensionReadiness(ext, state.available, state.preload);
      if (readiness === 'unavailable') {
        await skip(`extension ${ext} is not available`);
        continue;
      }
      if (readiness === 'not_preloaded') {
        await notPreloaded(ext, preload);
        continue;
      }
    }
    try {
      await db.transaction(async (tx) => {
        await tx.exec(text);
        await tx.query(
          `INSERT INTO hcp_migrations (name, status) VALUES ($1, 'applied')
           ON CONFLICT (name) DO UPDATE SET status = 'applied', applied_at = now()`,
          [name],
        );
      });
    } catch (err) {
      // The session is gone (the FATAL ends it) and the transaction with it; the pool makes a
      // new connection for the next statement.
      if (ext && isNotPreloaded(err)) {
        failedPreload.add(ext);
        await notPreloaded(ext, preload);
        continue;
      }
      throw err;
    }
    outcomes.push({ name, status: 'applied' });
  }
  return outcomes;
}

/** is the extension installable here, and the preload list when this role may read it */
async function extensionState(db: Db, name: string): Promise<{ available: boolean; preload: string | null }> {
  const rows = await db.query<{ available: boolean; preload: string | null }>(
    `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = $1) AS available,
            (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload`,
    [name],
  );
  return { available: rows[0]?.available === true, preload: rows[0]?.preload ?? null };
}

export async function hasTimescale(db: Db): Promise<boolean> {
  const rows = await db.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
  return rows.length > 0;
}
