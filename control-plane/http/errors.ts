// The one error path of the REST API: typed errors become { error: { code, reason, message } }
// with the matching status; anything else is a logged 500 that leaks no internals.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';
import { HcpError, type ErrorCode } from '../errors.js';
import { isStatementTimeout } from '../db/client.js';
import { isDbUnavailable } from '../db/db-error.js';
import { currentRequest } from '../request-context.js';

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  not_found: 404,
  invalid_argument: 400,
  conflict: 409,
  unavailable: 503,
  unauthenticated: 401,
  permission_denied: 403,
  rate_limited: 429,
  payload_too_large: 413,
  internal: 500,
};

/** reasons for the 4xx statuses hono answers itself */
const HTTP_REASONS: Record<number, string> = { 413: 'body_too_large', 415: 'unsupported_media_type' };

export function errorBody(code: string, reason: string, message: string, extra: Record<string, unknown> = {}) {
  return { error: { code, reason, message, ...extra } };
}

export function onError(log: Logger) {
  return (err: Error, c: Context) => {
    if (err instanceof HcpError) {
      return c.json(errorBody(err.code, err.reason, err.message, err.details ?? {}), STATUS[err.code]);
    }
    // PostgreSQL cancelled the statement at HCP_API_STATEMENT_TIMEOUT_MS (SQLSTATE 57014).
    if (isStatementTimeout(err)) {
      c.header('Retry-After', '5');
      return c.json(errorBody('unavailable', 'query_timeout', 'the query took too long and was cancelled; narrow it or retry'), 503);
    }
    // The database does not answer (refused, dropped, shutting down, or the handle's health
    // circuit is open: db/client.ts): the request may succeed later, so 503, not a 500.
    if (isDbUnavailable(err)) {
      c.header('Retry-After', '2');
      return c.json(errorBody('unavailable', 'database_unavailable', 'the database is unavailable; retry shortly'), 503);
    }
    // A body hono could not parse as JSON.
    if ('status' in err && (err as { status: number }).status === 400) {
      return c.json(errorBody('invalid_argument', 'malformed_body', err.message), 400);
    }
    // hono's and zod-openapi's own refusals: a body that is not the route's media type (415), …
    if (err instanceof HTTPException && err.status >= 400 && err.status < 500) {
      const reason = HTTP_REASONS[err.status] ?? `http_${err.status}`;
      return c.json(errorBody(err.status === 413 ? 'payload_too_large' : 'invalid_argument', reason, err.message || reason), err.status as ContentfulStatusCode);
    }
    log.error({ err, rid: currentRequest()?.requestId, method: c.req.method, path: c.req.path }, 'request failed');
    return c.json(errorBody('internal', 'internal', 'internal error'), 500);
  };
}

/** zod-openapi's validation hook: 400 naming every bad field */
export function validationHook(result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> }; target: string }, c: Context) {
  if (result.success) return;
  const fields = (result.error?.issues ?? []).map((i) => ({
    field: i.path.map(String).join('.') || result.target,
    message: i.message,
  }));
  return c.json(
    errorBody('invalid_argument', 'validation_failed', `invalid ${result.target}: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`, { fields }),
    400,
  );
}
