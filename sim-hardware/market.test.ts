import { describe, expect, it } from 'vitest';
import { createManualClock } from './clock.js';
import {
  BTC_BOUNDS_USD,
  createLiveMarket,
  createReplaySource,
  dailyShape,
  GPU_BOUNDS_USD_H,
  marketTicks,
  POWER_BOUNDS_USD_KWH,
  type MarketSimOptions,
  type MarketTick,
} from './market.js';

const START = Date.parse('2025-06-01T00:00:00Z');
const DAY = 86_400_000;
const opts = (seed: number, over: Partial<MarketSimOptions> = {}): MarketSimOptions => ({
  seed,
  startMs: START,
  sites: [
    { id: 'texas-1', utcOffsetHours: -6 },
    { id: 'canada-1', utcOffsetHours: -5 },
  ],
  ...over,
});
const of = (ticks: MarketTick[], feed: string, site?: string) => ticks.filter((t) => t.feed === feed && t.site === site);

describe('market simulator', () => {
  const day = [...marketTicks(opts(1), START + DAY)];

  it('ticks every 10 s (BTC), 5 min (power per site) and 1 min (GPU), in time order', () => {
    expect(of(day, 'btc_usd')).toHaveLength(8640);
    expect(of(day, 'power', 'texas-1')).toHaveLength(288);
    expect(of(day, 'power', 'canada-1')).toHaveLength(288);
    expect(of(day, 'gpu_spot')).toHaveLength(1440);
    const times = day.map((t) => Date.parse(t.ts));
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
    expect(of(day, 'power', 'texas-1')[1]!.ts).toBe('2025-06-01T00:05:00.000Z');
  });

  it('is deterministic for a seed and differs between seeds', () => {
    expect([...marketTicks(opts(1), START + DAY)]).toEqual(day);
    const other = [...marketTicks(opts(2), START + DAY)];
    expect(of(other, 'btc_usd').at(-1)!.price).not.toBe(of(day, 'btc_usd').at(-1)!.price);
  });

  it('keeps prices in their bands, with power spikes of 5–10× about 5 % of the time', () => {
    const week = [...marketTicks(opts(3), START + 7 * DAY)];
    for (const t of of(week, 'btc_usd')) expect(t.price).toBeGreaterThanOrEqual(BTC_BOUNDS_USD[0]);
    const power = of(week, 'power', 'texas-1').map((t) => t.price);
    const normal = power.filter((p) => p <= POWER_BOUNDS_USD_KWH[1]);
    expect(Math.min(...normal)).toBeGreaterThanOrEqual(POWER_BOUNDS_USD_KWH[0]);
    const spikes = power.filter((p) => p > 0.15).length / power.length;
    // 5 % of intervals start a spike lasting 1–4 intervals: roughly 8–15 % of intervals spiking.
    expect(spikes).toBeGreaterThan(0.05);
    expect(spikes).toBeLessThan(0.2);
    expect(Math.max(...power)).toBeGreaterThan(0.3);
    const gpu = of(week, 'gpu_spot').map((t) => t.price);
    expect(gpu.filter((p) => p <= GPU_BOUNDS_USD_H[1]).every((p) => p >= GPU_BOUNDS_USD_H[0])).toBe(true);
    expect(gpu.some((p) => p >= 8 && p <= 10)).toBe(true);
    expect(gpu.every((p) => p <= 6 || p >= 8)).toBe(true);
  });

  it('prices the local afternoon above the night', () => {
    expect(dailyShape(17.5)).toBeGreaterThan(0.95);
    expect(dailyShape(3)).toBeLessThan(0.05);
    const week = of([...marketTicks(opts(4, { powerSpikeChance: 0 }), START + 7 * DAY)], 'power', 'texas-1');
    const meanAt = (h: number) => {
      const xs = week.filter((t) => (new Date(t.ts).getUTCHours() + 24 - 6) % 24 === h).map((t) => t.price);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    expect(meanAt(17)).toBeGreaterThan(meanAt(3) + 0.04);
  });

  it('bounds BTC at $150k even when it starts at the top', () => {
    const ticks = of([...marketTicks(opts(5, { btcStartUsd: 150_000, btcAnnualVolatility: 3 }), START + DAY)], 'btc_usd');
    expect(Math.max(...ticks.map((t) => t.price))).toBeLessThanOrEqual(BTC_BOUNDS_USD[1]);
    expect(Math.min(...ticks.map((t) => t.price))).toBeLessThan(150_000);
  });

  it('live market returns the same path as the range, driven by the clock', () => {
    const clock = createManualClock(START + 7_000); // rounds down to the 5-minute boundary
    const live = createLiveMarket({ ...opts(1), clock });
    const got: MarketTick[] = [...live.poll()];
    expect(got.map((t) => t.feed)).toEqual(['btc_usd', 'power', 'power', 'gpu_spot']);
    for (let i = 0; i < 120; i++) {
      clock.advance(30_000);
      got.push(...live.poll());
    }
    expect(live.poll()).toEqual([]);
    expect(got).toEqual(day.filter((t) => Date.parse(t.ts) <= START + 7_000 + 120 * 30_000));
  });

  it('replays given ticks on a clock', () => {
    const clock = createManualClock(START);
    const src = createReplaySource([{ feed: 'btc_usd', ts: new Date(START + 20_000).toISOString(), price: 2 }, { feed: 'btc_usd', ts: new Date(START).toISOString(), price: 1 }], clock);
    expect(src.poll().map((t) => t.price)).toEqual([1]);
    clock.advance(20_000);
    expect(src.poll().map((t) => t.price)).toEqual([2]);
    expect(src.poll()).toEqual([]);
  });
});
