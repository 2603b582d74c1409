// Backtest: runs the decision engine over a price path against a simulated fleet and scores it
// with the same arithmetic (step-profit.ts) as three references: always-on, a strike-price rule
// (stock power; curtail above stock break-even, resume below; same minimum durations) and the
// perfect-foresight optimum (optimum.ts). Pure: ticks in, figures and series out.
//
// Wiring: bench/backtest.ts (CLI, HTML plot). Ticks come from sim-hardware/market.ts or a CSV
// (sim-hardware/market-csv.ts); this module only needs their shape.
import { ASIC_MODEL_SPECS, type AsicModelId } from './asic-models.js';
import { DEFAULT_ENGINE_CONFIG, decideSite, type AsicInput, type EngineConfig, type Rule } from './engine.js';
import { optimumForModel } from './optimum.js';
import { netUsdPerThHour } from './profitability.js';
import { asicStepUsd, averageRamp, type StepPrices } from './step-profit.js';

export interface PriceTick {
  feed: 'btc_usd' | 'power' | 'gpu_spot';
  site?: string;
  ts: string;
  price: number;
}

export interface BacktestFleet {
  siteId: string;
  capKw: number;
  utcOffsetHours: number;
  asics: Array<{ model: AsicModelId; count: number }>;
  gpus: number;
}

/**
 * One 250 kW site (the seeded facilities' capacity) with 20 of each S21 model and 16 H100s. At
 * 110 % power the ASICs draw 234 kW and the GPUs ≤ 11 kW, so the cap does not bind here and the
 * per-model optimum is exact (see optimum.ts); the cap rules are unit-tested in engine.test.ts.
 */
export const DEFAULT_BACKTEST_FLEET: BacktestFleet = {
  siteId: 'texas-1',
  capKw: 250,
  utcOffsetHours: -6,
  asics: [
    { model: 's21', count: 20 },
    { model: 's21-pro', count: 20 },
    { model: 's21-xp', count: 20 },
  ],
  gpus: 16,
};

export interface BacktestOptions {
  ticks: readonly PriceTick[];
  fromMs: number;
  toMs: number;
  /** decision interval; default 300 s, the power price interval */
  stepS?: number;
  fleet?: BacktestFleet;
  engine?: EngineConfig;
}

export type Strategy = 'engine' | 'always_on' | 'strike' | 'optimum';
export const STRATEGIES: readonly Strategy[] = ['engine', 'always_on', 'strike', 'optimum'];

export interface BacktestSeries {
  tsMs: number[];
  powerUsdKwh: Array<number | null>;
  btcUsd: Array<number | null>;
  /** stock break-even per model at each step */
  breakevenUsdKwh: Record<string, Array<number | null>>;
  /** ASIC kW each strategy plans to draw (target × mining, standby when asleep) */
  asicKw: Record<Strategy, number[]>;
  /** cumulative ASIC profit, USD */
  cumulativeUsd: Record<Strategy, number[]>;
  engineRule: Rule[];
}

export interface BacktestResult {
  asicUsd: Record<Strategy, number>;
  gpuUsd: number;
  steps: number;
  /** steps with no power price known yet: not scored for any strategy */
  unpricedSteps: number;
  engineCounts: { starts: number; stops: number; retargets: number; rules: Partial<Record<Rule, number>> };
  series: BacktestSeries;
}

interface StepMarket {
  tsMs: number;
  /** what the engine sees at the step's start */
  seen: { btcUsd: number | null; powerUsdKwh: number | null; gpuSpotUsdH: number | null };
  /** what the step is scored at: mean BTC over the step, the interval's power price */
  scored: StepPrices | null;
  gpuSpotUsdH: number | null;
}

function buildSteps(o: BacktestOptions, siteId: string, stepS: number): StepMarket[] {
  const ticks = o.ticks.filter((t) => t.feed !== 'power' || t.site === siteId).map((t) => ({ ...t, ms: Date.parse(t.ts) }));
  ticks.sort((a, b) => a.ms - b.ms);
  const out: StepMarket[] = [];
  let i = 0;
  let btc: number | null = null;
  let power: number | null = null;
  let gpu: number | null = null;
  const engine = o.engine ?? DEFAULT_ENGINE_CONFIG;
  for (let t = o.fromMs; t < o.toMs; t += stepS * 1000) {
    while (i < ticks.length && ticks[i]!.ms <= t) {
      const k = ticks[i++]!;
      if (k.feed === 'btc_usd') btc = k.price;
      else if (k.feed === 'power') power = k.price;
      else gpu = k.price;
    }
    const seen = { btcUsd: btc, powerUsdKwh: power, gpuSpotUsdH: gpu };
    // BTC moves within the step; score at its mean (the engine only saw the first value).
    let sum = btc ?? 0;
    let n = btc === null ? 0 : 1;
    for (let j = i; j < ticks.length && ticks[j]!.ms < t + stepS * 1000; j++) {
      if (ticks[j]!.feed === 'btc_usd') {
        sum += ticks[j]!.price;
        n++;
      }
    }
    const scored = power === null || n === 0 ? null : { usdPerThH: netUsdPerThHour(sum / n, engine.network), powerUsdKwh: power };
    out.push({ tsMs: t, seen, scored, gpuSpotUsdH: gpu });
  }
  return out;
}

