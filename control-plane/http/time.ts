// Times in query strings and bodies. Date.parse takes more than PostgreSQL can store: years before
// 4713 BC (to -271821) and six-digit years (+275760), which make a query fail ("timestamp out of
// range") after validation passed. A time here is one Date.parse reads, in years 0001 to 9999.
import { z } from '@hono/zod-openapi';

const MIN_MS = Date.parse('0001-01-01T00:00:00Z');
const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** the time a string names, or null when it is not a time or outside years 0001..9999 */
export function parseTime(v: string): number | null {
  const ms = Date.parse(v);
  return Number.isFinite(ms) && ms >= MIN_MS && ms <= MAX_MS ? ms : null;
}

/** an ISO-8601 time in years 0001..9999 */
export const isoTime = z.string().max(64).refine((v) => parseTime(v) !== null, 'must be an ISO-8601 time in years 0001 to 9999, e.g. 2026-11-24T09:00:00Z');
