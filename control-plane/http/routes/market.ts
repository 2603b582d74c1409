// GET /api/v1/prices — price ticks as stored, newest first, and the latest of each feed.
// GET /api/v1/grid — each region's frequency, the grid response's phase and its recent actions.
// PUT /api/v1/sites/:id/grid-trip — the site agent's under-frequency trip: { enabled, threshold_hz,
//   device_ids? } or { default: true }; stored, and sent to the agent as an ArmGridTrip command.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { queryPrices } from '../../db/price-store.js';
import { commandView } from '../../commands/views.js';
import type { Api, HttpDeps } from '../deps.js';
import { isoTime } from '../time.js';
import { actorOf } from '../deps.js';

const time = isoTime;
const Json = z.record(z.string(), z.unknown());

export function registerMarketRoutes(app: Api, { readDb: db, registry, market, grid }: HttpDeps): void {
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
    (c) => c.json(grid ? grid.view({ readings: true }) : { regions: [], events: [], readings: {} }, 200),
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/sites/{id}/grid-trip',
      summary: "The site agent's local under-frequency trip: threshold and covered ASICs, or back to the default",
      request: {
        params: z.object({ id: z.string() }),
        body: {
          required: true,
          content: {
            'application/json': {
              // one object, not a union of the two shapes, so a refusal names its field (a union's
              // refusal names only the body)
              schema: z.object({
                /** back to the region's default trip; nothing else may be given with it but a reason */
                default: z.literal(true).optional(),
                enabled: z.boolean().optional(),
                // An under-frequency trip above 59.95 Hz would fire in normal operation (ERCOT's
                // band is 59.967–60.033 Hz) and one below 57 Hz would act after the grid's own
                // load shedding (ERCOT UFLS starts at 59.3 Hz, generators trip near 57.5 Hz).
                threshold_hz: z.number().min(57).max(59.95).optional(),
                device_ids: z.array(z.string().min(1).max(128)).max(20_000).optional(),
                /** required to disarm: a disarmed site no longer sheds load on its own; blank is none */
                reason: z.string().trim().min(1).max(500).optional(),
              }).strict(),
            },
          },
        },
      },
      responses: { 202: { description: 'stored; the command to the agent', content: { 'application/json': { schema: Json } } } },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      if (!registry.site(id)) throw notFound('site', id);
      if (!grid) throw new HcpError('unavailable', 'the grid response is not running', 'grid_off');
      const refuse = (field: string, message: string) =>
        new HcpError('invalid_argument', `${field}: ${message}`, 'validation_failed', { fields: [{ field, message }] });
      if (b.default && (b.enabled !== undefined || b.threshold_hz !== undefined || b.device_ids !== undefined)) {
        const field = b.enabled !== undefined ? 'enabled' : b.threshold_hz !== undefined ? 'threshold_hz' : 'device_ids';
        throw refuse(field, 'is not taken with default');
      }
      if (!b.default && b.enabled === undefined) throw refuse('enabled', 'is required (or default: true)');
      let setting = null;
      if (!b.default && b.enabled !== undefined) {
        if (b.enabled && b.threshold_hz === undefined) {
          throw new HcpError('invalid_argument', 'threshold_hz: is required to enable the trip', 'validation_failed', { fields: [{ field: 'threshold_hz', message: 'required when enabled' }] });
        }
        if (!b.enabled && !b.reason) {
          throw new HcpError('invalid_argument', 'reason: is required to disarm the trip (it is audited)', 'validation_failed', { fields: [{ field: 'reason', message: 'required when enabled is false' }] });
        }
        setting = { enabled: b.enabled, thresholdHz: b.threshold_hz ?? 0, deviceIds: [...new Set(b.device_ids ?? [])] };
      }
      const rec = await grid.setTrip(id, setting, actorOf(c), b.reason ?? null);
      const t = grid.tripFor(id);
      return c.json({
        site: id,
        grid_trip: t ? { enabled: t.enabled, region: t.region, threshold_hz: t.enabled ? t.thresholdHz : null, device_ids: t.deviceIds } : null,
        command: commandView(rec),
      }, 202);
    },
  );
}
