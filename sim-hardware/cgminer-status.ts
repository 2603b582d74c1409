// What a miner exposes to the cgminer API layer: one snapshot per request, from which every
// command's reply (summary, stats, devs, pools, …) is built. Kept separate so the protocol
// module and the S21 model do not depend on each other.

export interface CgminerChain {
  /** GH/s; `chain_rateN` */
  rateGhs: number;
  /** chips found; `chain_acnN` */
  chips: number;
  /** `chain_hwN` */
  hardwareErrors: number;
  /** four sensors, °C; joined by "-" into `temp_pcbN` */
  pcbTempsC: number[];
  /** four sensors, °C; `temp_chipN` */
  chipTempsC: number[];
}

export interface CgminerStatus {
  /** "Antminer S21 XP" */
  type: string;
  minerId: string;
  /** seconds since bmminer started */
  elapsedS: number;
  ghs5s: number;
  ghsAv: number;
  ghs30m: number;
  /** GH/s the chains should do at the current frequency; `total_rateideal` */
  rateIdealGhs: number;
  accepted: number;
  rejected: number;
  hardwareErrors: number;
  bestShare: number;
  /** seconds since the last accepted share, null before the first */
  lastShareAgeS: number | null;
  /** Antminer miner-mode: 0 normal, 1 sleep, 3 low power */
  mode: number;
  frequencyMhz: number;
  fansRpm: number[];
  chains: CgminerChain[];
  pool: { url: string; user: string; difficulty: number };
  /** wall power in W, only when the firmware reports it (stock bmminer does not) */
  powerW?: number;
}

export interface CgminerMiner {
  cgminerStatus(): CgminerStatus;
}
