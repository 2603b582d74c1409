// No HCP value may hold a NUL: PostgreSQL's text cannot store one ("invalid byte sequence for
// encoding UTF8: 0x00"), so an id, a reason or a name with one would pass validation and fail at
// the database as a 500. Refused here, once for every route: %00 anywhere in the URL, or a \u0000
// in any string or key of a JSON body. Runs after the key check, so it reads no body of a caller
// it does not know, and after the body limit, which bounds what it reads.
import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';

/** true when any string or key in the JSON text holds U+0000; false also for text that is not JSON */
export function jsonHoldsNul(text: string): boolean {
  // JSON can carry a NUL only as the escape \u0000 (a raw control character is not JSON)
  if (!/\\u0000/i.test(text)) return false;
  let found = false;
  try {
    JSON.parse(text, (k, v: unknown) => {
      if (k.includes('\u0000') || (typeof v === 'string' && v.includes('\u0000'))) found = true;
      return v;
    });
  } catch {
    return false; // not JSON: the route's validator says so
  }
  return found;
}

export const refuseNul: MiddlewareHandler = async (c, next) => {
  const refuse = (where: string) => c.json(errorBody('invalid_argument', 'nul_character', `the request's ${where} holds a NUL character (U+0000), which no HCP value may contain`), 400);
  if (/%00/i.test(c.req.url)) return refuse('URL');
  if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && /json/i.test(c.req.header('content-type') ?? '') && jsonHoldsNul(await c.req.text())) return refuse('body');
  return next();
};
