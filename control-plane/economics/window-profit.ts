// Profit over a window of the live fleet's decisions, against what always-on and the strike rule
// would have made at the same prices with the same ASICs. Pure: stored decisions in, cumulative
// series out (GET /api/v1/economics/profit).
//
// Each decision holds its inputs (BTC, power price), how many ASICs of each model the site had
// and how many the engine kept mining, and the steady-state USD/h of that state
// (engine.ts Explanation). A decision is taken to hold until the next one, and at most
// `maxGapMs` (the control plane was down, the site offline: no decision, nothing counted).
//   HCP        the decision's expected ASIC margin (revenue − power, standby included)
//   always-on  every ASIC mining at stock power
//   strike     the backtest's strike rule (backtest.ts): a model sleeps above its stock
//              break-even and resumes below it, no sooner than the engine's minimum on/off times
// All three are steady state (no start-up ramp) and ASIC only: the GPUs earn the same under each.
import { ASIC_MODEL_SPECS, isAsicModelId } from './asic-models.js';
import { DEFAULT_NETWORK_PARAMS, netUsdPerThHour, type NetworkParams } from './profitability.js';

export interface DecisionSnapshot {
  timeMs: number;
  btcUsd: number | null;
  powerUsdKwh: number | null;
  models: ReadonlyArray<{ model: string; count: number; mining: number }>;
  /** the decided state's ASIC revenue and power cost, USD/h; null when it was unpriced */
  expected: { asicRevenue: number; asicPowerCost: number } | null;
}

export interface WindowProfitOptions {
  /** the end of the window: the last decision holds until it (or maxGapMs) */
  toMs: number;
  maxGapMs: number;
  minOnS: number;
  minOffS: number;
  network?: NetworkParams;
}

export type WindowStrategy = 'hcp' | 'always_on' | 'strike';
export const WINDOW_STRATEGIES: readonly WindowStrategy[] = ['hcp', 'always_on', 'strike'];

export interface WindowProfit {
  /** the end of each counted step, unix ms */
  tsMs: number[];
  /** cumulative ASIC profit, USD, at each tsMs */
  cumulativeUsd: Record<WindowStrategy, number[]>;
  totalUsd: Record<WindowStrategy, number>;
  /** decisions counted, and those not (no price, or no ASICs) */
  scored: number;
  unscored: number;
}

/** snapshots in time order, one site */
export function windowProfit(snaps: readonly DecisionSnapshot[], o: WindowProfitOptions): WindowProfit {
  const network = o.network ?? DEFAULT_NETWORK_PARAMS;
  const tsMs: number[] = [];
  const cum: Record<WindowStrategy, number[]> = { hcp: [], always_on: [], strike: [] };
  const total: Record<WindowStrategy, number> = { hcp: 0, always_on: 0, strike: 0 };
  // the strike rule's state per model: every model starts mining, as in the backtest
  const strike = new Map<string, { on: boolean; sinceMs: number }>();
  let scored = 0;
  snaps.forEach((s, i) => {
    const endMs = Math.min(snaps[i + 1]?.timeMs ?? o.toMs, o.toMs, s.timeMs + o.maxGapMs);
    const hours = Math.max(0, endMs - s.timeMs) / 3600_000;
    const known = s.models.filter((m) => isAsicModelId(m.model) && m.count > 0);
    if (s.powerUsdKwh === null || s.btcUsd === null || s.expected === null || known.length === 0 || hours === 0) return;
    const price = s.powerUsdKwh;
    const usdPerThH = netUsdPerThHour(s.btcUsd, network);
    let alwaysOn = 0;
    let strikeUsdH = 0;
    for (const k of known) {
      const m = ASIC_MODEL_SPECS[k.model as keyof typeof ASIC_MODEL_SPECS];
      const miningUsdH = m.ratedThs * usdPerThH - (m.ratedPowerW / 1000) * price;
      alwaysOn += k.count * miningUsdH;
      const st = strike.get(k.model) ?? { on: true, sinceMs: -Infinity };
      const breakeven = (m.ratedThs * usdPerThH) / (m.ratedPowerW / 1000);
      const sinceS = (s.timeMs - st.sinceMs) / 1000;
      if (st.on && price > breakeven && sinceS >= o.minOnS) [st.on, st.sinceMs] = [false, s.timeMs];
      else if (!st.on && price < breakeven && sinceS >= o.minOffS) [st.on, st.sinceMs] = [true, s.timeMs];
      strike.set(k.model, st);
      strikeUsdH += k.count * (st.on ? miningUsdH : -(m.standbyW / 1000) * price);
    }
    scored++;
    const add = (k: WindowStrategy, usdH: number) => {
      total[k] += usdH * hours;
      cum[k].push(total[k]);
    };
    add('hcp', s.expected.asicRevenue - s.expected.asicPowerCost);
    add('always_on', alwaysOn);
    add('strike', strikeUsdH);
    tsMs.push(endMs);
  });
  return { tsMs, cumulativeUsd: cum, totalUsd: total, scored, unscored: snaps.length - scored };
}
