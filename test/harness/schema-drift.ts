/**
 * Schema drift: what differs between a live database and the Drizzle schema
 * (control-plane/db/schema.ts). Two sources, because drizzle-kit's push diff leaves some out:
 *  - drizzle-kit/api `pushSchema`: the statements that would make the database match the schema
 *    (tables, columns, types, nullability, defaults, keys, foreign keys, uniques, indexes and
 *    sequences). Empty means no drift there.
 *  - CHECK bodies and partial-index predicates, which pushSchema's "push" comparison ignores
 *    (node_modules/drizzle-kit/api.js squashPgScheme in push mode): read from pg_constraint and
 *    pg_index and compared with the schema's snapshot (generateDrizzleJson), both in
 *    PostgreSQL's own spelling.
 * Runs on PostgreSQL and PGlite. A TimescaleDB database has extra hypertable indexes; compare a
 * plain PostgreSQL one.
 */
import { generateDrizzleJson, pushSchema } from 'drizzle-kit/api';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { SQL } from 'drizzle-orm';
import type { Db } from '../../control-plane/db/client.js';
import * as appSchema from '../../control-plane/db/schema.js';

/**
 * drizzle-kit 0.31 reads an empty text[] default ('{}'::text[]) back as '{""}' (defaultForColumn
 * in node_modules/drizzle-kit/api.js), so push always proposes `SET DEFAULT '{}'` for such a
 * column. That proposal is dropped here only when the column's default really is '{}'.
 */
const EMPTY_ARRAY_DEFAULT = /^ALTER TABLE "(\w+)" ALTER COLUMN "(\w+)" SET DEFAULT '\{\}';$/;

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

export async function schemaDrift(db: Db, schema: Record<string, unknown> = appSchema): Promise<string[]> {
  const dialect = new PgDialect();
  // pushSchema reads `execute(sql).rows`; postgres.js's drizzle returns bare rows, so it gets
  // the handle's raw path instead, the same for both back ends.
  const executor = {
    execute: async (query: SQL) => {
      const q = dialect.sqlToQuery(query);
      return { rows: await db.query(q.sql, q.params) };
    },
  };
  const silence = muteStdout();
  let push: Awaited<ReturnType<typeof pushSchema>>;
  try {
    push = await pushSchema(schema, executor as never);
  } finally {
    silence();
  }
  const defaults = new Map(
    (await db.query<{ table_name: string; column_name: string; column_default: string | null }>(
      `SELECT table_name, column_name, column_default FROM information_schema.columns WHERE table_schema = 'public'`,
    )).map((r) => [`${r.table_name}.${r.column_name}`, r.column_default]),
  );
  const drift = push.statementsToExecute.filter((s) => {
    const m = EMPTY_ARRAY_DEFAULT.exec(s.trim());
    return !(m && defaults.get(`${m[1]}.${m[2]}`) === `'{}'::text[]`);
  });

  const snapshot = generateDrizzleJson(schema);
  const wantChecks = new Map<string, string>();
  const wantPredicates = new Map<string, string>();
  for (const table of Object.values(snapshot.tables) as Array<{
    name: string;
    checkConstraints: Record<string, { name: string; value: string }>;
    indexes: Record<string, { name: string; where?: string }>;
  }>) {
    for (const c of Object.values(table.checkConstraints)) wantChecks.set(`${table.name}.${c.name}`, norm(c.value));
    for (const i of Object.values(table.indexes)) if (i.where) wantPredicates.set(`${table.name}.${i.name}`, norm(i.where));
  }
  const haveChecks = new Map(
    (await db.query<{ t: string; name: string; def: string }>(
      `SELECT c.conrelid::regclass::text AS t, c.conname AS name, pg_get_constraintdef(c.oid) AS def
       FROM pg_constraint c WHERE c.contype = 'c' AND c.connamespace = 'public'::regnamespace`,
    )).map((r) => [`${r.t}.${r.name}`, norm(r.def.replace(/^CHECK \(([\s\S]*)\)$/, '$1'))]),
  );
  const havePredicates = new Map(
    (await db.query<{ t: string; name: string; pred: string }>(
      `SELECT i.indrelid::regclass::text AS t, c.relname AS name, pg_get_expr(i.indpred, i.indrelid) AS pred
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       WHERE i.indpred IS NOT NULL AND c.relnamespace = 'public'::regnamespace`,
    )).map((r) => [`${r.t}.${r.name}`, norm(r.pred)]),
  );
  drift.push(...compare('CHECK', wantChecks, haveChecks), ...compare('index predicate', wantPredicates, havePredicates));
  return drift;
}

function compare(what: string, want: Map<string, string>, have: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [key, value] of want) {
    const got = have.get(key);
    if (got === undefined) out.push(`${what} ${key} is missing from the database (schema: ${value})`);
    else if (got !== value) out.push(`${what} ${key} differs: schema ${value}, database ${got}`);
  }
  for (const [key, value] of have) if (!want.has(key)) out.push(`${what} ${key} is in the database only: ${value}`);
  return out;
}

/** pushSchema draws a progress spinner on stdout; a test run does not need it */
function muteStdout(): () => void {
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  return () => {
    process.stdout.write = write;
  };
}