interface SimAsic {
  id: string;
  model: AsicModelId;
  on: boolean;
  startedMs: number;
  lastChangeMs: number | null;
  powerW: number | null;
}

function newFleet(f: BacktestFleet): SimAsic[] {
  let n = 0;
  return f.asics.flatMap(({ model, count }) =>
    Array.from({ length: count }, () => ({ id: `asic-${f.siteId}-${String(++n).padStart(5, '0')}`, model, on: true, startedMs: -Infinity, lastChangeMs: null, powerW: null })),
  );
}

type Policy = (step: StepMarket, fleet: readonly SimAsic[], nowMs: number) => Array<{ mine: boolean; powerW: number | null }>;

function runPolicy(steps: readonly StepMarket[], fleetDef: BacktestFleet, cfg: EngineConfig, stepS: number, policy: Policy) {
  const fleet = newFleet(fleetDef);
  const kw: number[] = [];
  const cum: number[] = [];
  let total = 0;
  for (const s of steps) {
    const want = policy(s, fleet, s.tsMs);
    let watts = 0;
    let usd = 0;
    fleet.forEach((a, i) => {
      const m = ASIC_MODEL_SPECS[a.model];
      const w = want[i]!;
      if (w.mine && !a.on) [a.on, a.startedMs, a.lastChangeMs] = [true, s.tsMs, s.tsMs];
      if (!w.mine && a.on) [a.on, a.lastChangeMs] = [false, s.tsMs];
      a.powerW = a.on ? w.powerW : a.powerW;
      const target = a.powerW ?? m.ratedPowerW;
      watts += a.on ? target : m.standbyW;
      if (s.scored) usd += asicStepUsd(m, s.scored, stepS, a.on, target, a.on ? averageRamp((s.tsMs - a.startedMs) / 1000, stepS, cfg.startupS) : 0);
    });
    total += usd;
    kw.push(watts / 1000);
    cum.push(total);
  }
  return { total, kw, cum };
}

