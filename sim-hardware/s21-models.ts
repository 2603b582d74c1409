// Antminer S21 family as the simulator builds it: the rated numbers and the efficiency curve come
// from the shared catalog (proto/asic-models.ts); this file adds only the hardware the simulated
// miner models (boards, chips, fans, stock clock).
import { ASIC_MODELS, type AsicModel, type AsicModelId } from '../proto/asic-models.js';

export {
  clampPowerTarget,
  hashFractionForPower,
  LOW_POWER_FRACTION,
  MAX_POWER_FRACTION,
  MIN_POWER_FRACTION,
  POWER_EXPONENT,
  powerForHashFraction,
} from '../proto/asic-models.js';

export type S21ModelId = AsicModelId;

export interface S21Model extends AsicModel {
  boards: number;
  chipsPerBoard: number;
  fans: number;
  /** chip clock at stock settings; approximate, reported as `frequency` and scaled with hashrate */
  stockFrequencyMhz: number;
  maxFanRpm: number;
}

function model(id: S21ModelId, hw: { chipsPerBoard: number; stockFrequencyMhz: number }): S21Model {
  // 3 hashboards and 4 fans on every S21 variant; ~6,600 rpm fans are typical of the air-cooled
  // Antminer chassis.
  return { ...ASIC_MODELS[id], ...hw, boards: 3, fans: 4, maxFanRpm: 6_600 };
}

export const S21_MODELS: Readonly<Record<S21ModelId, S21Model>> = {
  's21': model('s21', { chipsPerBoard: 108, stockFrequencyMhz: 490 }),
  's21-pro': model('s21-pro', { chipsPerBoard: 65, stockFrequencyMhz: 560 }),
  's21-xp': model('s21-xp', { chipsPerBoard: 91, stockFrequencyMhz: 525 }),
};

/** the low-power miner-mode (3) target: the catalog's lowPowerW */
export function lowPowerTargetW(m: AsicModel): number {
  return m.lowPowerW;
}
