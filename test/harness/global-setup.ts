/**
 * vitest globalSetup: one PostgreSQL for the whole run, shared with test files through
 * provide/inject. Test files get their own database from it (see pg.ts).
 */
import type { TestProject } from 'vitest/node';
import { ensureAgentBinary } from './agent-binary.js';
import { ensurePostgres, PostgresUnavailableError } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin connection URL (role with CREATEDB), or '' when PostgreSQL is unavailable. */
    pgAdminUrl: string;
    /** Why PostgreSQL is unavailable, or '' when it is available. */
    pgUnavailableReason: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The end-to-end tests run the agent as it ships: dist/hcp-agent.
  ensureAgentBinary();
  try {
    // Throws a plain Error (not PostgresUnavailableError) when CI is set: a hard failure.
    const server = await ensurePostgres();
    project.provide('pgAdminUrl', server.adminUrl);
    project.provide('pgUnavailableReason', '');
    return () => server.stop();
  } catch (err) {
    if (!(err instanceof PostgresUnavailableError)) throw err;
    project.provide('pgAdminUrl', '');
    project.provide('pgUnavailableReason', err.reason);
    // Printed once per run here, not once per skipped file.
    process.stderr.write(`\n[test harness] PostgreSQL tests are SKIPPED: ${err.reason}\n\n`);
    return async () => {};
  }
}
