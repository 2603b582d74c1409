// The audit log, for the console's "Commands and audit" page: who did what, when, newest first,
// filtered by site, actor, action and time, a page at a time (a cursor as the other lists give).
import { createRoute, z } from '@hono/zod-openapi';
import { listAudit } from '../../db/audit-store.js';
import { HcpError } from '../../errors.js';
import type { Api, HttpDeps } from '../deps.js';
import { decodeCursor, encodeCursor } from '../paging.js';
import { isoTime, parseTime } from '../time.js';

const Json = z.record(z.string(), z.unknown());

const auditCursor = (c: string): number | null => {
  const id = decodeCursor(c);
  return id !== null && /^[1-9][0-9]{0,17}$/.test(id) ? Number(id) : null;
};

export const AuditQuery = z.object({
  site: z.string().min(1).max(63).optional(),
  actor: z.string().min(1).max(200).optional(),
  /** one action, or a family ending with '.' ("claim.") */
  action: z.string().min(1).max(100).regex(/^[a-z0-9_.]+$/, 'must be an action such as claim.created, or a family such as claim.').optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().refine((c) => auditCursor(c) !== null, 'must be a next_cursor from an earlier page of this list').optional(),
});

export function registerAuditRoutes(app: Api, deps: HttpDeps): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/audit',
      summary: 'The audit log, newest first: filters site, actor, action (or a family ending in "."), from/to; paged',
      request: { query: AuditQuery },
      responses: { 200: { description: 'audit entries and the cursor to the next page (null on the last)', content: { 'application/json': { schema: Json } } } },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const fromMs = q.from === undefined ? undefined : parseTime(q.from)!;
      const toMs = q.to === undefined ? undefined : parseTime(q.to)!;
      if (fromMs !== undefined && toMs !== undefined && fromMs > toMs) {
        throw new HcpError('invalid_argument', 'invalid query: from: must not be after to', 'validation_failed', { fields: [{ field: 'from', message: 'must not be after to' }] });
      }
      await deps.audit.flush();
      const rows = await listAudit(deps.readDb, {
        site: q.site, actor: q.actor, action: q.action, fromMs, toMs, limit: q.limit,
        afterId: q.cursor === undefined ? undefined : auditCursor(q.cursor)!,
      });
      const page = rows.slice(0, q.limit);
      return c.json({
        entries: page.map((r) => ({ id: String(r.id), time: new Date(r.timeMs).toISOString(), actor: r.actor, action: r.action, subject: r.subject, details: r.details })),
        next_cursor: rows.length > q.limit ? encodeCursor(String(page.at(-1)!.id)) : null,
      }, 200);
    },
  );
}
