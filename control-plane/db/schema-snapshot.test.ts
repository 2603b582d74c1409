// schema.ts and the last snapshot drizzle-kit wrote (migrations/meta/) agree: a change to the
// schema that was committed without `npm run db:generate` fails here, naming the SQL it lacks.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateDrizzleJson, generateMigration } from 'drizzle-kit/api';
import { pgTable, text } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from './migrate.js';
import * as schema from './schema.js';

function lastSnapshot(): Parameters<typeof generateMigration>[0] {
  const meta = join(MIGRATIONS_DIR, 'meta');
  const files = readdirSync(meta).filter((f) => /^\d{4}_snapshot\.json$/.test(f)).sort();
  const last = files.at(-1);
  if (!last) throw new Error(`no drizzle-kit snapshot in ${meta}`);
  return JSON.parse(readFileSync(join(meta, last), 'utf8'));
}

describe('the committed migrations follow schema.ts', () => {
  it('generating from schema.ts would produce no new migration', async () => {
    expect(await generateMigration(lastSnapshot(), generateDrizzleJson(schema))).toEqual([]);
  });

  it('an added column would produce one', async () => {
    const drifted = { ...schema, extra: pgTable('extra_table', { id: text('id').primaryKey() }) };
    const sql = await generateMigration(lastSnapshot(), generateDrizzleJson(drifted));
    expect(sql.join('\n')).toContain('CREATE TABLE "extra_table"');
  });

  it('every generated migration has its snapshot and journal entry, numbered after the frozen files', () => {
    const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, 'meta', '_journal.json'), 'utf8')) as {
      entries: Array<{ idx: number; tag: string }>;
    };
    const sqlFiles = new Set(readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)));
    for (const e of journal.entries) {
      expect(sqlFiles.has(e.tag), `${e.tag}.sql`).toBe(true);
      expect(e.tag.startsWith(String(e.idx).padStart(4, '0'))).toBe(true);
      expect(readdirSync(join(MIGRATIONS_DIR, 'meta'))).toContain(`${String(e.idx).padStart(4, '0')}_snapshot.json`);
    }
  });
});
