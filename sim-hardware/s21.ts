// Antminer S21 family model: start-up ramp, sleep, power targets along the efficiency curve,
// thermal lag, fan control and share accrual. Rated numbers come from the catalog (proto/asic-models.ts) via s21-models.ts.
import { MiningState, type AsicSample } from '../proto/gen/hcp/v1/telemetry.js';
import type { CgminerMiner, CgminerStatus } from './cgminer-status.js';
import { clamp, firstOrderLag } from './lag.js';
import type { Rng } from './rng.js';
import { clampPowerTarget, hashFractionForPower, S21_MODELS, type S21Model, type S21ModelId } from './s21-models.js';

/** boot, fan check, hashboard init and frequency tuning on stock firmware take a few minutes */
export const DEFAULT_STARTUP_SECONDS = 240;
/** typical pool vardiff for a ~200 TH/s miner ("262K" in the reference pools reply) */
export const DEFAULT_POOL_DIFFICULTY = 262_144;
const TWO_POW_32 = 4_294_967_296;
/** share of the start-up spent booting and initialising boards before any hashing */
const INIT_FRACTION = 0.25;
/** PSU and board regulators settle within about a second: power follows hashrate */
const POWER_TAU_S = 1;
/** heatsink thermal mass: PCB temperatures move over a minute or two, chips faster */
const PCB_TAU_S = 60;
const CHIP_TAU_S = 20;
const FAN_TAU_S = 3;
/** at stock power the PCB sits ~30 °C and the chips ~42 °C over inlet air (≈55 / 67 °C at 25 °C) */
const PCB_RISE_C = 30;
const CHIP_RISE_C = 42;
/** ~1 hardware error per 1,000 s at 200 TH/s, as in the reference summary (61 in 59,129 s) */
const HW_ERRORS_PER_TH_S = 5e-6;
/** pool rejects are rare: 9 of 11,196 in the reference summary */
const REJECT_PROBABILITY = 0.0008;
const MAX_SUBSTEP_S = 1;
const WINDOW_5S = 5;
const WINDOW_30M = 1800;

export interface S21Options {
  id: string;
  model: S21ModelId;
  rng: Rng;
  ambientC?: number;
  startupSeconds?: number;
  poolDifficulty?: number;
  poolUrl?: string;
  poolUser?: string;
  /** 'mining' starts warm at full hashrate (as if running for a while); default 'mining' */
  initialState?: 'mining' | 'sleeping';
  /** include wall power in `stats` (custom firmware does; stock bmminer does not) */
  reportsPower?: boolean;
}

export interface SimS21 extends CgminerMiner {
  readonly id: string;
  readonly model: S21Model;
  readonly minerId: string;
  readonly miningState: MiningState;
  /** null = stock power */
  readonly powerTargetW: number | null;
  setMining(on: boolean): void;
  /** clamps to 50–110 % of stock; null restores stock settings */
  setPowerTarget(watts: number | null): void;
  /**
   * A power cycle or firmware reboot: the miner boots and starts mining again (through the
   * start-up ramp) whatever it was told before, keeping its power target (saved in its conf).
   */
  reboot(): void;
  step(dtSeconds: number): void;
  reading(nowMs: number): AsicSample;
}

type Phase = 'sleeping' | 'starting' | 'mining';

