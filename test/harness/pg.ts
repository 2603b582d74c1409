/**
 * Test-file side of the Postgres harness: a fresh database per file, created in beforeAll
 * and dropped in afterAll, on the server that global-setup.ts provided.
 */
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export interface PgDatabase {
  /** Connection URL of this file's database; read it inside tests or hooks, not at collection. */
  readonly url: string;
  /** Admin URL of the server (role with CREATEDB). */
  readonly adminUrl: string;
}

/** The admin URL, or undefined when PostgreSQL tests must be skipped. Throws when CI is set. */
function adminUrlOrSkip(): string | undefined {
  const adminUrl = inject('pgAdminUrl');
  if (adminUrl) return adminUrl;
  const reason = inject('pgUnavailableReason') || 'globalSetup test/harness/global-setup.ts did not run';
  if (process.env.CI) throw new Error(`CI is set, so PostgreSQL is required, but: ${reason}`);
  return undefined;
}

/**
 * Registers beforeAll/afterAll in the current suite that create and drop one database.
 * Call it at the top of a describe block (or the file) that already knows Postgres is there;
 * prefer describePg, which also skips when it is not.
 */
export function usePgDatabase(prefix?: string): PgDatabase {
  const adminUrl = adminUrlOrSkip();
  if (!adminUrl) throw new Error('usePgDatabase: PostgreSQL is unavailable; use describePg to skip');
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(adminUrl, prefix);
  });
  afterAll(async () => {
    await db?.drop();
  });
  return {
    adminUrl,
    get url(): string {
      if (!db) throw new Error('usePgDatabase: database not created yet (read url inside a test or hook)');
      return db.url;
    },
  };
}

/**
 * describe() with its own fresh database. Without PostgreSQL it becomes describe.skip (the
 * reason is printed once by global-setup), except when CI is set, where it fails.
 */
export function describePg(name: string, fn: (db: PgDatabase) => void): void {
  const adminUrl = adminUrlOrSkip();
  if (!adminUrl) {
    // One placeholder so the reporter counts the suite as skipped rather than hiding it.
    describe.skip(name, () => {
      it(`needs PostgreSQL: ${inject('pgUnavailableReason')}`, () => {});
    });
    return;
  }
  describe(name, () => {
    fn(usePgDatabase());
  });
}
