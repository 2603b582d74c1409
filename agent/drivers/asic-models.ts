// Rated numbers of the ASIC models the cgminer driver knows (docs/architecture.md "Reference
// numbers"). The agent does not import sim-hardware, so the figures are stated here too.

export interface AsicModelSpec {
  name: string;
  ratedThs: number;
  jPerTh: number;
  ratedPowerW: number;
  /** control board + idle fans with the hashboards off */
  standbyW: number;
  /**
   * wall power in the firmware's low-power miner-mode (3): assumed 75 % of stock, the same figure
   * as sim-hardware/s21-models.ts LOW_POWER_FRACTION (Bitmain publishes none)
   */
  lowPowerW: number;
}

const spec = (name: string, ratedThs: number, jPerTh: number): AsicModelSpec => ({
  name,
  ratedThs,
  jPerTh,
  ratedPowerW: Math.round(ratedThs * jPerTh),
  standbyW: 35,
  lowPowerW: Math.round(Math.round(ratedThs * jPerTh) * 0.75),
});

export const ASIC_MODELS: Readonly<Record<string, AsicModelSpec>> = {
  's21': spec('Antminer S21', 200, 17.5),
  's21-pro': spec('Antminer S21 Pro', 234, 15),
  's21-xp': spec('Antminer S21 XP', 270, 13.5),
};

// Power ∝ clock^1.6 in the firmware's DVFS window (clock ∝ hashrate, voltage ∝ clock^0.3), so
// a miner hashing below rated draws less than hashrate × stock J/TH.
const POWER_EXPONENT = 1.6;

/**
 * Wall power estimated from hashrate when the firmware does not report it (stock bmminer does
 * not): standby plus the stock hashing power scaled along the efficiency curve.
 */
export function estimateAsicPowerW(m: AsicModelSpec, hashrateThs: number): number {
  const fraction = Math.max(hashrateThs, 0) / m.ratedThs;
  return m.standbyW + (m.ratedPowerW - m.standbyW) * Math.pow(fraction, POWER_EXPONENT);
}
