// The decision engine: one pure function per site per interval. Given prices, the site power cap,
// the GPUs' power, each ASIC's model and state and the demand-response commitments, it says which
// ASICs should mine and at what power target for the money, and explains why.
//
// What it decides is economics' claim (control-plane/claims/model.ts), the lowest in precedence:
// the grid, operators, demand response, the scheduler's headroom and schedules outrank it in the
// resolver, so none of them is a rule here. The wiring is control-plane/dispatch/economic-dispatch.ts.
// Nothing here reads a clock or does I/O.
import { ASIC_MODEL_SPECS, DEFAULT_POWER_FRACTIONS, type AsicModelId, type AsicModelSpec } from './asic-models.js';
import {
  bestOperatingPoint,
  DEFAULT_GPU_ASSUMPTIONS,
  DEFAULT_NETWORK_PARAMS,
  effectiveBreakevenUsdKwh,
  gpuEconomics,
  hashpriceUsdPerPhDay,
  netUsdPerThHour,
  operatingPoint,
  type GpuAssumptions,
  type NetworkParams,
} from './profitability.js';

export type AsicRunState = 'mining' | 'starting' | 'sleeping';

export interface AsicInput {
  id: string;
  model: AsicModelId;
  state: AsicRunState;
  /** current target in watts; null = stock */
  powerTargetW: number | null;
  /** when it last started or stopped (unix ms); null = long ago */
  lastChangeMs: number | null;
}

export interface ScheduleWindow {
  /** local hours, [from, to); wraps past midnight when from > to */
  fromHour: number;
  toHour: number;
  /** 'off' sleeps the ASICs in the window; 'auto' leaves it to the price rules */
  mining: 'off' | 'auto';
}

export interface DemandResponseCommitment {
  /** MW the site promised to shed for the window: its load is held ≤ cap − commitment */
  mw: number;
  fromMs: number;
  toMs: number;
}

export interface SiteInputs {
  siteId: string;
  nowMs: number;
  prices: { btcUsd: number | null; powerUsdKwh: number | null; gpuSpotUsdH: number | null };
  capKw: number;
  /** power the GPUs draw or are committed to (whichever is more), kW; it comes off the cap first */
  gpuKw: number;
  /** GPUs serving a workload, for the expected revenue */
  gpusBusy: number;
  asics: readonly AsicInput[];
  demandResponse?: readonly DemandResponseCommitment[];
}

export interface EngineConfig {
  network: NetworkParams;
  gpu: GpuAssumptions;
  /** curtail above break-even × (1 + h), resume below break-even × (1 − h) */
  hysteresis: number;
  /** firmware start-up (boot, board init, tuning) before full hashrate */
  startupS: number;
  /** hashboards are not cycled faster than this (thermal cycling, firmware restarts) */
  minOnS: number;
  minOffS: number;
  powerFractions: readonly number[];
  /** keep the current power target while its margin is within this share of the best */
  retargetTolerance: number;
  /**
   * A price at or above this multiple of break-even sheds at once, inside the minimum on time:
   * that protects against flapping near break-even, and at several times break-even every
   * minute of mining loses more than a restart costs. Infinity (the default, and what the
   * backtest's optimum assumes) never overrides it.
   */
  spikeMultiple: number;
}

export const DEFAULT_ENGINE_CONFIG: Readonly<EngineConfig> = {
  network: DEFAULT_NETWORK_PARAMS,
  gpu: DEFAULT_GPU_ASSUMPTIONS,
  hysteresis: 0.03,
  startupS: 240,
  minOnS: 900,
  minOffS: 600,
  powerFractions: DEFAULT_POWER_FRACTIONS,
  retargetTolerance: 0.02,
  spikeMultiple: Number.POSITIVE_INFINITY,
};

/** In precedence order: the first one that changed something names the decision. */
export const RULES = [
  'no_power_price',
  'no_btc_price',
  'demand_response',
  'site_cap',
  'price_curtail',
  'price_resume',
  'retarget',
  'min_on',
  'min_off',
  'hysteresis',
  'economic',
] as const;
export type Rule = (typeof RULES)[number];

export interface AsicDecision {
  id: string;
  model: AsicModelId;
  mine: boolean;
  /** watts while mining; 0 when asleep */
  powerTargetW: number;
  change: 'start' | 'stop' | 'retarget' | 'none';
  rule: Rule;
}

