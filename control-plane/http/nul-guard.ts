// No HCP value may hold a NUL or a lone surrogate. PostgreSQL's text cannot store a NUL ("invalid
// byte sequence for encoding UTF8: 0x00"), and its json rejects the \udXXX escape JSON.stringify
// writes for a lone surrogate ("invalid input syntax for type json"), so such a value would pass
// validation and fail at the database: as a 500, or later, in a writer that retries it forever.
// Refused here, once for every route: %00 anywhere in the URL, or either one in any string or key
// of a JSON body. Runs after the key check, so it reads no body of a caller it does not know, and
// after the body limit, which bounds what it reads. (A URL cannot carry a lone surrogate: its
// percent-encoding does not decode, and the value stays the encoded text.)
import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** what no string of a JSON body may hold, or null; null also for text that is not JSON */
export function jsonTextProblem(text: string): 'nul_character' | 'invalid_unicode' | null {
  // JSON carries a NUL or a lone surrogate only as an escape (\u0000, \udXXX): a raw one is not JSON
  if (!/\\u(0000|d[89a-f][0-9a-f]{2})/i.test(text)) return null;
  let found: 'nul_character' | 'invalid_unicode' | null = null;
  const check = (s: string) => {
    if (s.includes('\u0000')) found = 'nul_character';
    else if (!found && LONE_SURROGATE.test(s)) found = 'invalid_unicode';
  };
  try {
    JSON.parse(text, (k, v: unknown) => {
      check(k);
      if (typeof v === 'string') check(v);
      return v;
    });
  } catch {
    return null; // not JSON: the route's validator says so
  }
  return found;
}

export const refuseNul: MiddlewareHandler = async (c, next) => {
  const refuse = (reason: 'nul_character' | 'invalid_unicode', where: string) =>
    c.json(errorBody('invalid_argument', reason, reason === 'nul_character'
      ? `the request's ${where} holds a NUL character (U+0000), which no HCP value may contain`
      : `the request's ${where} holds a lone UTF-16 surrogate, which is not text`), 400);
  if (/%00/i.test(c.req.url)) return refuse('nul_character', 'URL');
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && /json/i.test(c.req.header('content-type') ?? '')) {
    const problem = jsonTextProblem(await c.req.text());
    if (problem) return refuse(problem, 'body');
  }
  return next();
};
