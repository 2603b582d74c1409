import { describe, expect, it } from 'vitest';
import { ASIC_MODEL_SPECS, DEFAULT_POWER_FRACTIONS, targetWattsFor } from './asic-models.js';
import { optimumForModel, type OptimumParams } from './optimum.js';
import { asicStepUsd, averageRamp, rampAt, type StepPrices } from './step-profit.js';

const XP = ASIC_MODEL_SPECS['s21-xp'];
const R = 0.0015; // USD per TH/s per hour, ≈ $37/PH/day after fees
const path = (prices: number[]): StepPrices[] => prices.map((p) => ({ usdPerThH: R, powerUsdKwh: p }));
const P: OptimumParams = { stepS: 300, startupS: 240, minOnS: 900, minOffS: 600, initial: { on: true } };

/** every on/off sequence that obeys the minimum durations, scored like the DP */
function bruteForce(steps: StepPrices[], o: OptimumParams): number {
  const T = steps.length;
  const minOn = Math.ceil(o.minOnS / o.stepS);
  const minOff = Math.ceil(o.minOffS / o.stepS);
  let best = -Infinity;
  for (let mask = 0; mask < 1 << T; mask++) {
    let on = o.initial.on;
    let k = Infinity;
    let usd = 0;
    let ok = true;
    for (let t = 0; t < T && ok; t++) {
      const want = ((mask >> t) & 1) === 1;
      if (want !== on) {
        if (k < (on ? minOn : minOff)) ok = false;
        on = want;
        k = 0;
      }
      if (on) {
        const ramp = averageRamp(k * o.stepS, o.stepS, o.startupS);
        usd += Math.max(...DEFAULT_POWER_FRACTIONS.map((f) => asicStepUsd(XP, steps[t]!, o.stepS, true, targetWattsFor(XP, f), ramp)));
      } else usd += asicStepUsd(XP, steps[t]!, o.stepS, false, 0, 0);
      k++;
    }
    if (ok) best = Math.max(best, usd);
  }
  return best;
}

describe('perfect-foresight optimum', () => {
  it('models the S21 start-up: nothing for the first quarter, then a linear ramp', () => {
    expect(rampAt(30, 240)).toBe(0);
    expect(rampAt(150, 240)).toBeCloseTo(0.5, 12);
    expect(rampAt(300, 240)).toBe(1);
    // first 5-minute interval after a start: 0 for 60 s, ramp 180 s (avg ½), full 60 s → 150/300
    expect(averageRamp(0, 300, 240)).toBeCloseTo(0.5, 12);
    expect(averageRamp(300, 300, 240)).toBe(1);
    expect(averageRamp(0, 60, 240)).toBe(0);
  });

  it('matches brute force over every feasible schedule', () => {
    const cases = [
      [0.05, 0.05, 0.6, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05],
      [0.05, 0.9, 0.05, 0.9, 0.05, 0.05, 0.9, 0.9, 0.9, 0.05, 0.05, 0.05],
      [0.2, 0.2, 0.05, 0.05, 0.3, 0.05, 0.05, 0.05, 0.12, 0.13, 0.14, 0.05],
    ];
    for (const c of cases) {
      for (const initial of [{ on: true }, { on: false }]) {
        const o = { ...P, initial };
        expect(optimumForModel(XP, path(c), o).profitUsd).toBeCloseTo(bruteForce(path(c), o), 9);
      }
    }
  });

  it('rides through a one-interval spike when stopping would cost more, stops for a long one', () => {
    const short = optimumForModel(XP, path([0.05, 0.05, 0.25, 0.05, 0.05, 0.05]), P);
    expect(short.mining).toEqual([true, true, true, true, true, true]);
    expect(short.powerW[2]).toBe(targetWattsFor(XP, 0.5));
    const long = optimumForModel(XP, path([0.05, 1, 1, 1, 0.05, 0.05, 0.05, 0.05]), P);
    expect(long.mining).toEqual([true, false, false, false, true, true, true, true]);
  });

  it('obeys forced-off steps and its schedule reproduces its profit', () => {
    const steps = path([0.04, 0.04, 0.04, 0.04, 0.04, 0.04]);
    const r = optimumForModel(XP, steps, { ...P, forcedOff: [false, false, true, false, false, false] });
    expect(r.mining).toEqual([true, true, false, false, true, true]);
    let usd = 0;
    let k = 99;
    r.mining.forEach((on, t) => {
      if (on && t > 0 && !r.mining[t - 1]) k = 0;
      usd += asicStepUsd(XP, steps[t]!, 300, on, r.powerW[t]!, on ? averageRamp(k * 300, 300, 240) : 0);
      k++;
    });
    expect(usd).toBeCloseTo(r.profitUsd, 9);
  });
});