/** SetMining as the command bus sends it; power_target_w 0 would mean stock, we always name it. */
export interface MiningCommand {
  enabled: boolean;
  deviceIds: string[];
  powerTargetW: number;
}

export interface ModelSummary {
  model: AsicModelId;
  count: number;
  mining: number;
  /** stock break-even and the break-even at the best allowed target */
  breakevenUsdKwh: number;
  effectiveBreakevenUsdKwh: number;
  bestPowerTargetW: number;
  marginUsdHEach: number;
}

export interface Explanation {
  rule: Rule;
  summary: string;
  inputs: {
    btcUsd: number | null;
    powerUsdKwh: number | null;
    gpuSpotUsdH: number | null;
    hashpriceUsdPhDay: number | null;
    capKw: number;
    gpuKw: number;
    demandResponseKw: number;
  };
  /** power left for ASICs after GPUs and DR, and what the decision uses of it */
  asicBudgetKw: number;
  asicPlannedKw: number;
  models: ModelSummary[];
  /** steady-state expectation for the decided state (ramp not counted) */
  expectedUsdH: { asicRevenue: number; asicPowerCost: number; gpuRevenue: number; gpuPowerCost: number; margin: number } | null;
  /** how many ASICs each rule touched */
  ruleCounts: Partial<Record<Rule, number>>;
}

export interface SiteDecision {
  siteId: string;
  ts: string;
  rule: Rule;
  asics: AsicDecision[];
  commands: MiningCommand[];
  explanation: Explanation;
}

export function inWindow(hour: number, w: ScheduleWindow): boolean {
  return w.fromHour <= w.toHour ? hour >= w.fromHour && hour < w.toHour : hour >= w.fromHour || hour < w.toHour;
}

export function localHour(nowMs: number, offsetH: number): number {
  return (((nowMs / 3600_000 + offsetH) % 24) + 24) % 24;
}

/** true while an 'off' window of the schedule covers the site's local time */
export function scheduleOffAt(schedule: readonly ScheduleWindow[], nowMs: number, utcOffsetHours: number): boolean {
  return schedule.some((w) => w.mining === 'off' && inWindow(localHour(nowMs, utcOffsetHours), w));
}

const isOn = (a: AsicInput): boolean => a.state !== 'sleeping';
const currentWatts = (a: AsicInput, m: AsicModelSpec): number => a.powerTargetW ?? m.ratedPowerW;

export function decideSite(inp: SiteInputs, cfg: EngineConfig = DEFAULT_ENGINE_CONFIG): SiteDecision {
  const { prices } = inp;
  const dr = (inp.demandResponse ?? []).filter((c) => inp.nowMs >= c.fromMs && inp.nowMs < c.toMs).reduce((s, c) => s + c.mw * 1000, 0);
  const asicBudgetKw = Math.max(0, inp.capKw - dr - inp.gpuKw);
  const usdPerThH = prices.btcUsd === null ? null : netUsdPerThHour(prices.btcUsd, cfg.network);

  const keep = (a: AsicInput, rule: Rule): AsicDecision => ({
    id: a.id,
    model: a.model,
    mine: isOn(a),
    powerTargetW: isOn(a) ? currentWatts(a, ASIC_MODEL_SPECS[a.model]) : 0,
    change: 'none',
    rule,
  });
  const sleep = (a: AsicInput, rule: Rule): AsicDecision => ({ id: a.id, model: a.model, mine: false, powerTargetW: 0, change: isOn(a) ? 'stop' : 'none', rule });

  let decisions: AsicDecision[];
  if (prices.powerUsdKwh === null) {
    decisions = inp.asics.map((a) => keep(a, 'no_power_price'));
  } else if (usdPerThH === null) {
    decisions = inp.asics.map((a) => keep(a, 'no_btc_price'));
  } else {
    decisions = decideAuto(inp, cfg, prices.powerUsdKwh, usdPerThH, asicBudgetKw, dr > 0);
  }

  return {
    siteId: inp.siteId,
    ts: new Date(inp.nowMs).toISOString(),
    rule: primaryRule(decisions),
    asics: decisions,
    commands: toCommands(decisions),
    explanation: explain(inp, cfg, decisions, { dr, asicBudgetKw, usdPerThH }),
  };
}

