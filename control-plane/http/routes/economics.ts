// The economic engine's API and the site programs that outrank it:
//   GET  /api/v1/economics                 current prices, per-site profitability, mode, schedule,
//                                          demand response, the last decision explained, and history
//   PUT  /api/v1/sites/:id/mode            { mode: auto|manual, reason?, duration_s?, expires_at? }
//                                          manual pins every ASIC by operator claims; auto releases them
//   PUT  /api/v1/sites/:id/schedule        { windows: [{ from_hour, to_hour, mining: off|auto }] }
//                                          an open 'off' window is a schedule claim
//   POST /api/v1/sites/:id/demand-response { mw, from, to, program? }: a site cap claim while in force
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { profitabilityHistory, recentDecisions } from '../../db/economics-store.js';
import type { Api, HttpDeps } from '../deps.js';
import { isoTime } from '../time.js';
import { actorOf } from '../deps.js';
import { expiryOf } from '../../claims/operator.js';

const Json = z.record(z.string(), z.unknown());
const time = isoTime;
const ok = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });

export function registerEconomicsRoutes(app: Api, deps: HttpDeps): void {
  const { readDb: db, registry } = deps;
  const econ = () => {
    if (!deps.economics) throw new HcpError('unavailable', 'the economic engine is not running', 'economics_off');
    return deps.economics;
  };
  const site = (id: string) => {
    const s = registry.site(id);
    if (!s) throw notFound('site', id);
    return s;
  };
  const controlView = (id: string) => {
    const c = deps.claims.controls.get(id);
    const held = deps.claims.service.list(id).filter((x) => x.source === 'operator');
    const first = held[0];
    return {
      mode: deps.claims.operator.mode(id),
      mode_reason: first?.reason ?? null,
      mode_changed_by: first?.actor ?? null,
      mode_changed_at: first ? new Date(first.createdAtMs).toISOString() : null,
      operator_claims: held.map((x) => x.id),
      schedule: c.schedule.map((w) => ({ from_hour: w.fromHour, to_hour: w.toHour, mining: w.mining })),
      demand_response: deps.claims.controls.demandResponse(id).map((r) => ({ id: r.id, mw: r.mw, from: new Date(r.fromMs).toISOString(), to: new Date(r.toMs).toISOString(), program: r.program })),
    };
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/economics',
      summary: 'Prices, profitability per device class and site, and each decision explained',
      request: { query: z.object({ site: z.string().min(1).max(63).optional(), from: time.optional(), limit: z.coerce.number().int().min(1).max(5000).optional() }) },
      responses: ok('economics'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (q.site) site(q.site);
      const e = econ();
      const fromMs = q.from ? Date.parse(q.from) : Date.now() - 3600_000;
      const limit = q.limit ?? 100;
      const sites = registry.sites().filter((s) => !q.site || s.id === q.site).map((s) => s.id).sort();
      const [decisions, profit] = await Promise.all([recentDecisions(db, { site: q.site, fromMs, limit }), profitabilityHistory(db, { site: q.site, fromMs, limit: limit * 4 })]);
      const latestProfit = new Map<string, Record<string, unknown>[]>();
      for (const r of profit) {
        const key = r.site_id as string;
        const list = latestProfit.get(key) ?? [];
        if (!list.length || String(list[0]!.time) === String(r.time)) list.push(r);
        latestProfit.set(key, list);
      }
      return c.json({
        interval_s: e.dispatch.intervalMs / 1000,
        prices: deps.market?.book.view() ?? null,
        sites: sites.map((id) => ({
          id,
          ...controlView(id),
          grid_hold: deps.grid ? deps.grid.holding(registry.site(id)!.region) : false,
          decision: e.dispatch.lastDecision(id),
          profitability: (latestProfit.get(id) ?? []).map((r) => ({
            time: r.time, device_class: r.device_class, revenue_usd_h: Number(r.revenue_usd_h), power_cost_usd_h: Number(r.power_cost_usd_h),
            margin_usd_h: Number(r.margin_usd_h), breakeven_usd_kwh: r.breakeven_usd_kwh === null ? null : Number(r.breakeven_usd_kwh),
          })),
        })),
        history: decisions.map((r) => ({ at: new Date(r.timeMs).toISOString(), site: r.siteId, rule: r.rule, summary: r.summary, expected_margin_usd_h: r.expectedMarginUsdH, commands: r.commands })),
        profitability_history: profit.map((r) => ({
          time: r.time, site: r.site_id, device_class: r.device_class, revenue_usd_h: Number(r.revenue_usd_h), power_cost_usd_h: Number(r.power_cost_usd_h),
          margin_usd_h: Number(r.margin_usd_h), breakeven_usd_kwh: r.breakeven_usd_kwh === null ? null : Number(r.breakeven_usd_kwh),
        })),
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/sites/{id}/mode',
      summary: 'Automatic (the engine decides) or manual (operators do) for one site',
      request: {
        params: z.object({ id: z.string() }),
        ...body(z.object({ mode: z.enum(['auto', 'manual']), reason: z.string().max(500).optional(), expires_at: time.optional(), duration_s: z.number().positive().max(366 * 86_400).optional() })),
      },
      responses: ok('the site controls'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      site(id);
      if (b.mode === 'manual') {
        const expires = expiryOf(b);
        if (deps.claims.operator.mode(id) === 'auto') await deps.claims.operator.hold(id, actorOf(c), b.reason ?? null, expires);
      } else {
        await deps.claims.operator.releaseAll(id, actorOf(c), b.reason ?? null);
        if (deps.economics) void deps.economics.dispatch.decideNow();
      }
      return c.json({ site: id, ...controlView(id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/sites/{id}/schedule',
      summary: "Time-of-day windows in the site's local time: mining off, or left to the engine",
      request: {
        params: z.object({ id: z.string() }),
        ...body(z.object({
          windows: z.array(z.object({ from_hour: z.number().int().min(0).max(23), to_hour: z.number().int().min(0).max(24), mining: z.enum(['off', 'auto']) })).max(48),
        })),
      },
      responses: ok('the site controls'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      site(id);
      b.windows.forEach((w, i) => {
        if (w.from_hour === w.to_hour) throw new HcpError('invalid_argument', `windows.${i}: from_hour and to_hour are equal`, 'validation_failed', { fields: [{ field: `windows.${i}.to_hour`, message: 'must differ from from_hour' }] });
      });
      await deps.claims.controls.setSchedule(id, b.windows.map((w) => ({ fromHour: w.from_hour, toHour: w.to_hour % 24, mining: w.mining })), actorOf(c));
      await deps.claims.programs.syncNow(id);
      return c.json({ site: id, ...controlView(id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/sites/{id}/demand-response',
      summary: 'Commit the site to shed MW for a window (the engine and the scheduler respect it)',
      request: { params: z.object({ id: z.string() }), ...body(z.object({ mw: z.number().positive().max(1000), from: time, to: time, program: z.string().max(64).optional() })) },
      responses: { 201: { description: 'the commitment', content: { 'application/json': { schema: Json } } } },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      site(id);
      const fromMs = Date.parse(b.from);
      const toMs = Date.parse(b.to);
      if (toMs <= fromMs) throw new HcpError('invalid_argument', 'to must be after from', 'validation_failed', { fields: [{ field: 'to', message: 'must be after from' }] });
      const r = await deps.claims.controls.addDemandResponse({ siteId: id, mw: b.mw, fromMs, toMs, program: b.program ?? '', createdBy: actorOf(c) });
      await deps.claims.programs.syncNow(id);
      if (deps.economics) void deps.economics.dispatch.decideNow();
      return c.json({ id: r.id, site: id, mw: r.mw, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), program: r.program }, 201);
    },
  );
}
