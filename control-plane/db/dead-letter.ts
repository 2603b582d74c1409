// One bad row must not stop a batch: the batch is written with one statement, and only when the
// database refuses it for its content (db-error.ts) is it split in halves to find the rows it
// refuses. Those come back as dead letters with the database's message; every other row is
// written. A connection or database fault is thrown as WriteInterruptedError, naming the rows not
// yet written, for the caller's own retry.
//
// Each statement commits on its own (no transaction): a failed statement inside a postgres.js
// transaction poisons the transaction even when the error is caught, and a savepoint per probe
// would cost two more round trips each. So when a fault interrupts a search, some rows are
// already written and the error says which are not.
import { classifyDbError, dbMessage, sqlState } from './db-error.js';

export interface DeadLetter<T> {
  row: T;
  /** SQLSTATE */
  code: string;
  /** the database's message */
  message: string;
  /**
   * the work bound ran out before this row was tried alone: it was in a group the database
   * refused, but may itself be good
   */
  unresolved: boolean;
}

export interface DeadLetterOptions {
  /** at or below this many rows, rows are tried one by one instead of halved further */
  leafRows?: number;
  /**
   * statements a search may run after the first; past it, every row not yet decided is dead-
   * lettered (unresolved), so a batch of many bad rows costs a bounded number of round trips
   */
  maxStatements?: number;
}

export class WriteInterruptedError<T> extends Error {
  readonly code = 'db_write_interrupted';
  constructor(
    override readonly cause: unknown,
    /** rows not written: retry these, and only these */
    readonly unwritten: T[],
    /** rows already found bad before the fault */
    readonly rejected: DeadLetter<T>[],
  ) {
    super(`database write interrupted: ${dbMessage(cause)}`);
    this.name = 'WriteInterruptedError';
  }
}

const LEAF_ROWS = 16;
const MAX_STATEMENTS = 500;

/**
 * Writes rows with `write` (one statement for any number of rows) and returns those the database
 * refused for their content; the rest are written. Throws WriteInterruptedError on any other
 * error. With no bad row this is exactly one call of `write`.
 */
export async function writeWithDeadLetters<T>(
  rows: T[],
  write: (rows: T[]) => Promise<unknown>,
  opts: DeadLetterOptions = {},
): Promise<DeadLetter<T>[]> {
  if (rows.length === 0) return [];
  const first = await attempt(write, rows);
  if (first === null) return [];
  if (first.transient) throw new WriteInterruptedError(first.err, rows, []);

  const leafRows = Math.max(1, opts.leafRows ?? LEAF_ROWS);
  let budget = opts.maxStatements ?? MAX_STATEMENTS;
  const rejected: DeadLetter<T>[] = [];
  const letter = (row: T, err: unknown, unresolved: boolean): DeadLetter<T> => ({
    row, code: sqlState(err) ?? 'unknown', message: dbMessage(err), unresolved,
  });
  // Groups known or suspected to hold a bad row, with the error that says so; depth first, so
  // the search finishes one region before it opens another.
  const work: Array<{ rows: T[]; err: unknown; tried: boolean }> = [{ rows, err: first.err, tried: true }];
  const interrupted = (err: unknown, current: T[]) =>
    new WriteInterruptedError(err, [...current, ...work.flatMap((w) => w.rows)], rejected);

  while (work.length > 0) {
    const group = work.pop()!;
    if (budget <= 0) {
      for (const row of group.rows) rejected.push(letter(row, group.err, true));
      continue;
    }
    if (group.rows.length === 1 && group.tried) {
      rejected.push(letter(group.rows[0]!, group.err, false));
      continue;
    }
    if (group.rows.length <= leafRows) {
      for (let i = 0; i < group.rows.length; i++) {
        const row = group.rows[i]!;
        if (budget <= 0) {
          rejected.push(letter(row, group.err, true));
          continue;
        }
        budget--;
        const r = await attempt(write, [row]);
        if (r?.transient) throw interrupted(r.err, group.rows.slice(i));
        if (r) rejected.push(letter(row, r.err, false));
      }
      continue;
    }
    const mid = group.rows.length >> 1;
    const left = group.rows.slice(0, mid);
    const right = group.rows.slice(mid);
    budget--;
    const l = await attempt(write, left);
    if (l?.transient) throw interrupted(l.err, group.rows);
    // With the left half written, the right half holds the bad row: it is halved without a
    // statement of its own. It is still tried before any row of it is called bad (`tried`
    // false), since rows may be refused only together (a key twice in one statement).
    if (l === null) {
      work.push({ rows: right, err: group.err, tried: false });
      continue;
    }
    budget--;
    const r = await attempt(write, right);
    if (r?.transient) throw interrupted(r.err, right);
    if (r) work.push({ rows: right, err: r.err, tried: true });
    work.push({ rows: left, err: l.err, tried: true });
  }
  return rejected;
}

async function attempt<T>(write: (rows: T[]) => Promise<unknown>, rows: T[]): Promise<{ err: unknown; transient: boolean } | null> {
  try {
    await write(rows);
    return null;
  } catch (err) {
    return { err, transient: classifyDbError(err) === 'transient' };
  }
}
