// A PostgreSQL session of a test's own that holds table locks, to make the control plane's
// statements wait. Its own one-connection client rather than sql.reserve() on a shared pool:
// a pool with a reserved connection never ends (sql.end() waits for it, porsager/postgres#925),
// so a LOCK that failed before its release hung test/chaos/writer-throttled.test.ts to its
// timeout; and a reserve queued behind a busy connection was seen never to settle
// (control-plane/db/client.ts reserveWithin). Every step has a deadline that names it.
import postgres from 'postgres';
import { within } from './wait-for.js';

export interface LockHolder {
  /** BEGIN, then the LOCK statement; held until commit() or rollback() */
  lock(statement: string): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** rolls back what is still held and closes the session */
  end(): Promise<void>;
}

const STEP_MS = 20_000;

export function lockHolder(url: string): LockHolder {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  let open = false;
  const step = async (statement: string) => void (await within(sql.unsafe(statement), STEP_MS, `the lock holder's ${statement.split(' ')[0]}`));
  return {
    async lock(statement) {
      await step('BEGIN');
      open = true;
      await step(statement);
    },
    async commit() {
      open = false;
      await step('COMMIT');
    },
    async rollback() {
      open = false;
      await step('ROLLBACK');
    },
    async end() {
      if (open) await this.rollback().catch(() => {});
      await sql.end({ timeout: 5 });
    },
  };
}
