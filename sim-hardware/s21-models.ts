// Antminer S21 family: rated numbers from docs/architecture.md "Reference numbers" and
// shared/reference/device-protocols.md, and the efficiency curve used when a power target is set.

export type S21ModelId = 's21' | 's21-pro' | 's21-xp';

export interface S21Model {
  id: S21ModelId;
  /** the `Type` the cgminer API reports */
  name: string;
  ratedThs: number;
  jPerTh: number;
  /** wall power at stock settings = ratedThs × jPerTh */
  ratedPowerW: number;
  boards: number;
  chipsPerBoard: number;
  fans: number;
  /** chip clock at stock settings; approximate, reported as `frequency` and scaled with hashrate */
  stockFrequencyMhz: number;
  /** control board + fans at idle speed while the hashboards are off (sleep mode) */
  standbyW: number;
  maxFanRpm: number;
}

function model(m: Omit<S21Model, 'ratedPowerW' | 'boards' | 'fans' | 'standbyW' | 'maxFanRpm'>): S21Model {
  // 3 hashboards and 4 fans on every S21 variant; ~35 W standby and ~6,600 rpm fans are typical
  // of the air-cooled Antminer chassis.
  return { ...m, ratedPowerW: Math.round(m.ratedThs * m.jPerTh), boards: 3, fans: 4, standbyW: 35, maxFanRpm: 6_600 };
}

export const S21_MODELS: Readonly<Record<S21ModelId, S21Model>> = {
  's21': model({ id: 's21', name: 'Antminer S21', ratedThs: 200, jPerTh: 17.5, chipsPerBoard: 108, stockFrequencyMhz: 490 }),
  's21-pro': model({ id: 's21-pro', name: 'Antminer S21 Pro', ratedThs: 234, jPerTh: 15, chipsPerBoard: 65, stockFrequencyMhz: 560 }),
  's21-xp': model({ id: 's21-xp', name: 'Antminer S21 XP', ratedThs: 270, jPerTh: 13.5, chipsPerBoard: 91, stockFrequencyMhz: 525 }),
};

// Efficiency curve. Hashrate is proportional to chip clock f; dynamic power is ∝ f·V², and in
// the firmware's DVFS window voltage scales roughly as f^0.3, so hashing power ∝ f^1.6.
// Underclocking therefore improves J/TH: at 70 % power the miner keeps 80 % of its hashrate
// (~12 % better J/TH), in line with published underclocking results for Antminers.
export const POWER_EXPONENT = 1.6;
/** power targets are clamped to 50–110 % of stock: below that chips drop out, above it PSU limits */
export const MIN_POWER_FRACTION = 0.5;
export const MAX_POWER_FRACTION = 1.1;

/**
 * Antminer "low power" miner-mode (3). Bitmain publishes no wattage for it; we assume 75 % of
 * stock power (≈ 83 % of rated hashrate on the curve below). agent/drivers/asic-models.ts
 * states the same figure, since the cgminer driver can only ask for this one target.
 */
export const LOW_POWER_FRACTION = 0.75;

export function lowPowerTargetW(m: S21Model): number {
  return Math.round(m.ratedPowerW * LOW_POWER_FRACTION);
}

/** whole watts: firmware takes integer targets, and 1.1 × 3500 must read 3850, not 3850.0000000000005 */
export function clampPowerTarget(m: S21Model, watts: number): number {
  return Math.min(Math.max(Math.round(watts), Math.ceil(m.ratedPowerW * MIN_POWER_FRACTION)), Math.floor(m.ratedPowerW * MAX_POWER_FRACTION));
}

/** hashrate as a fraction of rated, for a wall-power target (already clamped) */
export function hashFractionForPower(m: S21Model, targetW: number): number {
  const hashingFraction = (targetW - m.standbyW) / (m.ratedPowerW - m.standbyW);
  return Math.pow(Math.max(hashingFraction, 0), 1 / POWER_EXPONENT);
}

/** wall power for a hashrate fraction of rated (inverse of hashFractionForPower) */
export function powerForHashFraction(m: S21Model, fraction: number): number {
  return m.standbyW + (m.ratedPowerW - m.standbyW) * Math.pow(Math.max(fraction, 0), POWER_EXPONENT);
}