function decideAuto(inp: SiteInputs, cfg: EngineConfig, price: number, usdPerThH: number, budgetKw: number, drActive: boolean): AsicDecision[] {
  const h = cfg.hysteresis;
  const wanted = inp.asics.map((a) => {
    const m = ASIC_MODEL_SPECS[a.model];
    const be = effectiveBreakevenUsdKwh(m, usdPerThH, cfg.powerFractions);
    const on = isOn(a);
    const sinceS = a.lastChangeMs === null ? Infinity : (inp.nowMs - a.lastChangeMs) / 1000;
    let mine = on;
    let rule: Rule = 'economic';
    if (on && price > be * (1 + h)) {
      if (sinceS >= cfg.minOnS || price >= be * cfg.spikeMultiple) [mine, rule] = [false, 'price_curtail'];
      else rule = 'min_on';
    } else if (!on && price < be * (1 - h)) {
      if (sinceS >= cfg.minOffS) [mine, rule] = [true, 'price_resume'];
      else rule = 'min_off';
    } else if (on ? price > be : price < be) {
      // Inside the band a plain strike rule would switch; we hold, so a price hovering at
      // break-even does not flap the fleet.
      rule = 'hysteresis';
    }
    let targetW = 0;
    if (mine) {
      const best = bestOperatingPoint(m, usdPerThH, price, cfg.powerFractions);
      targetW = best.powerW;
      // A new target is a command (and on stock firmware a board restart): only for a real gain.
      if (on) {
        const cur = operatingPoint(m, usdPerThH, price, currentWatts(a, m) / m.ratedPowerW);
        if (cur.marginUsdH >= best.marginUsdH - cfg.retargetTolerance * Math.abs(best.marginUsdH)) targetW = currentWatts(a, m);
      }
    }
    return { a, m, mine, rule: rule as Rule, targetW };
  });

  // The site cap, shared with the GPUs: GPUs are served first (an H100 earns ~$5/kWh at $3.5/h,
  // an S21 XP ~$0.11/kWh), then ASICs best J/TH first; the worst are shed. Sleeping ASICs still
  // draw standby power, so that comes off the budget first.
  let leftW = budgetKw * 1000 - wanted.reduce((s, w) => s + w.m.standbyW, 0);
  const order = wanted
    .filter((w) => w.mine)
    .sort((x, y) => x.m.jPerTh - y.m.jPerTh || (isOn(y.a) ? 1 : 0) - (isOn(x.a) ? 1 : 0) || (x.a.id < y.a.id ? -1 : 1));
  for (const w of order) {
    const need = w.targetW - w.m.standbyW;
    if (need <= leftW) {
      leftW -= need;
      continue;
    }
    // Partly fits: the lowest target that the firmware accepts and that still fits.
    const fits = cfg.powerFractions
      .map((f) => operatingPoint(w.m, usdPerThH, price, f))
      .filter((op) => op.powerW - w.m.standbyW <= leftW && op.gainOverSleepUsdH > 0)
      .sort((x, y) => y.marginUsdH - x.marginUsdH)[0];
    const capRule: Rule = drActive ? 'demand_response' : 'site_cap';
    if (fits) {
      leftW -= fits.powerW - w.m.standbyW;
      w.targetW = fits.powerW;
      w.rule = capRule;
    } else {
      w.mine = false;
      w.targetW = 0;
      w.rule = capRule;
    }
  }

  return wanted.map(({ a, m, mine, rule, targetW }) => {
    const on = isOn(a);
    const change: AsicDecision['change'] = mine && !on ? 'start' : !mine && on ? 'stop' : mine && targetW !== currentWatts(a, m) ? 'retarget' : 'none';
    const r: Rule = change === 'retarget' && rule === 'economic' ? 'retarget' : rule;
    return { id: a.id, model: a.model, mine, powerTargetW: targetW, change, rule: r };
  });
}

function primaryRule(ds: readonly AsicDecision[]): Rule {
  const changed = new Set(ds.filter((d) => d.change !== 'none').map((d) => d.rule));
  const all = new Set(ds.map((d) => d.rule));
  return RULES.find((r) => changed.has(r)) ?? RULES.find((r) => all.has(r)) ?? 'economic';
}

