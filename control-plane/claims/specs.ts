// What the resolver and the claim checks need to know of an ASIC, from the model it reports, in
// the one catalog (proto/asic-models.ts): rated and standby power, the power targets its firmware
// accepts and its efficiency. A model the catalog does not know gets the figures the agent
// registered and the S21 family's window.
import { asicModelByName, MAX_POWER_FRACTION, MIN_POWER_FRACTION } from '../../proto/asic-models.js';
import type { AsicSpec } from './model.js';

const STANDBY_W = 35;

export function asicSpecOf(id: string, model: string, ratedPowerW: number, ratedHashrateThs: number | null): AsicSpec {
  const m = asicModelByName(model);
  if (m) return { id, ratedPowerW: m.ratedPowerW, standbyW: m.standbyW, minPowerW: m.minPowerW, maxPowerW: m.maxPowerW, jPerTh: m.jPerTh };
  const rated = ratedPowerW > 0 ? ratedPowerW : 3500;
  const ths = ratedHashrateThs && ratedHashrateThs > 0 ? ratedHashrateThs : rated / 15;
  return { id, ratedPowerW: rated, standbyW: STANDBY_W, minPowerW: Math.round(rated * MIN_POWER_FRACTION), maxPowerW: Math.round(rated * MAX_POWER_FRACTION), jPerTh: rated / ths };
}
