// Keyset pagination over the registry's lists (sites, devices): items in id order, a page of
// `limit`, and an opaque cursor naming the last id of the page. A page starts after that id, not
// at an offset, so a device added or removed between two calls shifts nothing: no item is seen
// twice or skipped that existed throughout.
import { z } from '@hono/zod-openapi';

export const DEFAULT_PAGE = 1000;
export const MAX_PAGE = 10_000;

export const encodeCursor = (id: string) => Buffer.from(id, 'utf8').toString('base64url');

/** the id a cursor names, or null when it is not one this API gave out */
export function decodeCursor(cursor: string): string | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) return null;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  // base64url decoding is lenient (it drops what it cannot read): only the canonical form counts
  return id.length > 0 && id.length <= 128 && /^[\x21-\x7e]+$/.test(id) && encodeCursor(id) === cursor ? id : null;
}

/** the query parameters of a paged list */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
  cursor: z
    .string()
    .refine((c) => decodeCursor(c) !== null, 'must be a next_cursor from an earlier page of this list')
    .optional(),
};

/** byte order of ids, the same on every call and every machine (localeCompare is neither promised) */
const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * One page of `items` (any order) after `cursor`. total: how many items there are across every
 * page; next_cursor: null on the last page.
 */
export function pageOf<T extends { id: string }>(items: T[], q: { limit: number; cursor?: string }): { items: T[]; total: number; next_cursor: string | null } {
  const after = q.cursor === undefined ? null : decodeCursor(q.cursor);
  const rest = (after === null ? [...items] : items.filter((i) => i.id > after)).sort(byId);
  const page = rest.slice(0, q.limit);
  return { items: page, total: items.length, next_cursor: rest.length > q.limit ? encodeCursor(page.at(-1)!.id) : null };
}