export function createS21(opts: S21Options): SimS21 {
  const m = S21_MODELS[opts.model];
  const ambientC = opts.ambientC ?? 25;
  const startupS = opts.startupSeconds ?? DEFAULT_STARTUP_SECONDS;
  const difficulty = opts.poolDifficulty ?? DEFAULT_POOL_DIFFICULTY;
  const rng = opts.rng.fork('dynamics');
  const fixed = opts.rng.fork('fixed');
  const minerId = fixed.hex(16);
  // Manufacturing spread: boards differ by ±1 % in hashrate and a degree or two in temperature;
  // the four sensors on a board read differently (inlet side cooler than outlet).
  const chainFactor = Array.from({ length: m.boards }, () => 1 + (fixed.next() - 0.5) * 0.02);
  const chainTempOffset = Array.from({ length: m.boards }, () => (fixed.next() - 0.5) * 3);
  const pcbSensorOffset = [-4, -2, 1, 3];
  const chipSensorOffset = [-3, -1, 2, 4];
  const fanFactor = Array.from({ length: m.fans }, () => 1 + (fixed.next() - 0.5) * 0.04);

  let phase: Phase = opts.initialState === 'sleeping' ? 'sleeping' : 'mining';
  const warm = phase === 'mining' ? 1 : 0;
  // The continuous state in one object: a double kept in a closure's variable is a new heap
  // number at every assignment (five per sub-step, at 5,000 ASICs a second), a double field of an
  // object is updated in place.
  const st = {
    sinceStartS: 0,
    powerW: warm ? m.ratedPowerW : m.standbyW,
    elapsedS: 0,
    totalGh: 0,
    ema30m: warm ? m.ratedThs * 1000 : 0,
  };
  let powerTargetW: number | null = null;
  const pcbC = Array.from({ length: m.boards }, (_, i) => ambientC + warm * PCB_RISE_C + chainTempOffset[i]!);
  const chipC = Array.from({ length: m.boards }, (_, i) => ambientC + warm * CHIP_RISE_C + chainTempOffset[i]!);
  const fanRpm = Array.from({ length: m.fans }, () => fanSpeedFor(Math.max(...chipC)));
  const chainRateGhs = Array.from({ length: m.boards }, () => 0);
  const chainHw = Array.from({ length: m.boards }, () => 0);
  // The last 5 s of sub-steps, oldest first, for "GHS 5s": two parallel arrays of doubles from
  // windowHead on (stored unboxed, where an object per sub-step was 5,000 ASICs × 6 objects a
  // second of garbage in the agent); the consumed head is cut off now and then.
  const windowDt: number[] = [];
  const windowGhs: number[] = [];
  let windowHead = 0;
  let accepted = 0;
  let rejected = 0;
  let bestShare = 0;
  let lastShareAtS: number | null = null;

  const fansRpm = (): number[] => fanRpm.map((f, i) => Math.round(f * fanFactor[i]!));
  const hottest = (temps: readonly number[]): number => {
    let max = -Infinity;
    for (const t of temps) max = Math.max(max, t);
    return max;
  };

  function fanSpeedFor(hottestChipC: number): number {
    // Stock fan control: minimum 15 % to keep the control board cool, full speed by 80 °C chips.
    const pct = clamp(0.15 + ((hottestChipC - 45) / 35) * 0.85, 0.15, 1);
    return pct * m.maxFanRpm;
  }

  const targetW = (): number => powerTargetW ?? m.ratedPowerW;
  const hashFraction = (): number => hashFractionForPower(m, targetW());

  function rampFraction(): number {
    if (phase === 'sleeping') return 0;
    if (phase === 'mining') return 1;
    return clamp((st.sinceStartS - INIT_FRACTION * startupS) / ((1 - INIT_FRACTION) * startupS), 0, 1);
  }

  function substep(dt: number): void {
    st.elapsedS += dt;
    if (phase === 'starting') {
      st.sinceStartS += dt;
      if (st.sinceStartS >= startupS) phase = 'mining';
    }
    const ramp = rampFraction();
    const hf = hashFraction();

    let rate = 0;
    for (let i = 0; i < m.boards; i++) {
      const r = ramp > 0 ? (m.ratedThs * 1000 / m.boards) * chainFactor[i]! * hf * ramp * (1 + rng.normal() * 0.004) : 0;
      chainRateGhs[i] = r;
      rate += r;
    }

    // Power follows hashrate: hashing power scales with the ramp on top of standby.
    const hashingW = (targetW() - m.standbyW) * ramp;
    st.powerW = firstOrderLag(st.powerW, m.standbyW + hashingW * (1 + rng.normal() * 0.002), dt, POWER_TAU_S);

    const load = (st.powerW - m.standbyW) / (m.ratedPowerW - m.standbyW);
    for (let i = 0; i < m.boards; i++) {
      pcbC[i] = firstOrderLag(pcbC[i]!, ambientC + PCB_RISE_C * load + chainTempOffset[i]!, dt, PCB_TAU_S);
      chipC[i] = firstOrderLag(chipC[i]!, ambientC + CHIP_RISE_C * load + chainTempOffset[i]!, dt, CHIP_TAU_S);
    }
    const fanTarget = fanSpeedFor(hottest(chipC));
    for (let i = 0; i < fanRpm.length; i++) fanRpm[i] = firstOrderLag(fanRpm[i]!, fanTarget, dt, FAN_TAU_S);

    const gh = rate * dt;
    st.totalGh += gh;
    windowDt.push(dt);
    windowGhs.push(rate);
    let covered = windowCovered();
    while (windowDt.length - windowHead > 1 && covered - windowDt[windowHead]! >= WINDOW_5S) covered -= windowDt[windowHead++]!;
    if (windowHead >= 64) {
      windowDt.splice(0, windowHead);
      windowGhs.splice(0, windowHead);
      windowHead = 0;
    }
    st.ema30m = firstOrderLag(st.ema30m, rate, dt, WINDOW_30M);

    // A share is a hash below target; at difficulty D one hash in D·2^32 qualifies, so shares
    // arrive as a Poisson process with rate H / (D · 2^32).
    const shares = rng.poisson((gh * 1e9) / (difficulty * TWO_POW_32));
    for (let s = 0; s < shares; s++) {
      if (rng.chance(REJECT_PROBABILITY)) rejected++;
      else accepted++;
    }
    if (shares > 0) {
      lastShareAtS = st.elapsedS;
      // A share's own difficulty is D/U for uniform U, so the best of n is D over the least of
      // n uniforms, which is distributed as 1 − V^(1/n).
      const minU = 1 - Math.pow(rng.next(), 1 / shares);
      bestShare = Math.max(bestShare, Math.floor(difficulty / Math.max(minU, 1e-12)));
    }
    for (let i = 0; i < m.boards; i++) {
      chainHw[i]! += rng.poisson((chainRateGhs[i]! / 1000) * HW_ERRORS_PER_TH_S * dt);
    }
  }

  /** the window's span, summed oldest first */
  function windowCovered(): number {
    let covered = 0;
    for (let i = windowHead; i < windowDt.length; i++) covered += windowDt[i]!;
    return covered;
  }

  function ghs5s(): number {
    const covered = windowCovered();
    if (covered <= 0) return 0;
    // The oldest segment may reach past 5 s; count only its part inside the window.
    const excess = Math.max(0, covered - WINDOW_5S);
    let gh = 0;
    for (let i = windowHead; i < windowDt.length; i++) gh += windowGhs[i]! * (i === windowHead ? windowDt[i]! - excess : windowDt[i]!);
    return gh / Math.min(covered, WINDOW_5S);
  }

  const round2 = (x: number): number => Math.round(x * 100) / 100;
  /** the hottest of a board's sensors as cgminer reports them (whole degrees) */
  const hottestSensor = (c: number, offsets: readonly number[]): number => {
    let max = -Infinity;
    for (const o of offsets) max = Math.max(max, Math.round(c + o));
    return max;
  };
  const sumHw = (): number => {
    let n = 0;
    for (const h of chainHw) n += h;
    return n;
  };

  const miner: SimS21 = {
    id: opts.id,
    model: m,
    minerId,
    get miningState() {
      return phase === 'sleeping'
        ? MiningState.MINING_STATE_SLEEPING
        : phase === 'starting'
          ? MiningState.MINING_STATE_RAMPING
          : MiningState.MINING_STATE_MINING;
    },
    get powerTargetW() {
      return powerTargetW;
    },
    setMining(on) {
      if (on && phase === 'sleeping') {
        phase = startupS > 0 ? 'starting' : 'mining';
        st.sinceStartS = 0;
      } else if (!on) {
        phase = 'sleeping';
      }
    },
    reboot() {
      phase = startupS > 0 ? 'starting' : 'mining';
      st.sinceStartS = 0;
    },
    setPowerTarget(watts) {
      if (watts !== null && !Number.isFinite(watts)) throw new RangeError(`power target must be finite, got ${watts}`);
      powerTargetW = watts === null ? null : clampPowerTarget(m, watts);
    },
    step(dtSeconds) {
      // Sub-steps of at most 1 s keep the ramp, share draws and 5 s window accurate when the
      // fleet is stepped rarely; the lags are exact for any step size.
      let left = dtSeconds;
      while (left > 1e-9) {
        const dt = Math.min(left, MAX_SUBSTEP_S);
        substep(dt);
        left -= dt;
      }
    },
    reading(nowMs) {
      // What cgminerStatus() reports, read straight from the state: a site's agent reads every
      // ASIC every second, and the whole status (chains, pool, sensor lists) was garbage at once.
      const boards = chainRateGhs.length;
      const boardTemperaturesC = new Array<number>(boards);
      const chipTemperaturesC = new Array<number>(boards);
      for (let i = 0; i < boards; i++) {
        boardTemperaturesC[i] = hottestSensor(pcbC[i]!, pcbSensorOffset);
        chipTemperaturesC[i] = hottestSensor(chipC[i]!, chipSensorOffset);
      }
      return {
        deviceId: opts.id,
        tsMs: nowMs,
        hashrate5sThs: round2(ghs5s()) / 1000,
        hashrateAvgThs: round2(st.elapsedS > 0 ? st.totalGh / st.elapsedS : 0) / 1000,
        powerW: Math.round(st.powerW * 10) / 10,
        boardTemperaturesC,
        chipTemperaturesC,
        fanRpm: fansRpm(),
        acceptedShares: accepted,
        rejectedShares: rejected,
        hardwareErrors: sumHw(),
        miningState: miner.miningState,
        powerTargetW: powerTargetW ?? 0,
      };
    },
    cgminerStatus(): CgminerStatus {
      const hf = hashFraction();
      return {
        type: m.name,
        minerId,
        elapsedS: Math.floor(st.elapsedS),
        ghs5s: round2(ghs5s()),
        ghsAv: round2(st.elapsedS > 0 ? st.totalGh / st.elapsedS : 0),
        ghs30m: round2(st.ema30m),
        rateIdealGhs: round2(m.ratedThs * 1000 * hf),
        accepted,
        rejected,
        hardwareErrors: sumHw(),
        bestShare,
        lastShareAgeS: lastShareAtS === null ? null : Math.floor(st.elapsedS - lastShareAtS),
        // Antminer miner-mode: 1 sleep; 3 low power when running below stock power; 0 normal.
        mode: phase === 'sleeping' ? 1 : powerTargetW !== null && powerTargetW < m.ratedPowerW ? 3 : 0,
        // Hashrate is proportional to chip clock, so the clock scales with the hash fraction.
        frequencyMhz: Math.round(m.stockFrequencyMhz * hf),
        fansRpm: fansRpm(),
        chains: chainRateGhs.map((r, i) => ({
          rateGhs: round2(r),
          chips: m.chipsPerBoard,
          hardwareErrors: chainHw[i]!,
          pcbTempsC: pcbSensorOffset.map((o) => Math.round(pcbC[i]! + o)),
          chipTempsC: chipSensorOffset.map((o) => Math.round(chipC[i]! + o)),
        })),
        pool: {
          url: opts.poolUrl ?? 'stratum+tcp://pool.example:3333',
          user: opts.poolUser ?? `hcp.${opts.id}`,
          difficulty,
        },
        ...(opts.reportsPower ? { powerW: Math.round(st.powerW) } : {}),
      };
    },
  };
  return miner;
}
