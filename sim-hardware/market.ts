// Market simulator: BTC/USD, per-site wholesale power and GPU spot rental prices, deterministic
// for a seed and a start time (docs/architecture.md "Reference numbers", market feeds).
//
// Wiring: the backtest reads a whole path with `marketTicks(opts, toMs)`; the feeds process
// (feeds-main.ts) calls `createLiveMarket({ clock, … }).poll()` on a timer and publishes what it
// returns on hcp/v1/market/* (proto/market-topics.ts). Both walk the same path, so a live run and
// a backtest with the same seed and start see the same prices. csv-replay.ts turns a file of
// real prices into the same tick stream.
import type { Clock } from './clock.js';
import { clamp } from './lag.js';
import { createRng, type Rng } from './rng.js';

export type MarketFeed = 'btc_usd' | 'power' | 'gpu_spot';

export interface MarketTick {
  feed: MarketFeed;
  /** power prices are per site; absent for the other feeds */
  site?: string;
  /** ISO-8601, UTC */
  ts: string;
  /** USD per BTC, USD per kWh, or USD per GPU-hour */
  price: number;
}

export interface MarketSite {
  id: string;
  /** hours east of UTC for the daily load shape (peak in the local afternoon) */
  utcOffsetHours: number;
}

/** Standard-time UTC offsets of the grid regions we model; the shape only needs the hour roughly. */
export const REGION_UTC_OFFSET_HOURS: Readonly<Record<string, number>> = {
  ercot: -6, // Texas, US Central
  ieso: -5, // Ontario, US/Canada Eastern
  pjm: -5,
  miso: -6,
  spp: -6,
  caiso: -8,
};

export function utcOffsetForRegion(region: string): number {
  return REGION_UTC_OFFSET_HOURS[region] ?? 0;
}

export const BTC_INTERVAL_MS = 10_000;
export const POWER_INTERVAL_MS = 5 * 60_000;
export const GPU_INTERVAL_MS = 60_000;

export const BTC_BOUNDS_USD = [20_000, 150_000] as const;
export const POWER_BOUNDS_USD_KWH = [0.03, 0.12] as const;
export const GPU_BOUNDS_USD_H = [2, 6] as const;

export interface MarketSimOptions {
  seed: number | string;
  sites: readonly MarketSite[];
  /** time of the first tick of every feed, unix ms */
  startMs: number;
  /** default 90,000: with the network defaults in control-plane/economics this is ≈ $37/PH/day */
  btcStartUsd?: number;
  /** annualised volatility of the BTC walk; default 0.5 (bitcoin's realised vol is 40–60 %) */
  btcAnnualVolatility?: number;
  /** chance per 5-minute interval that a price spike starts; default 0.05 */
  powerSpikeChance?: number;
  /** chance per minute that a GPU spot spike starts; default 0.004 (≈ 6 a day) */
  gpuSpikeChance?: number;
}

const YEAR_MS = 365 * 24 * 3600_000;

interface FeedWalk {
  feed: MarketFeed;
  site?: string;
  intervalMs: number;
  nextMs: number;
  /** the price of the tick at `nextMs`; advances the walk */
  step(atMs: number): number;
}

function btcWalk(o: MarketSimOptions, rng: Rng): FeedWalk['step'] {
  const [lo, hi] = BTC_BOUNDS_USD;
  const sigma = o.btcAnnualVolatility ?? 0.5;
  const dtYears = BTC_INTERVAL_MS / YEAR_MS;
  let logP = Math.log(clamp(o.btcStartUsd ?? 90_000, lo, hi));
  let first = true;
  return () => {
    if (!first) {
      // Driftless GBM: d ln P = −σ²/2 dt + σ dW, so the price is a martingale.
      logP += -0.5 * sigma * sigma * dtYears + sigma * Math.sqrt(dtYears) * rng.normal();
      // Reflect at the bounds in log space, so the walk stays inside without sticking to them.
      if (logP > Math.log(hi)) logP = 2 * Math.log(hi) - logP;
      if (logP < Math.log(lo)) logP = 2 * Math.log(lo) - logP;
      logP = clamp(logP, Math.log(lo), Math.log(hi));
    }
    first = false;
    return Math.round(Math.exp(logP) * 100) / 100;
  };
}

/**
 * ERCOT-style daily shape, 0..1 by local hour: low overnight, a small morning ramp, the peak in
 * the late afternoon when air conditioning load is highest (ERCOT's peak hours are ~16–19 h).
 */
export function dailyShape(localHour: number): number {
  const bump = (centre: number, width: number): number => {
    const d = Math.min(Math.abs(localHour - centre), 24 - Math.abs(localHour - centre));
    return Math.exp(-(d * d) / (2 * width * width));
  };
  return Math.min(1, 0.35 * bump(8, 1.5) + bump(17.5, 2.2));
}

