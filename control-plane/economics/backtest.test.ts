import { describe, expect, it } from 'vitest';
import { marketTicks } from '../../sim-hardware/market.js';
import { DEFAULT_BACKTEST_FLEET, runBacktest, STRATEGIES } from './backtest.js';

const START = Date.parse('2025-06-01T00:00:00Z');
const DAY = 86_400_000;

describe('backtest', () => {
  const ticks = [...marketTicks({ seed: 1, startMs: START, sites: [{ id: 'texas-1', utcOffsetHours: -6 }] }, START + DAY)];
  const r = runBacktest({ ticks, fromMs: START, toMs: START + DAY });

  it('scores every strategy at or below the perfect-foresight optimum', () => {
    expect(r.steps).toBe(288);
    expect(r.unpricedSteps).toBe(0);
    for (const k of STRATEGIES) expect(r.asicUsd[k]).toBeLessThanOrEqual(r.asicUsd.optimum + 1e-6);
    expect(r.series.cumulativeUsd.optimum.at(-1)).toBeCloseTo(r.asicUsd.optimum, 6);
  });

  it('captures ≥ 95 % of the optimum on seed 1 over a day, beating always-on and the strike rule', () => {
    expect(r.asicUsd.engine / r.asicUsd.optimum).toBeGreaterThanOrEqual(0.95);
    expect(r.asicUsd.engine).toBeGreaterThan(r.asicUsd.strike);
    expect(r.asicUsd.engine).toBeGreaterThan(r.asicUsd.always_on);
    expect(r.engineCounts.stops).toBeGreaterThan(0);
  });

  it('never plans more ASIC power than the cap leaves after the GPUs', () => {
    const gpuMaxKw = (DEFAULT_BACKTEST_FLEET.gpus * 700) / 1000;
    expect(Math.max(...r.series.asicKw.engine)).toBeLessThanOrEqual(DEFAULT_BACKTEST_FLEET.capKw - gpuMaxKw);
  });

  it('leaves the fleet as it is and scores nothing until a power price arrives', () => {
    const late = ticks.filter((t) => t.feed !== 'power' || Date.parse(t.ts) >= START + 3600_000);
    const lr = runBacktest({ ticks: late, fromMs: START, toMs: START + 2 * 3600_000 });
    expect(lr.unpricedSteps).toBe(12);
    expect(lr.series.engineRule.slice(0, 12).every((x) => x === 'no_power_price')).toBe(true);
    expect(lr.series.asicKw.engine[0]).toBeCloseTo(lr.series.asicKw.always_on[0]!, 9);
  });
});
