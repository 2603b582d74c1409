// What the resolver and the claim checks need to know of an ASIC, from the model it reports: its
// rated and standby power, the power targets its firmware accepts and its efficiency. Models the
// catalog does not know get the figures the agent registered and the S21 family's window.
import { ASIC_MODEL_SPECS, MAX_POWER_FRACTION, MIN_POWER_FRACTION } from '../economics/asic-models.js';
import type { AsicSpec } from './model.js';

const STANDBY_W = 35;

export function asicSpecOf(id: string, model: string, ratedPowerW: number, ratedHashrateThs: number | null): AsicSpec {
  const name = model.trim().toLowerCase();
  const m = Object.values(ASIC_MODEL_SPECS).find((x) => x.id === name || x.name.toLowerCase() === name);
  const rated = m?.ratedPowerW ?? (ratedPowerW > 0 ? ratedPowerW : 3500);
  const ths = m?.ratedThs ?? (ratedHashrateThs && ratedHashrateThs > 0 ? ratedHashrateThs : rated / 15);
  return {
    id,
    ratedPowerW: rated,
    standbyW: m?.standbyW ?? STANDBY_W,
    minPowerW: Math.round(rated * MIN_POWER_FRACTION),
    maxPowerW: Math.round(rated * MAX_POWER_FRACTION),
    jPerTh: m?.jPerTh ?? rated / ths,
  };
}