export function runBacktest(o: BacktestOptions): BacktestResult {
  const fleetDef = o.fleet ?? DEFAULT_BACKTEST_FLEET;
  const cfg = o.engine ?? DEFAULT_ENGINE_CONFIG;
  const stepS = o.stepS ?? 300;
  const steps = buildSteps(o, fleetDef.siteId, stepS);
  const models = fleetDef.asics.map((a) => a.model);
  const busyGpus = (ms: number): number => {
    // Inference demand: ~70 % of the GPUs allocated overnight, ~95 % in the local day.
    const h = (((ms / 3600_000 + fleetDef.utcOffsetHours) % 24) + 24) % 24;
    return Math.round(fleetDef.gpus * (h < 8 ? 0.7 : 0.95));
  };
  const gpuKwAt = (ms: number): number => {
    const busy = busyGpus(ms);
    return (busy * cfg.gpu.busyW + (fleetDef.gpus - busy) * cfg.gpu.idleW) / 1000;
  };

  const counts: BacktestResult['engineCounts'] = { starts: 0, stops: 0, retargets: 0, rules: {} };
  const engineRule: Rule[] = [];
  const engine = runPolicy(steps, fleetDef, cfg, stepS, (s, fleet, now) => {
    const asics: AsicInput[] = fleet.map((a) => ({
      id: a.id,
      model: a.model,
      state: !a.on ? 'sleeping' : (now - a.startedMs) / 1000 < cfg.startupS ? 'starting' : 'mining',
      powerTargetW: a.powerW,
      lastChangeMs: a.lastChangeMs,
    }));
    const d = decideSite(
      {
        siteId: fleetDef.siteId,
        nowMs: now,
        prices: s.seen,
        capKw: fleetDef.capKw,
        gpuKw: gpuKwAt(now),
        gpusBusy: busyGpus(now),
        asics,
      },
      cfg,
    );
    engineRule.push(d.rule);
    for (const a of d.asics) {
      counts.rules[a.rule] = (counts.rules[a.rule] ?? 0) + 1;
      if (a.change === 'start') counts.starts++;
      else if (a.change === 'stop') counts.stops++;
      else if (a.change === 'retarget') counts.retargets++;
    }
    return d.asics.map((a) => ({ mine: a.mine, powerW: a.mine ? a.powerTargetW : null }));
  });

  const alwaysOn = runPolicy(steps, fleetDef, cfg, stepS, (_s, fleet) => fleet.map(() => ({ mine: true, powerW: null })));

  const strike = runPolicy(steps, fleetDef, cfg, stepS, (s, fleet, now) =>
    fleet.map((a) => {
      if (s.seen.powerUsdKwh === null || s.seen.btcUsd === null) return { mine: a.on, powerW: null };
      const m = ASIC_MODEL_SPECS[a.model];
      const be = (m.ratedThs * netUsdPerThHour(s.seen.btcUsd, cfg.network)) / (m.ratedPowerW / 1000);
      const since = a.lastChangeMs === null ? Infinity : (now - a.lastChangeMs) / 1000;
      if (a.on && s.seen.powerUsdKwh > be && since >= cfg.minOnS) return { mine: false, powerW: null };
      if (!a.on && s.seen.powerUsdKwh < be && since >= cfg.minOffS) return { mine: true, powerW: null };
      return { mine: a.on, powerW: null };
    }),
  );

  // Optimum: one DP per model over the scored steps (unpriced steps pay nothing either way).
  const scored = steps.map((s) => s.scored ?? { usdPerThH: 0, powerUsdKwh: 0 });
  const optKw = steps.map(() => 0);
  let optTotal = 0;
  const optStepUsd = steps.map(() => 0);
  for (const { model, count } of fleetDef.asics) {
    const m = ASIC_MODEL_SPECS[model];
    const r = optimumForModel(m, scored, { stepS, startupS: cfg.startupS, minOnS: cfg.minOnS, minOffS: cfg.minOffS, powerFractions: cfg.powerFractions, initial: { on: true } });
    optTotal += count * r.profitUsd;
    let started = -Infinity;
    r.mining.forEach((on, t) => {
      if (on && t > 0 && !r.mining[t - 1]) started = steps[t]!.tsMs;
      optKw[t]! += (count * (on ? r.powerW[t]! : m.standbyW)) / 1000;
      optStepUsd[t]! += count * asicStepUsd(m, scored[t]!, stepS, on, r.powerW[t]!, on ? averageRamp((steps[t]!.tsMs - started) / 1000, stepS, cfg.startupS) : 0);
    });
  }
  let run = 0;
  const optCum = optStepUsd.map((u) => (run += u));

  let gpuUsd = 0;
  for (const s of steps) {
    if (!s.scored || s.gpuSpotUsdH === null) continue;
    const busy = busyGpus(s.tsMs);
    gpuUsd += (busy * s.gpuSpotUsdH * cfg.gpu.utilization - gpuKwAt(s.tsMs) * s.scored.powerUsdKwh) * (stepS / 3600);
  }

  const breakevenUsdKwh: BacktestSeries['breakevenUsdKwh'] = {};
  for (const id of models) {
    const m = ASIC_MODEL_SPECS[id];
    breakevenUsdKwh[id] = steps.map((s) => (s.seen.btcUsd === null ? null : (m.ratedThs * netUsdPerThHour(s.seen.btcUsd, cfg.network)) / (m.ratedPowerW / 1000)));
  }

  return {
    asicUsd: { engine: engine.total, always_on: alwaysOn.total, strike: strike.total, optimum: optTotal },
    gpuUsd,
    steps: steps.length,
    unpricedSteps: steps.filter((s) => !s.scored).length,
    engineCounts: counts,
    series: {
      tsMs: steps.map((s) => s.tsMs),
      powerUsdKwh: steps.map((s) => s.seen.powerUsdKwh),
      btcUsd: steps.map((s) => s.seen.btcUsd),
      breakevenUsdKwh,
      asicKw: { engine: engine.kw, always_on: alwaysOn.kw, strike: strike.kw, optimum: optKw },
      cumulativeUsd: { engine: engine.cum, always_on: alwaysOn.cum, strike: strike.cum, optimum: optCum },
      engineRule,
    },
  };
}