function powerWalk(o: MarketSimOptions, site: MarketSite, rng: Rng): FeedWalk['step'] {
  const [lo, hi] = POWER_BOUNDS_USD_KWH;
  const spikeChance = o.powerSpikeChance ?? 0.05;
  let noise = 0;
  let spikeLeft = 0;
  let spikeMult = 5;
  return (atMs) => {
    const localHour = (((atMs / 3600_000 + site.utcOffsetHours) % 24) + 24) % 24;
    // AR(1) noise: prices wander around the shape for an hour or so rather than jumping.
    noise = 0.85 * noise + 0.006 * rng.normal();
    const base = clamp(0.035 + 0.075 * dailyShape(localHour) + noise, lo, hi);
    let spiking = true;
    if (spikeLeft > 0) spikeLeft--;
    else if (rng.chance(spikeChance)) {
      // Scarcity pricing: a 5–10× spike for 1–4 intervals (5–20 min).
      spikeMult = rng.range(5, 10);
      spikeLeft = Math.floor(rng.range(0, 4));
    } else spiking = false;
    return Math.round(base * (spiking ? spikeMult : 1) * 1e5) / 1e5;
  };
}

function gpuWalk(o: MarketSimOptions, rng: Rng): FeedWalk['step'] {
  const [lo, hi] = GPU_BOUNDS_USD_H;
  const spikeChance = o.gpuSpikeChance ?? 0.004;
  let rate = 3.5;
  let spikeLeft = 0;
  let spike = 0;
  return () => {
    // Mean-reverting around $3.50/h, the middle of the $2–6 band.
    rate = clamp(rate + 0.05 * (3.5 - rate) + 0.08 * rng.normal(), lo, hi);
    let spiking = true;
    if (spikeLeft > 0) spikeLeft--;
    else if (rng.chance(spikeChance)) {
      // Capacity crunch: $8–10/h for 5–30 minutes.
      spike = rng.range(8, 10);
      spikeLeft = Math.floor(rng.range(4, 30));
    } else spiking = false;
    return Math.round((spiking ? spike : rate) * 1000) / 1000;
  };
}

export interface MarketPath {
  /** unix ms of the next tick */
  peek(): number;
  /** the next tick in time order; ties go btc, power (sites in order), gpu */
  next(): MarketTick;
}

export function createMarketPath(o: MarketSimOptions): MarketPath {
  if (!Number.isFinite(o.startMs)) throw new RangeError(`startMs must be finite, got ${o.startMs}`);
  const root = createRng(o.seed).fork('market');
  const walks: FeedWalk[] = [
    { feed: 'btc_usd', intervalMs: BTC_INTERVAL_MS, nextMs: o.startMs, step: btcWalk(o, root.fork('btc')) },
    ...o.sites.map((s) => ({
      feed: 'power' as const,
      site: s.id,
      intervalMs: POWER_INTERVAL_MS,
      nextMs: o.startMs,
      step: powerWalk(o, s, root.fork(`power/${s.id}`)),
    })),
    { feed: 'gpu_spot', intervalMs: GPU_INTERVAL_MS, nextMs: o.startMs, step: gpuWalk(o, root.fork('gpu')) },
  ];
  const earliest = (): FeedWalk => walks.reduce((a, b) => (b.nextMs < a.nextMs ? b : a));
  return {
    peek: () => earliest().nextMs,
    next: () => {
      const w = earliest();
      const at = w.nextMs;
      const price = w.step(at);
      w.nextMs += w.intervalMs;
      return { feed: w.feed, ...(w.site !== undefined ? { site: w.site } : {}), ts: new Date(at).toISOString(), price };
    },
  };
}

/** Every tick from `o.startMs` up to (not including) `toMs`, in time order. */
export function* marketTicks(o: MarketSimOptions, toMs: number): Generator<MarketTick> {
  const path = createMarketPath(o);
  while (path.peek() < toMs) yield path.next();
}

export interface TickSource {
  /** the ticks that fell due since the last call (ts ≤ clock.now()), each once, in time order */
  poll(): MarketTick[];
}

export interface LiveMarketOptions extends Omit<MarketSimOptions, 'startMs'> {
  clock: Clock;
  /** default: the clock's time at creation, rounded down to a 5-minute boundary */
  startMs?: number;
}

export function createLiveMarket(o: LiveMarketOptions): TickSource {
  const startMs = o.startMs ?? Math.floor(o.clock.now() / POWER_INTERVAL_MS) * POWER_INTERVAL_MS;
  const path = createMarketPath({ ...o, startMs });
  return {
    poll: () => {
      const now = o.clock.now();
      const out: MarketTick[] = [];
      while (path.peek() <= now) out.push(path.next());
      return out;
    },
  };
}

/** Replays ticks (e.g. from a CSV) on a clock: each is returned once its ts has passed. */
export function createReplaySource(ticks: readonly MarketTick[], clock: Clock): TickSource {
  const sorted = [...ticks].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
  let i = 0;
  return {
    poll: () => {
      const now = clock.now();
      const out: MarketTick[] = [];
      while (i < sorted.length && Date.parse(sorted[i]!.ts) <= now) out.push(sorted[i++]!);
      return out;
    },
  };
}
