// The Drizzle schema (control-plane/db/schema.ts) and the database migrations/*.sql build are
// the same, on real PostgreSQL and on PGlite; and the drift check really reports a difference.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDrizzleJson, generateMigration } from 'drizzle-kit/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate, MIGRATIONS_DIR } from '../control-plane/db/migrate.js';
import * as schema from '../control-plane/db/schema.js';
import { usePgDatabase } from './harness/pg.js';
import { schemaDrift } from './harness/schema-drift.js';

describe('schema drift on PostgreSQL', () => {
  const pg = usePgDatabase('hcp_drift');
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('a freshly migrated database is exactly the schema', async () => {
    expect(await schemaDrift(db)).toEqual([]);
  });

  it('a schema with a column the database lacks is reported', async () => {
    const drifted = {
      ...schema,
      hcpMigrations: pgTable('hcp_migrations', {
        name: text('name').primaryKey(),
        status: text('status').notNull(),
        appliedAt: timestamp('applied_at', { withTimezone: true }).notNull().defaultNow(),
        note: text('note'),
      }),
    };
    expect(await schemaDrift(db, drifted)).toEqual([`ALTER TABLE "hcp_migrations" ADD COLUMN "note" text;`]);
  });

  it('every kind of change made to the database behind the schema is reported', async () => {
    await db.exec(`
      ALTER TABLE facilities ADD COLUMN sneaky text;
      ALTER TABLE resources ALTER COLUMN driver DROP DEFAULT;
      ALTER TABLE customers ALTER COLUMN name DROP NOT NULL;
      ALTER TABLE api_keys DROP CONSTRAINT api_keys_site_id_fkey;
      ALTER TABLE claims DROP CONSTRAINT claims_source_check;
      ALTER TABLE claims ADD CONSTRAINT claims_source_check CHECK (source IN ('grid'));
      ALTER TABLE demand_response DROP CONSTRAINT demand_response_check;
      DROP INDEX workloads_live_site_idx;
      CREATE INDEX workloads_live_site_idx ON workloads (facility_id) WHERE state = 'running';
      DROP INDEX commands_created_idx;
    `);
    const drift = (await schemaDrift(db)).join('\n');
    expect(drift).toContain('DROP COLUMN "sneaky"');
    expect(drift).toContain(`ALTER TABLE "resources" ALTER COLUMN "driver" SET DEFAULT ''`);
    expect(drift).toContain(`ALTER TABLE "customers" ALTER COLUMN "name" SET NOT NULL`);
    expect(drift).toContain('ADD CONSTRAINT "api_keys_site_id_fkey"');
    expect(drift).toContain("CHECK claims.claims_source_check differs: schema (source = ANY (ARRAY['grid'::text");
    expect(drift).toContain('CHECK demand_response.demand_response_check is missing from the database');
    expect(drift).toContain('index predicate workloads.workloads_live_site_idx differs');
    expect(drift).toContain('CREATE INDEX "commands_created_idx"');
  });
});

describe('a migration generated from a changed schema', () => {
  const pg = usePgDatabase('hcp_drift_gen');

  it('is applied by migrate.ts after the frozen files and leaves the database exactly as the changed schema', async () => {
    const changed = {
      ...schema,
      hcpMigrations: pgTable('hcp_migrations', {
        name: text('name').primaryKey(),
        status: text('status').notNull(),
        appliedAt: timestamp('applied_at', { withTimezone: true }).notNull().defaultNow(),
        note: text('note').notNull().default(''),
      }),
    };
    // what `npm run db:generate` would write: the diff from the last committed snapshot
    const meta = join(MIGRATIONS_DIR, 'meta');
    const last = readdirSync(meta).filter((f) => f.endsWith('_snapshot.json')).sort().at(-1)!;
    const statements = await generateMigration(JSON.parse(readFileSync(join(meta, last), 'utf8')), generateDrizzleJson(changed));
    expect(statements).toEqual([`ALTER TABLE "hcp_migrations" ADD COLUMN "note" text DEFAULT '' NOT NULL;`]);
    const dir = mkdtempSync(join(tmpdir(), 'hcp-migrations-'));
    const db = await createDb({ url: pg.url, dataDir: '' });
    try {
      for (const f of readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql'))) copyFileSync(join(MIGRATIONS_DIR, f), join(dir, f));
      // the number drizzle-kit would give it: the one after the last snapshot's
      const next = `${String(Number(last.slice(0, 4)) + 1).padStart(4, '0')}_note.sql`;
      writeFileSync(join(dir, next), statements.join('\n--> statement-breakpoint\n'));
      const outcomes = await migrate(db, dir);
      expect(outcomes.at(-1)).toEqual({ name: next, status: 'applied' });
      expect(await schemaDrift(db, changed)).toEqual([]);
      expect(await schemaDrift(db)).not.toEqual([]);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('schema drift on PGlite', () => {
  it('a freshly migrated PGlite database is exactly the schema', async () => {
    const db = await createDb({ dataDir: ':memory:' });
    try {
      await migrate(db);
      expect(await schemaDrift(db)).toEqual([]);
    } finally {
      await db.close();
    }
    // PGlite starts a WebAssembly PostgreSQL and runs every migration: slow on a busy machine
  }, 120_000);
});
