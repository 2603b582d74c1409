// Fencing of the singleton loops' writes (docs/reliability.md, "Several control planes"). The
// replica holding the lease (lease.ts) runs its loops inside withFence(fence, …); the stores
// (db/command-store.ts, db/claims-store.ts, db/workload-store.ts) read currentFence() and, when
// there is one, check inside the write's own transaction that the lease row still carries the
// fence's token, `SELECT … FOR SHARE` so a takeover (an UPDATE of that row) waits for the write
// to commit, or the write waits for the takeover and is then refused (command inserts do both in
// one statement: db/command-store.ts). A deposed leader's late
// write is thus refused with FencedError, never applied after the new leader's first one. Writes
// made outside a fence (an operator's REST call, an agent's answer) are not fenced.
//
// The fence travels in AsyncLocalStorage (Node's async context), so the loops' code between the
// timer and the store needs no extra parameter.
import { AsyncLocalStorage } from 'node:async_hooks';
import { HcpError } from '../errors.js';

export interface Fence {
  /** the lease's name (leases.name) */
  readonly name: string;
  /** the token the holder got when it took the lease, as text (bigint) */
  readonly token: string;
  /** told when a write was refused: the holder steps down at once */
  readonly onFenced?: (err: FencedError) => void;
}

/** a write of a deposed leader: the lease's token moved on since it was taken */
export class FencedError extends HcpError {
  constructor(readonly lease: string, readonly token: string, readonly current: string | null) {
    super('unavailable', `lease ${lease} moved on (token ${token}, now ${current ?? 'none'}): this replica no longer leads; the write was refused`, 'fenced', { lease, token, current });
    this.name = 'FencedError';
  }
}

const context = new AsyncLocalStorage<Fence>();

/** the fence of the loop this code runs for; null outside any */
export const currentFence = (): Fence | null => context.getStore() ?? null;

/** runs fn (and every async continuation of it) under the fence; fn as it is for null */
export function withFence<T>(fence: Fence | null, fn: () => T): T {
  return fence ? context.run(fence, fn) : context.exit(fn);
}

/** runs fn outside any fence (work that continues after a loop but is not the loop's own) */
export const unfenced = <T>(fn: () => T): T => context.exit(fn);

type Query = { query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]> };

/**
 * Inside the write's transaction: the lease still carries the fence's token, or FencedError
 * (told to the fence's holder). No fence: nothing to check.
 */
export async function checkFence(tx: Query, fence: Fence | null): Promise<void> {
  if (!fence) return;
  const [row] = await tx.query<{ token: string }>('SELECT token::text AS token FROM leases WHERE name = $1 FOR SHARE', [fence.name]);
  if (row?.token === fence.token) return;
  throw fenceRefused(fence, row?.token ?? null);
}

/** the FencedError of a write the lease refused (it carries `current` now), told to the fence's holder */
export function fenceRefused(fence: Fence, current: string | null): FencedError {
  const err = new FencedError(fence.name, fence.token, current);
  fence.onFenced?.(err);
  return err;
}

/** the SQL condition of a single-statement fenced write: `… WHERE … AND ${FENCE_SQL(n)}` with $n = name, $n+1 = token */
export const fenceCondition = (n: number) => `EXISTS (SELECT 1 FROM leases WHERE name = $${n} AND token = $${n + 1}::bigint)`;
