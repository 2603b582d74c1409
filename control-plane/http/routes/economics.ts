// The economic engine's API and the site programs that outrank it:
//   GET  /api/v1/economics                 current prices, per-site profitability, mode, schedule,
//                                          demand response, the last decision explained, and history
//                                          (decisions and profitability from `from` to `to`)
//   GET  /api/v1/economics/profit          ASIC profit as decided over from/to, against always-on and
//                                          the strike rule at the same prices (economics/window-profit.ts)
//   PUT  /api/v1/sites/:id/mode            { mode: auto|manual, reason?, duration_s?, expires_at? }
//                                          manual pins every ASIC by operator claims; auto releases them
//   PUT  /api/v1/sites/:id/schedule        { windows: [{ from_hour, to_hour, mining: off|auto }] }
//                                          an open 'off' window is a schedule claim
//   POST /api/v1/sites/:id/demand-response { mw, from, to, program? }: a site cap claim while in force
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { decisionsToScore, profitabilityHistory, recentDecisions } from '../../db/economics-store.js';
import { windowProfit, WINDOW_STRATEGIES, type WindowStrategy } from '../../economics/window-profit.js';
import type { Api, HttpDeps } from '../deps.js';
import { isoTime } from '../time.js';
import { actorOf } from '../deps.js';
import { expiryOf } from '../../claims/operator.js';

const Json = z.record(z.string(), z.unknown());
const time = isoTime;
const ok = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });
/** a week of one-minute decisions at three sites is ~30,000 rows; past this the window is refused */
const MAX_SCORED_DECISIONS = 50_000;
const MAX_PROFIT_SPAN_MS = 31 * 86_400_000;
const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** from/to with their defaults (to: now, from: `defaultSpanMs` before to), refused when from is not before to */
function windowOf(q: { from?: string; to?: string }, defaultSpanMs: number): { fromMs: number; toMs: number } {
  const toMs = q.to ? Date.parse(q.to) : Date.now();
  const fromMs = q.from ? Date.parse(q.from) : toMs - defaultSpanMs;
  if (fromMs >= toMs) {
    const to = q.to ? 'to' : `to (now, ${new Date(toMs).toISOString()})`;
    throw new HcpError('invalid_argument', `from must be before ${to}`, 'validation_failed', { fields: [{ field: 'from', message: `must be before ${to}` }] });
  }
  return { fromMs, toMs };
}

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
      request: { query: z.object({ site: z.string().min(1).max(63).optional(), from: time.optional(), to: time.optional(), limit: z.coerce.number().int().min(1).max(5000).optional() }) },
      responses: ok('economics'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (q.site) site(q.site);
      const e = econ();
      const { fromMs, toMs } = windowOf(q, 3600_000);
      // without `to` the window is open: a decision written while this one is answered counts
      const upTo = q.to ? toMs : undefined;
      const limit = q.limit ?? 100;
      const sites = registry.sites().filter((s) => !q.site || s.id === q.site).map((s) => s.id).sort();
      const [decisions, profit] = await Promise.all([recentDecisions(db, { site: q.site, fromMs, toMs: upTo, limit }), profitabilityHistory(db, { site: q.site, fromMs, toMs: upTo, limit: limit * 4 })]);
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
      method: 'get',
      path: '/api/v1/economics/profit',
      summary: 'ASIC profit as the engine decided over a window, against always-on and the strike rule at the same prices',
      request: { query: z.object({ site: z.string().min(1).max(63).optional(), from: time.optional(), to: time.optional() }) },
      responses: ok('cumulative profit per site'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (q.site) site(q.site);
      const e = econ();
      const { fromMs, toMs } = windowOf(q, 86_400_000);
      if (toMs - fromMs > MAX_PROFIT_SPAN_MS) {
        throw new HcpError('invalid_argument', `from/to span more than ${MAX_PROFIT_SPAN_MS / 86_400_000} days`, 'validation_failed', { fields: [{ field: 'from', message: 'at most 31 days before to' }] });
      }
      const rows = await decisionsToScore(db, { site: q.site, fromMs, toMs, limit: MAX_SCORED_DECISIONS + 1 });
      if (rows.length > MAX_SCORED_DECISIONS) {
        throw new HcpError('invalid_argument', `the window holds more than ${MAX_SCORED_DECISIONS} decisions; narrow from/to${q.site ? '' : ' or name a site'}`, 'too_many_rows', {
          fields: [{ field: 'from', message: 'narrow the window' }, { field: 'to', message: 'narrow the window' }],
        });
      }
      const bySite = new Map<string, typeof rows>();
      for (const r of rows) {
        const list = bySite.get(r.siteId);
        if (list) list.push(r);
        else bySite.set(r.siteId, [r]);
      }
      const ids = q.site ? [q.site] : [...new Set([...registry.sites().map((s) => s.id), ...bySite.keys()])].sort();
      const total: Record<WindowStrategy, number> = { hcp: 0, always_on: 0, strike: 0 };
      const opts = { toMs: Math.min(toMs, Date.now()), maxGapMs: 2 * e.dispatch.intervalMs, minOnS: e.dispatch.engine.minOnS, minOffS: e.dispatch.engine.minOffS, network: e.dispatch.engine.network };
      const sites = ids.map((id) => {
        const w = windowProfit(bySite.get(id) ?? [], opts);
        for (const k of WINDOW_STRATEGIES) total[k] += w.totalUsd[k];
        return {
          id,
          decisions: w.scored + w.unscored,
          unscored_decisions: w.unscored,
          total_usd: Object.fromEntries(WINDOW_STRATEGIES.map((k) => [k, round(w.totalUsd[k])])),
          series: {
            ts: w.tsMs.map((t) => new Date(t).toISOString()),
            ...Object.fromEntries(WINDOW_STRATEGIES.map((k) => [`${k}_usd`, w.cumulativeUsd[k].map(round)])),
          },
        };
      });
      return c.json({
        from: new Date(fromMs).toISOString(),
        to: new Date(toMs).toISOString(),
        interval_s: e.dispatch.intervalMs / 1000,
        basis: 'ASIC revenue minus ASIC power, steady state (no start-up ramp); HCP as decided by the engine (a higher claim may have overridden it)',
        total_usd: Object.fromEntries(WINDOW_STRATEGIES.map((k) => [k, round(total[k])])),
        sites,
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