/** Only changes go out, grouped into one SetMining per (enabled, target). */
function toCommands(ds: readonly AsicDecision[]): MiningCommand[] {
  const groups = new Map<string, MiningCommand>();
  for (const d of ds) {
    if (d.change === 'none') continue;
    const key = `${d.mine}/${d.powerTargetW}`;
    const g = groups.get(key) ?? { enabled: d.mine, deviceIds: [], powerTargetW: d.powerTargetW };
    g.deviceIds.push(d.id);
    groups.set(key, g);
  }
  return [...groups.values()];
}

function explain(
  inp: SiteInputs,
  cfg: EngineConfig,
  ds: readonly AsicDecision[],
  x: { dr: number; asicBudgetKw: number; usdPerThH: number | null },
): Explanation {
  const { btcUsd, powerUsdKwh, gpuSpotUsdH } = inp.prices;
  const byModel = new Map<AsicModelId, AsicDecision[]>();
  for (const d of ds) byModel.set(d.model, [...(byModel.get(d.model) ?? []), d]);
  const priced = powerUsdKwh !== null && x.usdPerThH !== null;
  const models: ModelSummary[] = [...byModel.entries()].map(([id, list]) => {
    const m = ASIC_MODEL_SPECS[id];
    const best = priced ? bestOperatingPoint(m, x.usdPerThH!, powerUsdKwh!, cfg.powerFractions) : null;
    return {
      model: id,
      count: list.length,
      mining: list.filter((d) => d.mine).length,
      breakevenUsdKwh: x.usdPerThH === null ? NaN : (m.ratedThs * x.usdPerThH) / (m.ratedPowerW / 1000),
      effectiveBreakevenUsdKwh: x.usdPerThH === null ? NaN : effectiveBreakevenUsdKwh(m, x.usdPerThH, cfg.powerFractions),
      bestPowerTargetW: best?.powerW ?? m.ratedPowerW,
      marginUsdHEach: best?.marginUsdH ?? NaN,
    };
  });

  let expected: Explanation['expectedUsdH'] = null;
  let plannedW = 0;
  for (const d of ds) plannedW += d.mine ? d.powerTargetW : ASIC_MODEL_SPECS[d.model].standbyW;
  if (priced) {
    let rev = 0;
    for (const d of ds) {
      if (!d.mine) continue;
      const m = ASIC_MODEL_SPECS[d.model];
      rev += operatingPoint(m, x.usdPerThH!, 0, d.powerTargetW / m.ratedPowerW).marginUsdH; // at price 0 margin = revenue
    }
    const gpuRev = gpuSpotUsdH === null ? 0 : inp.gpusBusy * gpuEconomics(gpuSpotUsdH, powerUsdKwh!, cfg.gpu).revenueUsdH;
    const asicCost = (plannedW / 1000) * powerUsdKwh!;
    const gpuCost = inp.gpuKw * powerUsdKwh!;
    expected = { asicRevenue: rev, asicPowerCost: asicCost, gpuRevenue: gpuRev, gpuPowerCost: gpuCost, margin: rev + gpuRev - asicCost - gpuCost };
  }

  const ruleCounts: Partial<Record<Rule, number>> = {};
  for (const d of ds) ruleCounts[d.rule] = (ruleCounts[d.rule] ?? 0) + 1;
  const rule = primaryRule(ds);
  const mining = ds.filter((d) => d.mine).length;
  const changes = ds.filter((d) => d.change !== 'none').length;
  return {
    rule,
    summary: `${rule}: ${mining}/${ds.length} ASICs mining, ${changes} change(s)` + (powerUsdKwh !== null ? ` at $${powerUsdKwh.toFixed(4)}/kWh` : ''),
    inputs: {
      btcUsd,
      powerUsdKwh,
      gpuSpotUsdH,
      hashpriceUsdPhDay: btcUsd === null ? null : hashpriceUsdPerPhDay(btcUsd, cfg.network),
      capKw: inp.capKw,
      gpuKw: inp.gpuKw,
      demandResponseKw: x.dr,
    },
    asicBudgetKw: x.asicBudgetKw,
    asicPlannedKw: plannedW / 1000,
    models,
    expectedUsdH: expected,
    ruleCounts,
  };
}
