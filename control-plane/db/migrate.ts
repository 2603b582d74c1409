// Applies migrations/NNNN_*.sql in order, each in its own transaction, recording them in
// hcp_migrations. A file whose first line is `-- hcp:requires-extension NAME` runs only where
// that extension is available; elsewhere it is recorded as skipped and retried at every start,
// so a server that gains TimescaleDB later gets its hypertables then. 0001–0009 are hand-written
// and frozen; later files are generated from schema.ts by drizzle-kit (`npm run db:generate`,
// docs/database.md), whose migrations/meta/ this does not read.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './client.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export interface MigrationOutcome {
  name: string;
  status: 'applied' | 'skipped' | 'already';
  reason?: string;
}

const REQUIRES = /^--\s*hcp:requires-extension\s+([a-z0-9_]+)/;

export async function migrate(db: Db, dir = MIGRATIONS_DIR): Promise<MigrationOutcome[]> {
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
  for (const name of files) {
    if (done.get(name) === 'applied') {
      outcomes.push({ name, status: 'already' });
      continue;
    }
    const text = readFileSync(join(dir, name), 'utf8');
    const ext = REQUIRES.exec(text)?.[1];
    if (ext && !(await extensionAvailable(db, ext))) {
      if (!done.has(name)) await db.query(`INSERT INTO hcp_migrations (name, status) VALUES ($1, 'skipped')`, [name]);
      outcomes.push({ name, status: 'skipped', reason: `extension ${ext} is not available` });
      continue;
    }
    await db.transaction(async (tx) => {
      await tx.exec(text);
      await tx.query(
        `INSERT INTO hcp_migrations (name, status) VALUES ($1, 'applied')
         ON CONFLICT (name) DO UPDATE SET status = 'applied', applied_at = now()`,
        [name],
      );
    });
    outcomes.push({ name, status: 'applied' });
  }
  return outcomes;
}

async function extensionAvailable(db: Db, name: string): Promise<boolean> {
  const rows = await db.query('SELECT 1 FROM pg_available_extensions WHERE name = $1', [name]);
  return rows.length > 0;
}

export async function hasTimescale(db: Db): Promise<boolean> {
  const rows = await db.query(`SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'`);
  return rows.length > 0;
}
