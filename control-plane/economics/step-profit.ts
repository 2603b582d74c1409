// What one ASIC earns over one decision interval, start-up ramp included. The backtest's fleet
// accounting and the perfect-foresight optimum both use this, so every strategy is scored by the
// same arithmetic.
import { hashFractionAt, type AsicModelSpec } from './asic-models.js';

/**
 * Start-up as the S21 firmware runs it (sim-hardware/s21.ts): the first quarter boots and
 * initialises the hashboards with no hashing, then hashrate ramps linearly to full.
 */
export const STARTUP_INIT_FRACTION = 0.25;

/** ramp (0..1) at `t` seconds after the start command */
export function rampAt(tS: number, startupS: number): number {
  if (startupS <= 0) return 1;
  const init = STARTUP_INIT_FRACTION * startupS;
  return Math.min(1, Math.max(0, (tS - init) / (startupS - init)));
}

/** average ramp over [fromS, fromS + stepS) after the start command (exact: piecewise linear) */
export function averageRamp(fromS: number, stepS: number, startupS: number): number {
  if (startupS <= 0 || fromS >= startupS) return 1;
  const init = STARTUP_INIT_FRACTION * startupS;
  // integral of the ramp from 0 to t
  const integral = (t: number): number => {
    if (t <= init) return 0;
    if (t <= startupS) return (t - init) ** 2 / (2 * (startupS - init));
    return (startupS - init) / 2 + (t - startupS);
  };
  return (integral(fromS + stepS) - integral(fromS)) / stepS;
}

export interface StepPrices {
  /** revenue per TH/s per hour after pool fee */
  usdPerThH: number;
  powerUsdKwh: number;
}

/**
 * USD earned over the step: hashing revenue × ramp minus power (standby always; the hashing part
 * follows the ramp, as power follows hashrate within a second). Asleep it pays standby only.
 */
export function asicStepUsd(m: AsicModelSpec, p: StepPrices, stepS: number, mining: boolean, powerW: number, ramp: number): number {
  const hours = stepS / 3600;
  if (!mining) return -(m.standbyW / 1000) * p.powerUsdKwh * hours;
  const revenue = m.ratedThs * hashFractionAt(m, powerW) * p.usdPerThH * ramp;
  const watts = m.standbyW + (powerW - m.standbyW) * ramp;
  return (revenue - (watts / 1000) * p.powerUsdKwh) * hours;
}
