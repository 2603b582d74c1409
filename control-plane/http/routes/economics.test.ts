// POST /api/v1/economics/backtest on its real worker thread, and GET /api/v1/economics/profit and
// the history's from/to over decisions stored in real PostgreSQL.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBacktestRunner, type BacktestRunner } from '../../backtest/runner.js';
import { createDb, type Db } from '../../db/client.js';
import { insertDecisions } from '../../db/economics-store.js';
import { migrate } from '../../db/migrate.js';
import { ASIC_MODEL_SPECS } from '../../economics/asic-models.js';
import { DEFAULT_ENGINE_CONFIG } from '../../economics/engine.js';
import { netUsdPerThHour } from '../../economics/profitability.js';
import { Registry } from '../../registry/registry.js';
import { formatMarketCsv } from '../../../sim-hardware/market-csv.js';
import { marketTicks } from '../../../sim-hardware/market.js';
import { bearer } from '../../../test/harness/auth.js';
import { testHttpApp } from '../../../test/harness/http-app.js';
import { describePg } from '../../../test/harness/pg.js';
import type { Api, HttpDeps } from '../deps.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describePg('economics routes', (pg) => {
  let db: Db;
  let app: Api;
  let backtests: BacktestRunner;
  const post = async (body: unknown) => {
    const r = await app.request('/api/v1/economics/backtest', { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Json };
  };
  const get = async (path: string) => {
    const r = await app.request(path, { headers: bearer() });
    return { status: r.status, body: (await r.json()) as Json };
  };

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: ':memory:' });
    await migrate(db);
    backtests = createBacktestRunner();
    // the dispatch as far as these routes read it: its interval and engine configuration
    const economics = { dispatch: { intervalMs: 60_000, engine: { ...DEFAULT_ENGINE_CONFIG, minOnS: 0, minOffS: 0 }, lastDecision: () => null } } as unknown as HttpDeps['economics'];
    app = testHttpApp({ registry: new Registry({ staleAfterMs: 60_000 }), db, backtests, economics });
  });
  afterAll(async () => {
    await backtests?.close();
    await db?.close();
  });

  it('backtests a seed: hourly series and a summary that agree, HCP above always-on and the strike rule on seed 1', async () => {
    const r = await post({ seed: 1, hours: 24 });
    expect(r.status).toBe(200);
    const { summary, hourly } = r.body;
    expect(summary).toMatchObject({ site: 'texas-1', seed: 1, hours: 24, steps: 288, unpriced_steps: 0, from: '2025-06-01T00:00:00.000Z' });
    expect(hourly.ts).toHaveLength(24);
    for (const k of ['power_usd_kwh', 'hashprice_usd_ph_day', 'decision']) expect(hourly[k]).toHaveLength(24);
    for (const k of ['hcp', 'always_on', 'strike', 'optimum']) {
      expect(hourly.cumulative_usd[k]).toHaveLength(24);
      expect(hourly.cumulative_usd[k].at(-1)).toBeCloseTo(summary.profit_usd[k], 1);
      expect(summary.profit_usd[k]).toBeLessThanOrEqual(summary.profit_usd.optimum);
    }
    // what control-plane/economics/backtest.test.ts holds for seed 1 over this same day
    expect(summary.profit_usd.hcp).toBeGreaterThan(summary.profit_usd.always_on);
    expect(summary.profit_usd.hcp).toBeGreaterThan(summary.profit_usd.strike);
    expect(summary.capture_ratio).toBeGreaterThanOrEqual(0.95);
    expect(hourly.hashprice_usd_ph_day[0]).toBeGreaterThan(20);
  }, 60_000);

  it('backtests uploaded prices at the first site they price', async () => {
    const start = Date.parse('2026-01-05T00:00:00Z');
    const csv = formatMarketCsv(marketTicks({ seed: 7, startMs: start, sites: [{ id: 'ohio-2', utcOffsetHours: -5 }] }, start + 2 * 3600_000));
    const r = await post({ prices_csv: csv });
    expect(r.status).toBe(200);
    expect(r.body.summary).toMatchObject({ site: 'ohio-2', seed: null, steps: 24, from: '2026-01-05T00:00:00.000Z' });
    expect(r.body.hourly.ts).toEqual(['2026-01-05T00:00:00.000Z', '2026-01-05T01:00:00.000Z']);
  }, 60_000);

  it('refuses a bad CSV naming its lines, and says which field is wrong', async () => {
    const bad = await post({ prices_csv: 'ts,feed,site,price\n2026-01-05T00:00:00Z,btc_usd,,90000\n2026-01-05T00:05:00Z,power,texas-1,cheap\n2026-01-05 00:10,power,texas-1,0.05\n' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.reason).toBe('invalid_price_csv');
    expect(bad.body.error.fields.map((f: Json) => f.field)).toEqual(['prices_csv', 'prices_csv']);
    expect(bad.body.error.fields[0].message).toMatch(/^line 3: price "cheap" is not a number/);
    expect(bad.body.error.fields[1].message).toMatch(/^line 4: ts/);
    const noBtc = await post({ prices_csv: 'ts,feed,site,price\n2026-01-05T00:05:00Z,power,texas-1,0.05\n' });
    expect(noBtc.status).toBe(400);
    expect(noBtc.body.error.message).toMatch(/no btc_usd prices/);
    const neither = await post({ hours: 24 });
    expect(neither.status).toBe(400);
    expect(neither.body.error.fields[0].field).toBe('seed');
  });

  it('refuses an oversized request with 400 naming the field', async () => {
    const hours = await post({ seed: 1, hours: 721 });
    expect(hours.status).toBe(400);
    expect(hours.body.error.fields[0].field).toBe('hours');
    const long = await post({ prices_csv: `ts,feed,site,price\n${'#'.repeat(1_000_001)}` });
    expect(long.status).toBe(400);
    expect(long.body.error.fields[0].field).toBe('prices_csv');
    // a CSV under the size cap whose prices span more than 720 hours
    const span = await post({ prices_csv: 'ts,feed,site,price\n2026-01-01T00:00:00Z,btc_usd,,90000\n2026-01-01T00:00:00Z,power,texas-1,0.05\n2026-03-01T00:00:00Z,power,texas-1,0.05\n' });
    expect(span.status).toBe(400);
    expect(span.body.error.fields[0]).toMatchObject({ field: 'prices_csv' });
    expect(span.body.error.message).toMatch(/span 1416 hours .* at most 720/);
  });

  it('scores stored decisions over a window against always-on and the strike rule, and bounds the history by from/to', async () => {
    const XP = ASIC_MODEL_SPECS['s21-xp'];
    const u = netUsdPerThHour(90_000);
    const breakeven = (XP.ratedThs * u) / (XP.ratedPowerW / 1000);
    const T0 = Date.parse('2026-11-30T12:00:00Z');
    // three decisions a minute apart at one site of 10 S21 XPs: cheap, dear (the engine slept them), cheap
    const prices = [breakeven / 2, breakeven * 2, breakeven / 2];
    await insertDecisions(db, prices.map((price, i) => {
      const mining = i === 1 ? 0 : 10;
      return {
        timeMs: T0 + i * 60_000, siteId: 'texas-1', rule: i === 1 ? 'price_curtail' : 'price_resume', summary: `decision ${i}`, expectedMarginUsdH: null, commands: [],
        explanation: {
          inputs: { btcUsd: 90_000, powerUsdKwh: price },
          models: [{ model: 's21-xp', count: 10, mining }],
          expectedUsdH: { asicRevenue: mining * XP.ratedThs * u, asicPowerCost: ((mining * XP.ratedPowerW + (10 - mining) * XP.standbyW) / 1000) * price },
        },
      };
    }));
    const from = new Date(T0).toISOString();
    const to = new Date(T0 + 3 * 60_000).toISOString();
    const r = await get(`/api/v1/economics/profit?from=${from}&to=${to}`);
    expect(r.status).toBe(200);
    const site = r.body.sites.find((s: Json) => s.id === 'texas-1');
    expect(site.decisions).toBe(3);
    expect(site.series.ts).toEqual([1, 2, 3].map((m) => new Date(T0 + m * 60_000).toISOString()));
    const mining = (p: number) => 10 * (XP.ratedThs * u - (XP.ratedPowerW / 1000) * p);
    expect(site.total_usd.always_on).toBeCloseTo((2 * mining(prices[0]!) + mining(prices[1]!)) / 60, 3);
    expect(site.total_usd.hcp).toBeGreaterThan(site.total_usd.always_on);
    expect(site.total_usd.strike).toBeCloseTo(site.total_usd.hcp, 3);
    expect(r.body.total_usd.hcp).toBeCloseTo(site.total_usd.hcp, 3);
    expect(site.series.hcp_usd.at(-1)).toBeCloseTo(site.total_usd.hcp, 3);

    const h = await get(`/api/v1/economics?from=${from}&to=${new Date(T0 + 90_000).toISOString()}`);
    expect(h.status).toBe(200);
    expect(h.body.history.map((d: Json) => d.summary)).toEqual(['decision 1', 'decision 0']);

    const backwards = await get(`/api/v1/economics/profit?from=${to}&to=${from}`);
    expect(backwards.status).toBe(400);
    expect(backwards.body.error.fields[0].field).toBe('from');
  });
});
