/**
 * Test-file side of the Postgres harness: a fresh database per file, created in beforeAll
 * and dropped in afterAll, on the server that global-setup.ts provided.
 */
import { afterAll, beforeAll, describe, inject } from 'vitest';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export interface PgDatabase {
  /** Connection URL of this file's database; read it inside tests or hooks, not at collection. */
  readonly url: string;
  /** Admin URL of the server (role with CREATEDB). */
  readonly adminUrl: string;
}

/** the server global-setup.ts started or found */
function adminUrl(): string {
  const url = inject('pgAdminUrl');
  if (!url) throw new Error('no PostgreSQL: globalSetup test/harness/global-setup.ts did not run');
  return url;
}

/**
 * Registers beforeAll/afterAll in the current suite that create and drop one database.
 * Call it at the top of a describe block or the file.
 */
export function usePgDatabase(prefix?: string): PgDatabase {
  const admin = adminUrl();
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(admin, prefix);
  });
  afterAll(async () => {
    await db?.drop();
  });
  return {
    adminUrl: admin,
    get url(): string {
      if (!db) throw new Error('usePgDatabase: database not created yet (read url inside a test or hook)');
      return db.url;
    },
  };
}

/** describe() with its own fresh database */
export function describePg(name: string, fn: (db: PgDatabase) => void): void {
  describe(name, () => {
    fn(usePgDatabase());
  });
}
