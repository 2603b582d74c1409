// The backtest's result as the API serves it (POST /api/v1/economics/backtest): hourly series
// (power price, hashprice, stock break-even, the ASIC power each strategy draws, the engine's
// decision, cumulative profit) and the summary bench/backtest.ts prints. Hourly, not per 5-minute
// step, so 720 hours are 720 points a series and the answer stays well under a megabyte.
import { RULES, type Rule } from './engine.js';
import { hashpriceUsdPerPhDay, type NetworkParams } from './profitability.js';
import { STRATEGIES, type BacktestFleet, type BacktestResult, type Strategy } from './backtest.js';

/** the API's names: the engine is HCP */
const NAME: Record<Strategy, string> = { engine: 'hcp', always_on: 'always_on', strike: 'strike', optimum: 'optimum' };

export interface BacktestReport {
  summary: {
    site: string;
    from: string;
    to: string;
    hours: number;
    seed: number | null;
    fleet: string;
    /** ASIC profit (mining revenue − ASIC power) per strategy, USD */
    profit_usd: Record<string, number>;
    /** HCP's and the strike rule's profit as a share of the perfect-foresight optimum */
    capture_ratio: number | null;
    strike_capture_ratio: number | null;
    /** the GPUs' margin, the same under every strategy */
    gpu_usd: number;
    steps: number;
    unpriced_steps: number;
    starts: number;
    stops: number;
    retargets: number;
  };
  hourly: {
    ts: string[];
    power_usd_kwh: Array<number | null>;
    hashprice_usd_ph_day: Array<number | null>;
    breakeven_usd_kwh: Record<string, Array<number | null>>;
    asic_kw: Record<string, number[]>;
    /** the engine's weightiest rule in the hour (engine.ts RULES order: the first changed something) */
    decision: Rule[];
    cumulative_usd: Record<string, number[]>;
  };
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
const mean = (xs: Array<number | null>): number | null => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};

export function backtestReport(r: BacktestResult, o: { fleet: BacktestFleet; fromMs: number; toMs: number; seed: number | null; network: NetworkParams }): BacktestReport {
  const s = r.series;
  // step indices by hour from the start
  const hours: number[][] = [];
  s.tsMs.forEach((t, i) => (hours[Math.floor((t - o.fromMs) / 3600_000)] ??= []).push(i));
  const slots = hours.filter((h) => h !== undefined);
  const at = <T>(xs: T[], idx: number[]) => idx.map((i) => xs[i]!);
  const avg = (xs: Array<number | null>, idx: number[], f: (x: number) => number = r4) => {
    const m = mean(at(xs, idx));
    return m === null ? null : f(m);
  };
  const precedence = (rules: Rule[]): Rule => RULES.find((k) => rules.includes(k)) ?? 'economic';
  const a = r.asicUsd;
  const ratio = (x: number) => (a.optimum > 0 ? r4(x / a.optimum) : null);
  return {
    summary: {
      site: o.fleet.siteId,
      from: new Date(o.fromMs).toISOString(),
      to: new Date(o.toMs).toISOString(),
      hours: r2((o.toMs - o.fromMs) / 3600_000),
      seed: o.seed,
      fleet: o.fleet.asics.map((x) => `${x.count} × ${x.model}`).join(', ') + `, ${o.fleet.gpus} × H100, cap ${o.fleet.capKw} kW`,
      profit_usd: Object.fromEntries(STRATEGIES.map((k) => [NAME[k], r2(a[k])])),
      capture_ratio: ratio(a.engine),
      strike_capture_ratio: ratio(a.strike),
      gpu_usd: r2(r.gpuUsd),
      steps: r.steps,
      unpriced_steps: r.unpricedSteps,
      starts: r.engineCounts.starts,
      stops: r.engineCounts.stops,
      retargets: r.engineCounts.retargets,
    },
    hourly: {
      ts: slots.map((idx) => new Date(s.tsMs[idx[0]!]!).toISOString()),
      power_usd_kwh: slots.map((idx) => avg(s.powerUsdKwh, idx, (x) => Math.round(x * 1e5) / 1e5)),
      hashprice_usd_ph_day: slots.map((idx) => avg(s.btcUsd, idx, (btc) => r4(hashpriceUsdPerPhDay(btc, o.network)))),
      breakeven_usd_kwh: Object.fromEntries(Object.entries(s.breakevenUsdKwh).map(([m, ys]) => [m, slots.map((idx) => avg(ys, idx))])),
      asic_kw: Object.fromEntries(STRATEGIES.map((k) => [NAME[k], slots.map((idx) => r2(mean(at(s.asicKw[k], idx)) ?? 0))])),
      decision: slots.map((idx) => precedence(at(s.engineRule, idx))),
      cumulative_usd: Object.fromEntries(STRATEGIES.map((k) => [NAME[k], slots.map((idx) => r2(s.cumulativeUsd[k][idx.at(-1)!]!))])),
    },
  };
}
