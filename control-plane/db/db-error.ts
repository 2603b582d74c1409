// Which database errors are about the rows (dead-letter them) and which are about the database
// (keep the rows, retry). Codes are SQLSTATEs, PostgreSQL manual Appendix A "PostgreSQL Error
// Codes".
//
// How the two drivers expose them (postgres 3.4, @electric-sql/pglite 0.5):
// - postgres.js: an ErrorResponse from the server is a PostgresError whose `code` is the
//   SQLSTATE, with `severity` ('ERROR', 'FATAL'…). Failures of the connection itself are plain
//   Errors whose `code` is the driver's own ('CONNECTION_CLOSED', 'CONNECT_TIMEOUT',
//   'CONNECTION_DESTROYED', 'CONNECTION_ENDED') or Node's socket errno name ('ECONNREFUSED',
//   'ECONNRESET', 'EPIPE'…), with no `severity`.
// - PGlite: an ErrorResponse is a DatabaseError (its name is 'error') with the SQLSTATE in `code`
//   and a `severity`; a closed instance throws a plain Error without a code.
// An errno name can be five upper-case letters too (EPIPE, EPERM), so a SQLSTATE is only
// trusted on an error that also carries the server's `severity`.

import { DrizzleQueryError } from 'drizzle-orm/errors';

export type DbErrorKind = 'content' | 'transient';

/**
 * The driver's error behind Drizzle's: a query built with db.orm fails as a DrizzleQueryError
 * ("Failed query: …", its params) whose cause is what the driver threw.
 */
export function driverError(err: unknown): unknown {
  let e = err;
  for (let i = 0; i < 3 && e instanceof DrizzleQueryError && e.cause !== undefined; i++) e = e.cause;
  return e;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** the SQLSTATE of an error the server sent, or null (connection failure, driver error) */
export function sqlState(error: unknown): string | null {
  const err = driverError(error);
  if (typeof err !== 'object' || err === null) return null;
  const { code, severity } = err as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && SQLSTATE.test(code) && typeof severity === 'string' ? code : null;
}

// Errors raised by the values being written, so another batch without those rows succeeds:
// - class 21 cardinality_violation: e.g. one key twice in one statement; apart, each row is fine;
// - class 22 data_exception: out of range (22003), bad text for a type (22P02), NUL or invalid
//   UTF-8 in text (22021), a \u0000 escape in jsonb (22P05), too long for varchar(n) (22001)…;
// - class 23 integrity_constraint_violation: NOT NULL, foreign key, unique, CHECK;
// - 54000 program_limit_exceeded: e.g. a text too large for a btree index entry;
// - 54001 statement_too_complex: "stack depth limit exceeded", what a deeply nested jsonb value
//   raises while it is parsed (verified on PostgreSQL 15).
// Everything else is about the database or the statement, the same for any rows: connection
// (08), operator intervention and shutdown (57P01..57P05, and 57014 canceled), insufficient
// resources (53, disk full), serialization and deadlock (40), lock not available (55P03), and
// class 42 too — an undefined table (42P01) during a migration or a rename affects every row, so
// dead-lettering would drop all of them for a fault that an operator fixes; they are retried.
const CONTENT_CLASSES = new Set(['21', '22', '23']);
const CONTENT_CODES = new Set(['54000', '54001']);

export function classifyDbError(err: unknown): DbErrorKind {
  const code = sqlState(err);
  if (code === null) return 'transient';
  return CONTENT_CLASSES.has(code.slice(0, 2)) || CONTENT_CODES.has(code) ? 'content' : 'transient';
}

/** the server's message, one line, for logs and dead letters */
export function dbMessage(error: unknown): string {
  const err = driverError(error);
  const m = err instanceof Error ? err.message : String(err);
  return m.length > 500 ? `${m.slice(0, 500)}…` : m;
}

/**
 * Thrown by a Db handle (client.ts) without asking the server while it knows the database does
 * not answer: its health circuit is open. Classified transient (no SQLSTATE), and answered 503
 * database_unavailable by the REST API (http/errors.ts).
 */
export class DbUnavailableError extends Error {
  readonly code = 'DB_UNAVAILABLE';
  override readonly name = 'DbUnavailableError';
  constructor(readonly since: number, options?: { cause?: unknown }) {
    super('the database is unavailable', options);
  }
}

// The driver's and Node's codes for a connection that could not be made or was lost
// (postgres.js src/errors.js, Node's errno names).
const CONNECTION_CODES = new Set([
  'DB_UNAVAILABLE', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH',
  'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ENOENT',
]);
// SQLSTATEs of a server that is there but will not serve (Appendix A): class 08 connection
// exception; 53300 too_many_connections; 57P01 admin_shutdown (pg_terminate_backend, a fast
// shutdown), 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down,
// recovering), 57P05 idle_session_timeout.
const UNAVAILABLE_STATES = new Set(['53300', '57P01', '57P02', '57P03', '57P05']);

/**
 * Is this error the database being unreachable, down or dropping the session (retry later),
 * rather than a fault of the statement? The REST API answers these 503 database_unavailable.
 */
export function isDbUnavailable(error: unknown): boolean {
  const err = driverError(error);
  if (typeof err !== 'object' || err === null) return false;
  const state = sqlState(err);
  if (state !== null) return state.startsWith('08') || UNAVAILABLE_STATES.has(state);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && CONNECTION_CODES.has(code);
}

/**
 * The one database rejection nothing in this code can catch: postgres.js fetches array types on
 * a new connection from a promise it never awaits (src/connection.js fetchArrayTypes), so a
 * connection ended during that query rejects it unhandled. The driver tags the error with the
 * statement it failed (`query`); that statement is the driver's own type query, a few
 * milliseconds at each new connection (it cannot be turned off: db/client.ts says why). main.ts and migrate-cli.ts log it and go on; any other unhandled rejection still ends the
 * process, as Node's default does.
 */
export function isTypeFetchRejection(reason: unknown): boolean {
  if (!isDbUnavailable(reason)) return false;
  const q = (reason as { query?: unknown }).query;
  return typeof q === 'string' && /from\s+pg_catalog\.pg_type\s+a[\s\S]*b\.typarray/.test(q);
}
