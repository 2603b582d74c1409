// The ASIC models the economic engine knows, with their efficiency curve. The control plane does
// not import sim-hardware (real sites run real miners), so the rated figures from docs/architecture.md
// "Reference numbers" are stated here, as agent/drivers/asic-models.ts states them too.
//
// Wiring: the engine looks a device's model up here by the id the registry stores for it
// (`s21`, `s21-pro`, `s21-xp`).

export type AsicModelId = 's21' | 's21-pro' | 's21-xp';

export interface AsicModelSpec {
  id: AsicModelId;
  name: string;
  ratedThs: number;
  jPerTh: number;
  /** wall power at stock settings = ratedThs × jPerTh */
  ratedPowerW: number;
  /** control board and idle fans while asleep: drawn (and paid for) whether mining or not */
  standbyW: number;
}

const spec = (id: AsicModelId, name: string, ratedThs: number, jPerTh: number): AsicModelSpec => ({
  id,
  name,
  ratedThs,
  jPerTh,
  ratedPowerW: Math.round(ratedThs * jPerTh),
  standbyW: 35,
});

export const ASIC_MODEL_SPECS: Readonly<Record<AsicModelId, AsicModelSpec>> = {
  's21': spec('s21', 'Antminer S21', 200, 17.5),
  's21-pro': spec('s21-pro', 'Antminer S21 Pro', 234, 15),
  's21-xp': spec('s21-xp', 'Antminer S21 XP', 270, 13.5),
};

export function isAsicModelId(s: string): s is AsicModelId {
  return Object.hasOwn(ASIC_MODEL_SPECS, s);
}

// Hashing power ∝ clock^1.6 in the firmware's DVFS window (voltage ∝ clock^0.3), so a lower power
// target keeps more than its share of hashrate: 70 % power → 80 % hashrate. Firmware accepts
// targets between 50 % and 110 % of stock (the same curve as sim-hardware/s21-models.ts).
const POWER_EXPONENT = 1.6;
export const MIN_POWER_FRACTION = 0.5;
export const MAX_POWER_FRACTION = 1.1;

/** Power targets the engine chooses between, as fractions of stock; firmware presets are coarse. */
export const DEFAULT_POWER_FRACTIONS: readonly number[] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1];

/** whole watts, as firmware takes them */
export function targetWattsFor(m: AsicModelSpec, fraction: number): number {
  return Math.round(m.ratedPowerW * fraction);
}

/** hashrate as a fraction of rated at a wall-power target */
export function hashFractionAt(m: AsicModelSpec, powerW: number): number {
  const hashing = (powerW - m.standbyW) / (m.ratedPowerW - m.standbyW);
  return Math.pow(Math.max(hashing, 0), 1 / POWER_EXPONENT);
}
