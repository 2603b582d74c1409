import { describe, expect, it } from 'vitest';
import { ASIC_MODEL_SPECS } from './asic-models.js';
import { netUsdPerThHour } from './profitability.js';
import { windowProfit, type DecisionSnapshot } from './window-profit.js';

const XP = ASIC_MODEL_SPECS['s21-xp'];
const T0 = Date.parse('2026-12-01T00:00:00Z');
const MIN = 60_000;
const BTC = 90_000;
const u = netUsdPerThHour(BTC);
const breakeven = (XP.ratedThs * u) / (XP.ratedPowerW / 1000);
const miningUsdH = (price: number) => XP.ratedThs * u - (XP.ratedPowerW / 1000) * price;

/** 10 S21 XPs; the engine's own state is given as how many it kept mining */
const snap = (minute: number, price: number | null, mining: number): DecisionSnapshot => ({
  timeMs: T0 + minute * MIN,
  btcUsd: BTC,
  powerUsdKwh: price,
  models: [{ model: 's21-xp', count: 10, mining }],
  expected: price === null ? null : { asicRevenue: mining * XP.ratedThs * u, asicPowerCost: ((mining * XP.ratedPowerW + (10 - mining) * XP.standbyW) / 1000) * price },
});
const opts = { toMs: T0 + 120 * MIN, maxGapMs: 2 * MIN, minOnS: 0, minOffS: 0 };

describe('window profit', () => {
  it('scores each decision until the next one: HCP as decided, always-on at stock, strike around break-even', () => {
    const cheap = breakeven * 0.5;
    const dear = breakeven * 2;
    const r = windowProfit([snap(0, cheap, 10), snap(1, dear, 0), snap(2, cheap, 10)], { ...opts, toMs: T0 + 3 * MIN });
    expect(r.tsMs).toEqual([T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]);
    const h = 1 / 60;
    const asleepUsdH = (price: number) => -10 * (XP.standbyW / 1000) * price;
    expect(r.totalUsd.always_on).toBeCloseTo(10 * (2 * miningUsdH(cheap) + miningUsdH(dear)) * h, 9);
    // the engine slept through the dear minute as the strike rule does
    expect(r.totalUsd.hcp).toBeCloseTo((10 * 2 * miningUsdH(cheap) + asleepUsdH(dear)) * h, 9);
    expect(r.totalUsd.strike).toBeCloseTo(r.totalUsd.hcp, 9);
    expect(r.totalUsd.hcp).toBeGreaterThan(r.totalUsd.always_on);
    expect(r.cumulativeUsd.hcp.at(-1)).toBeCloseTo(r.totalUsd.hcp, 9);
  });

  it('holds the strike rule to the minimum off time', () => {
    const cheap = breakeven * 0.5;
    const dear = breakeven * 2;
    const snaps = [snap(0, cheap, 10), snap(1, dear, 0), snap(2, cheap, 10), snap(3, cheap, 10)];
    const r = windowProfit(snaps, { ...opts, toMs: T0 + 4 * MIN, minOffS: 120 });
    // off at minute 1; at minute 2 only 60 s have passed, so it sleeps on through a cheap minute
    const asleep = (price: number) => -10 * (XP.standbyW / 1000) * price;
    expect(r.totalUsd.strike).toBeCloseTo((10 * miningUsdH(cheap) + asleep(dear) + asleep(cheap) + 10 * miningUsdH(cheap)) / 60, 9);
    expect(r.totalUsd.hcp).toBeGreaterThan(r.totalUsd.strike);
  });

  it('counts nothing across a gap or without a price', () => {
    const r = windowProfit([snap(0, 0.05, 10), snap(60, null, 10), snap(61, 0.05, 10)], { ...opts, toMs: T0 + 62 * MIN });
    expect(r.scored).toBe(2);
    expect(r.unscored).toBe(1);
    // the first decision holds for maxGapMs (2 min), not the hour until the next
    expect(r.totalUsd.always_on).toBeCloseTo(10 * miningUsdH(0.05) * (3 / 60), 9);
  });
});
