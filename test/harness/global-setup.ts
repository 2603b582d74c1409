/**
 * vitest globalSetup: one PostgreSQL for the whole run, shared with test files through
 * provide/inject. Test files get their own database from it (see pg.ts).
 */
import type { TestProject } from 'vitest/node';
import { ensureWebBuilt } from '../../scripts/build-web.js';
import { ensureAgentBinary } from './agent-binary.js';
import { ensurePostgres, PostgresUnavailableError } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin connection URL (role with CREATEDB). */
    pgAdminUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The end-to-end tests run the agent as it ships: dist/hcp-agent.
  ensureAgentBinary();
  // The console's tests run npm start, which builds web/dist when stale: built once here, so test
  // files starting npm start side by side never build it over each other.
  await ensureWebBuilt();
  try {
    const server = await ensurePostgres();
    project.provide('pgAdminUrl', server.adminUrl);
    return () => server.stop();
  } catch (err) {
    if (!(err instanceof PostgresUnavailableError)) throw err;
    // The integration and end-to-end tests talk to a real server; none is skipped without one.
    throw new Error(
      `The tests need PostgreSQL, and there is none: ${err.reason}. Install it (apt-get install postgresql; ` +
        'the tests start a throwaway cluster from its binaries), set DATABASE_URL to a role that may CREATE DATABASE, ' +
        'or run bash .ci/run, which does both.',
      { cause: err },
    );
  }
}
