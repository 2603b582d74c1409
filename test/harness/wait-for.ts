import { inspect } from 'node:util';

export interface WaitForOptions {
  /** Give up after this long. Default 5000 ms. */
  timeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  intervalMs?: number;
  /** What was being waited for; leads the timeout error. */
  message?: string;
}

type Falsy = false | 0 | 0n | '' | null | undefined;
export type Truthy<T> = Exclude<T, Falsy>;

export class WaitForTimeoutError extends Error {
  readonly code = 'WAIT_FOR_TIMEOUT';
  override readonly name = 'WaitForTimeoutError';
  constructor(
    message: string,
    readonly lastValue: unknown,
    readonly lastError: unknown,
  ) {
    super(message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const TIMED_OUT = Symbol('timed out');

/**
 * Polls `condition` until it returns (or resolves to) a truthy value and resolves with that
 * value. A throwing condition counts as "not yet". On timeout, throws a WaitForTimeoutError
 * naming `message`, the last value and the last error seen. A condition that never settles
 * cannot hold the wait past its deadline.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<Truthy<Awaited<T>>> {
  const { timeoutMs = 5000, intervalMs = 50, message = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  let lastValue: unknown = undefined;
  let lastError: unknown = undefined;
  let attempts = 0;

  for (;;) {
    attempts += 1;
    const remaining = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        Promise.resolve().then(condition),
        new Promise<typeof TIMED_OUT>((resolve) => {
          timer = setTimeout(() => resolve(TIMED_OUT), Math.max(remaining, 0));
        }),
      ]);
      if (result !== TIMED_OUT) {
        lastValue = result;
        if (result) return result as Truthy<Awaited<T>>;
      }
    } catch (err) {
      lastError = err;
    } finally {
      clearTimeout(timer);
    }

    const left = deadline - Date.now();
    if (left <= 0) {
      const parts = [`${message}: timed out after ${timeoutMs} ms (${attempts} attempts)`];
      parts.push(`last value: ${inspect(lastValue, { depth: 4, breakLength: Infinity })}`);
      if (lastError !== undefined) {
        const detail = lastError instanceof Error ? lastError.stack ?? lastError.message : inspect(lastError);
        parts.push(`last error: ${detail}`);
      }
      throw new WaitForTimeoutError(parts.join('; '), lastValue, lastError);
    }
    await sleep(Math.min(intervalMs, left));
  }
}

/**
 * `work`, or a WaitForTimeoutError naming `message` if it has not settled within `timeoutMs`.
 * For the one-shot awaits of a long test (a query, a fetch, a lock) that would otherwise hang
 * it past its own timeout without saying where.
 */
export async function within<T>(work: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WaitForTimeoutError(`${message}: not done after ${timeoutMs} ms`, undefined, undefined)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
