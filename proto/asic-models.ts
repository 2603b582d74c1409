// The ASIC model catalog: the one statement of every ASIC model's rated numbers and efficiency
// curve (docs/architecture.md "Reference numbers"). Part of the contract: the agent's drivers, the
// control plane's economics and claim checks, and the simulator all read it from here.
//
// A model is looked up by the id the registry stores (`s21`, `s21-pro`, `s21-xp`), or by the name
// the cgminer API and the hello inventory report ('Antminer S21 XP': asicModelByName).

export type AsicModelId = 's21' | 's21-pro' | 's21-xp';

export interface AsicModel {
  id: AsicModelId;
  /** the `Type` the cgminer API reports, and Device.model in the hello inventory */
  name: string;
  ratedThs: number;
  jPerTh: number;
  /** wall power at stock settings = ratedThs × jPerTh, whole watts */
  ratedPowerW: number;
  /** control board and idle fans while the hashboards are off: drawn whether mining or not */
  standbyW: number;
  /** wall power in the firmware's low-power miner-mode (3): LOW_POWER_FRACTION of stock */
  lowPowerW: number;
  /** the power-target window the firmware accepts: MIN_POWER_FRACTION–MAX_POWER_FRACTION of stock */
  minPowerW: number;
  maxPowerW: number;
}

// Efficiency curve. Hashrate is proportional to chip clock f; dynamic power is ∝ f·V², and in
// the firmware's DVFS window voltage scales roughly as f^0.3, so hashing power ∝ f^1.6.
// Underclocking therefore improves J/TH: at 70 % power the miner keeps 80 % of its hashrate
// (~12 % better J/TH), in line with published underclocking results for Antminers.
export const POWER_EXPONENT = 1.6;
/** power targets are accepted between 50 % and 110 % of stock: below that chips drop out, above it PSU limits */
export const MIN_POWER_FRACTION = 0.5;
export const MAX_POWER_FRACTION = 1.1;
/**
 * Antminer "low power" miner-mode (3). Bitmain publishes no wattage for it; we assume 75 % of
 * stock power (≈ 83 % of rated hashrate on the curve). The cgminer driver can ask stock
 * firmware for only this one target.
 */
export const LOW_POWER_FRACTION = 0.75;
/** ~35 W standby is typical of the air-cooled Antminer chassis */
const STANDBY_W = 35;

function model(id: AsicModelId, name: string, ratedThs: number, jPerTh: number): AsicModel {
  const ratedPowerW = Math.round(ratedThs * jPerTh);
  return {
    id,
    name,
    ratedThs,
    jPerTh,
    ratedPowerW,
    standbyW: STANDBY_W,
    lowPowerW: Math.round(ratedPowerW * LOW_POWER_FRACTION),
    // whole watts: firmware takes integer targets, and 1.1 × 3500 must read 3850, not 3850.0000000000005
    minPowerW: Math.ceil(ratedPowerW * MIN_POWER_FRACTION),
    maxPowerW: Math.floor(ratedPowerW * MAX_POWER_FRACTION),
  };
}

export const ASIC_MODELS: Readonly<Record<AsicModelId, AsicModel>> = {
  's21': model('s21', 'Antminer S21', 200, 17.5),
  's21-pro': model('s21-pro', 'Antminer S21 Pro', 234, 15),
  's21-xp': model('s21-xp', 'Antminer S21 XP', 270, 13.5),
};

export const ASIC_MODEL_IDS = Object.keys(ASIC_MODELS) as AsicModelId[];

export function isAsicModelId(s: string): s is AsicModelId {
  return Object.hasOwn(ASIC_MODELS, s);
}

/**
 * The model by its reported name ('Antminer S21 XP', case and surrounding space ignored) or by
 * its id ('s21-xp'); undefined when unknown.
 */
export function asicModelByName(name: string): AsicModel | undefined {
  const n = name.trim().toLowerCase();
  if (isAsicModelId(n)) return ASIC_MODELS[n];
  return Object.values(ASIC_MODELS).find((m) => m.name.toLowerCase() === n);
}

/** whether the firmware accepts this power target (whole watts inside the model's window) */
export function powerTargetInRange(m: AsicModel, watts: number): boolean {
  return Number.isFinite(watts) && watts >= m.minPowerW && watts <= m.maxPowerW;
}

/** whole watts inside the model's window */
export function clampPowerTarget(m: AsicModel, watts: number): number {
  return Math.min(Math.max(Math.round(watts), m.minPowerW), m.maxPowerW);
}

/** whole watts, as firmware takes them, for a fraction of stock power (inside the model's window) */
export function targetWattsFor(m: AsicModel, fraction: number): number {
  return clampPowerTarget(m, m.ratedPowerW * fraction);
}

/** hashrate as a fraction of rated, at a wall-power target */
export function hashFractionForPower(m: AsicModel, powerW: number): number {
  const hashing = (powerW - m.standbyW) / (m.ratedPowerW - m.standbyW);
  return Math.pow(Math.max(hashing, 0), 1 / POWER_EXPONENT);
}

/** wall power for a hashrate fraction of rated (inverse of hashFractionForPower) */
export function powerForHashFraction(m: AsicModel, fraction: number): number {
  return m.standbyW + (m.ratedPowerW - m.standbyW) * Math.pow(Math.max(fraction, 0), POWER_EXPONENT);
}

/**
 * Wall power estimated from hashrate when the firmware does not report it (stock bmminer does
 * not): standby plus the stock hashing power scaled along the efficiency curve.
 */
export function estimateAsicPowerW(m: AsicModel, hashrateThs: number): number {
  return powerForHashFraction(m, Math.max(hashrateThs, 0) / m.ratedThs);
}
