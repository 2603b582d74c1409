// The ASIC models the economic engine knows, with their efficiency curve: the shared catalog
// (proto/asic-models.ts) under the names the economics code uses. Nothing is stated here.
//
// Wiring: the engine looks a device's model up by the id the registry stores for it
// (`s21`, `s21-pro`, `s21-xp`).
import { ASIC_MODELS, hashFractionForPower, type AsicModel } from '../../proto/asic-models.js';

export { isAsicModelId, MAX_POWER_FRACTION, MIN_POWER_FRACTION, targetWattsFor, type AsicModelId } from '../../proto/asic-models.js';

export type AsicModelSpec = AsicModel;

export const ASIC_MODEL_SPECS = ASIC_MODELS;

/** Power targets the engine chooses between, as fractions of stock; firmware presets are coarse. */
export const DEFAULT_POWER_FRACTIONS: readonly number[] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1];

/** hashrate as a fraction of rated at a wall-power target */
export const hashFractionAt: (m: AsicModelSpec, powerW: number) => number = hashFractionForPower;
