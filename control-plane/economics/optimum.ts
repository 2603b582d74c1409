// Perfect-foresight optimum: the most a fleet could have earned over a known price path under
// the same rules the engine obeys (start-up ramp, minimum on and off durations, the same power
// targets), by dynamic programming. The backtest divides the engine's profit by this.
//
// Reduction. The state of one ASIC is (on/off, intervals spent in that state), with the count
// capped at K = max(min on, min off, start-up) in intervals: past K, more time in state changes
// nothing (every switch is allowed and the ramp is over). That is 2(K + 1) states; the power
// target is chosen per interval and does not constrain the future, so it is maximised inside the
// step. Without a binding site cap ASICs do not interact, and identical ASICs facing the same
// prices from the same initial state have the same optimal schedule, so the fleet optimum is
// Σ over models of count × (one ASIC's optimum): one DP per model, O(T × K × |targets|).
// With a binding site cap or DR limit the models couple; the per-model DP then solves the problem
// without that cap — a relaxation, so its figure is still an upper bound on any feasible policy.
//
// Wiring: bench/backtest.ts; the control plane could run it nightly over stored prices to report
// yesterday's capture ratio.
import { DEFAULT_POWER_FRACTIONS, targetWattsFor, type AsicModelSpec } from './asic-models.js';
import { asicStepUsd, averageRamp, type StepPrices } from './step-profit.js';

export interface OptimumParams {
  stepS: number;
  startupS: number;
  minOnS: number;
  minOffS: number;
  powerFractions?: readonly number[];
  /** state before the first step; `sinceS` long ago by default (free to switch, ramp done) */
  initial: { on: boolean; sinceS?: number };
  /** per step: mining not allowed (operator schedule, grid emergency) */
  forcedOff?: readonly boolean[];
}

export interface OptimumResult {
  /** one ASIC's profit over the path, USD */
  profitUsd: number;
  /** per step: mining? and the power target in watts (0 asleep) */
  mining: boolean[];
  powerW: number[];
}

export function optimumForModel(m: AsicModelSpec, steps: readonly StepPrices[], o: OptimumParams): OptimumResult {
  const T = steps.length;
  const ceilSteps = (s: number): number => Math.max(0, Math.ceil(s / o.stepS - 1e-9));
  const minOn = ceilSteps(o.minOnS);
  const minOff = ceilSteps(o.minOffS);
  const rampSteps = ceilSteps(o.startupS);
  const K = Math.max(minOn, minOff, rampSteps, 1);
  const fractions = o.powerFractions ?? DEFAULT_POWER_FRACTIONS;
  const watts = fractions.map((f) => targetWattsFor(m, f));

  // best on-profit at step t with k intervals already run since start (k < rampSteps: ramping)
  const ramps = Array.from({ length: K + 1 }, (_, k) => averageRamp(k * o.stepS, o.stepS, o.startupS));
  const onBest = (t: number, k: number): { usd: number; w: number } => {
    let best = { usd: -Infinity, w: 0 };
    for (const w of watts) {
      const usd = asicStepUsd(m, steps[t]!, o.stepS, true, w, ramps[k]!);
      if (usd > best.usd) best = { usd, w };
    }
    return best;
  };

  // V[t][s], s = on ? K+1+k : k  — value from step t on, in state s before step t.
  const S = 2 * (K + 1);
  const idx = (on: boolean, k: number): number => (on ? K + 1 + k : k);
  let next = new Float64Array(S); // V[T] = 0
  const choice: Uint8Array[] = []; // 1 = switch
  const onCache: Array<Array<{ usd: number; w: number }>> = [];
  for (let t = T - 1; t >= 0; t--) {
    const cur = new Float64Array(S);
    const ch = new Uint8Array(S);
    const offUsd = asicStepUsd(m, steps[t]!, o.stepS, false, 0, 0);
    const forced = o.forcedOff?.[t] ?? false;
    onCache[t] = Array.from({ length: rampSteps + 1 }, (_, k) => onBest(t, k));
    for (let k = 0; k <= K; k++) {
      const nk = Math.min(k + 1, K);
      // in state off, k intervals: stay off, or start (if off long enough and allowed)
      const stayOff = offUsd + next[idx(false, nk)]!;
      const start = !forced && k >= minOff ? onCache[t]![0]!.usd + next[idx(true, 1)]! : -Infinity;
      cur[idx(false, k)] = Math.max(stayOff, start);
      ch[idx(false, k)] = start > stayOff ? 1 : 0;
      // in state on, k intervals: keep mining (if allowed), or stop (if on long enough, or forced)
      const keepOn = !forced ? onCache[t]![Math.min(k, rampSteps)]!.usd + next[idx(true, nk)]! : -Infinity;
      const stop = forced || k >= minOn ? offUsd + next[idx(false, 1)]! : -Infinity;
      cur[idx(true, k)] = Math.max(keepOn, stop);
      ch[idx(true, k)] = stop > keepOn ? 1 : 0;
    }
    choice[t] = ch;
    next = cur;
  }

  const initK = Math.min(K, o.initial.sinceS === undefined ? K : Math.floor(o.initial.sinceS / o.stepS));
  let on = o.initial.on;
  let k = initK;
  const mining: boolean[] = [];
  const powerW: number[] = [];
  const profitUsd = next[idx(on, k)]!;
  for (let t = 0; t < T; t++) {
    if (choice[t]![idx(on, k)] === 1) {
      on = !on;
      k = 0;
    }
    mining.push(on);
    powerW.push(on ? onCache[t]![Math.min(k, rampSteps)]!.w : 0);
    k = Math.min(k + 1, K);
  }
  return { profitUsd, mining, powerW };
}
