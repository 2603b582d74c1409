// GET /api/v1/prices — price ticks as stored, newest first, and the latest of each feed.
// GET /api/v1/grid — each region's frequency, the grid response's phase and its recent actions.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { queryPrices } from '../../db/price-store.js';
import type { Api, HttpDeps } from '../app.js';

const time = z
  .string()
  .refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO-8601 time, e.g. 2026-11-24T09:00:00Z');
const Json = z.record(z.string(), z.unknown());

export function registerMarketRoutes(app: Api, { db, registry, market, grid }: HttpDeps): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/prices',
      summary: 'Price ticks (BTC, power per site, GPU spot), newest first, and the latest of each feed',
      request: {
        query: z.object({
          feed: z.enum(['btc_usd', 'power', 'gpu_spot']).optional(),
          site: z.string().min(1).max(63).optional(),
          from: time.optional(),
          to: time.optional(),
          limit: z.coerce.number().int().min(1).max(10_000).optional(),
        }),
      },
      responses: { 200: { description: 'ticks', content: { 'application/json': { schema: Json } } } },
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (q.site && !registry.site(q.site)) throw notFound('site', q.site);
      const toMs = q.to ? Date.parse(q.to) : Date.now();
      const fromMs = q.from ? Date.parse(q.from) : toMs - 24 * 3600_000;
      if (fromMs > toMs) throw new HcpError('invalid_argument', 'from must not be after to', 'validation_failed', { fields: [{ field: 'from', message: 'must not be after to' }] });
      const rows = await queryPrices(db, { feed: q.feed, site: q.site, fromMs, toMs, limit: q.limit ?? 1000 });
      return c.json({
        from: new Date(fromMs).toISOString(),
        to: new Date(toMs).toISOString(),
        latest: market?.book.view() ?? null,
        ticks: rows.map((r) => ({ ts: new Date(r.timeMs).toISOString(), feed: r.feed, site: r.siteId, price: r.price, source: r.source })),
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/grid',
      summary: 'Grid frequency per region and the under-frequency response',
      responses: { 200: { description: 'grid', content: { 'application/json': { schema: Json } } } },
    }),
    (c) => c.json(grid ? grid.view() : { regions: [], events: [] }, 200),
  );
}
