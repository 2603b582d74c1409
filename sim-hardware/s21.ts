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
  /** the reading written into a sample made by an earlier reading() (the same miner's) */
  readInto(sample: AsicSample, nowMs: number): AsicSample;
}

type Phase = 'sleeping' | 'starting' | 'mining';

/** the four sensors on a board read differently (inlet side cooler than outlet); one copy for every miner */
const PCB_SENSOR_OFFSET: readonly number[] = [-4, -2, 1, 3];
const CHIP_SENSOR_OFFSET: readonly number[] = [-3, -1, 2, 4];
/** sub-steps the 5 s window holds at first; at the agent's 1 s tick it needs 6 */
const WINDOW_INITIAL = 8;

const round2 = (x: number): number => Math.round(x * 100) / 100;

function fanSpeedFor(m: S21Model, hottestChipC: number): number {
  // Stock fan control: minimum 15 % to keep the control board cool, full speed by 80 °C chips.
  const pct = clamp(0.15 + ((hottestChipC - 45) / 35) * 0.85, 0.15, 1);
  return pct * m.maxFanRpm;
}

function hottest(temps: readonly number[]): number {
  let max = -Infinity;
  for (let i = 0; i < temps.length; i++) max = Math.max(max, temps[i]!);
  return max;
}

/** the hottest of a board's sensors as cgminer reports them (whole degrees) */
function hottestSensor(c: number, offsets: readonly number[]): number {
  let max = -Infinity;
  for (let i = 0; i < offsets.length; i++) max = Math.max(max, Math.round(c + offsets[i]!));
  return max;
}

/** n doubles, in an array V8 stores unboxed (a double array, not one of tagged numbers) */
const doubles = (n: number, f: (i: number) => number = () => 0): number[] => {
  const xs = new Array<number>(n).fill(0.5);
  for (let i = 0; i < n; i++) xs[i] = f(i);
  return xs;
};

export function createS21(opts: S21Options): SimS21 {
  return new S21(opts);
}

/**
 * A class, not closures over the state: a site's agent simulates 5,000 of these. As a closure
 * each miner was ~20 function objects, a context and an object literal with accessors (kept as a
 * dictionary), ~4 KB of heap per miner that a class's prototype holds once (bench:agent,
 * bench/heap-summary.ts: 19 of 49 MB of the agent's heap at 5,000 ASICs).
 */
class S21 implements SimS21 {
  readonly id: string;
  readonly model: S21Model;
  readonly minerId: string;
  private readonly ambientC: number;
  private readonly startupS: number;
  private readonly difficulty: number;
  private readonly poolUrl: string | undefined;
  private readonly poolUser: string | undefined;
  private readonly reportsPower: boolean;
  private readonly rng: Rng;
  // Manufacturing spread: boards differ by ±1 % in hashrate and a degree or two in temperature.
  private readonly chainFactor: number[];
  private readonly chainTempOffset: number[];
  private readonly fanFactor: number[];
  private phase: Phase;
  // The continuous state as double fields, updated in place (a double in a closure's variable
  // was a new heap number at every assignment).
  private sinceStartS = 0;
  private powerW: number;
  private elapsedS = 0;
  private totalGh = 0;
  private ema30m: number;
  private powerTarget: number | null = null;
  private readonly pcbC: number[];
  private readonly chipC: number[];
  private readonly fanRpm: number[];
  private readonly chainRateGhs: number[];
  private readonly chainHw: number[];
  // The last 5 s of sub-steps, oldest first from winStart, for "GHS 5s": a ring of two parallel
  // double arrays. Pushing onto arrays and cutting their head off every 64 sub-steps held ~1.3 KB
  // per miner and reallocated them as they grew.
  private winDt: number[] = doubles(WINDOW_INITIAL);
  private winGhs: number[] = doubles(WINDOW_INITIAL);
  private winStart = 0;
  private winLen = 0;
  private accepted = 0;
  private rejected = 0;
  private bestShare = 0;
  private lastShareAtS: number | null = null;

  constructor(opts: S21Options) {
    const m = S21_MODELS[opts.model];
    this.id = opts.id;
    this.model = m;
    this.ambientC = opts.ambientC ?? 25;
    this.startupS = opts.startupSeconds ?? DEFAULT_STARTUP_SECONDS;
    this.difficulty = opts.poolDifficulty ?? DEFAULT_POOL_DIFFICULTY;
    this.poolUrl = opts.poolUrl;
    this.poolUser = opts.poolUser;
    this.reportsPower = opts.reportsPower ?? false;
    this.rng = opts.rng.fork('dynamics');
    const fixed = opts.rng.fork('fixed');
    // the draws in this order: a miner's serial and spread depend only on the seed and its id
    this.minerId = fixed.hex(16);
    this.chainFactor = doubles(m.boards, () => 1 + (fixed.next() - 0.5) * 0.02);
    this.chainTempOffset = doubles(m.boards, () => (fixed.next() - 0.5) * 3);
    this.fanFactor = doubles(m.fans, () => 1 + (fixed.next() - 0.5) * 0.04);
    this.phase = opts.initialState === 'sleeping' ? 'sleeping' : 'mining';
    const warm = this.phase === 'mining' ? 1 : 0;
    this.powerW = warm ? m.ratedPowerW : m.standbyW;
    this.ema30m = warm ? m.ratedThs * 1000 : 0;
    this.pcbC = doubles(m.boards, (i) => this.ambientC + warm * PCB_RISE_C + this.chainTempOffset[i]!);
    this.chipC = doubles(m.boards, (i) => this.ambientC + warm * CHIP_RISE_C + this.chainTempOffset[i]!);
    const fan0 = fanSpeedFor(m, hottest(this.chipC));
    this.fanRpm = doubles(m.fans, () => fan0);
    this.chainRateGhs = doubles(m.boards);
    this.chainHw = doubles(m.boards);
  }

  get miningState(): MiningState {
    return this.phase === 'sleeping'
      ? MiningState.MINING_STATE_SLEEPING
      : this.phase === 'starting'
        ? MiningState.MINING_STATE_RAMPING
        : MiningState.MINING_STATE_MINING;
  }

  get powerTargetW(): number | null {
    return this.powerTarget;
  }

  setMining(on: boolean): void {
    if (on && this.phase === 'sleeping') {
      this.phase = this.startupS > 0 ? 'starting' : 'mining';
      this.sinceStartS = 0;
    } else if (!on) {
      this.phase = 'sleeping';
    }
  }

  reboot(): void {
    this.phase = this.startupS > 0 ? 'starting' : 'mining';
    this.sinceStartS = 0;
  }

  setPowerTarget(watts: number | null): void {
    if (watts !== null && !Number.isFinite(watts)) throw new RangeError(`power target must be finite, got ${watts}`);
    this.powerTarget = watts === null ? null : clampPowerTarget(this.model, watts);
  }

  step(dtSeconds: number): void {
    // Sub-steps of at most 1 s keep the ramp, share draws and 5 s window accurate when the
    // fleet is stepped rarely; the lags are exact for any step size.
    let left = dtSeconds;
    while (left > 1e-9) {
      const dt = Math.min(left, MAX_SUBSTEP_S);
      this.substep(dt);
      left -= dt;
    }
  }

  private targetW(): number {
    return this.powerTarget ?? this.model.ratedPowerW;
  }

  private hashFraction(): number {
    return hashFractionForPower(this.model, this.targetW());
  }

  private rampFraction(): number {
    if (this.phase === 'sleeping') return 0;
    if (this.phase === 'mining') return 1;
    return clamp((this.sinceStartS - INIT_FRACTION * this.startupS) / ((1 - INIT_FRACTION) * this.startupS), 0, 1);
  }

  private substep(dt: number): void {
    const m = this.model;
    const rng = this.rng;
    this.elapsedS += dt;
    if (this.phase === 'starting') {
      this.sinceStartS += dt;
      if (this.sinceStartS >= this.startupS) this.phase = 'mining';
    }
    const ramp = this.rampFraction();
    const hf = this.hashFraction();

    let rate = 0;
    for (let i = 0; i < m.boards; i++) {
      const r = ramp > 0 ? (m.ratedThs * 1000 / m.boards) * this.chainFactor[i]! * hf * ramp * (1 + rng.normal() * 0.004) : 0;
      this.chainRateGhs[i] = r;
      rate += r;
    }

    // Power follows hashrate: hashing power scales with the ramp on top of standby.
    const hashingW = (this.targetW() - m.standbyW) * ramp;
    this.powerW = firstOrderLag(this.powerW, m.standbyW + hashingW * (1 + rng.normal() * 0.002), dt, POWER_TAU_S);

    const load = (this.powerW - m.standbyW) / (m.ratedPowerW - m.standbyW);
    for (let i = 0; i < m.boards; i++) {
      this.pcbC[i] = firstOrderLag(this.pcbC[i]!, this.ambientC + PCB_RISE_C * load + this.chainTempOffset[i]!, dt, PCB_TAU_S);
      this.chipC[i] = firstOrderLag(this.chipC[i]!, this.ambientC + CHIP_RISE_C * load + this.chainTempOffset[i]!, dt, CHIP_TAU_S);
    }
    const fanTarget = fanSpeedFor(m, hottest(this.chipC));
    for (let i = 0; i < this.fanRpm.length; i++) this.fanRpm[i] = firstOrderLag(this.fanRpm[i]!, fanTarget, dt, FAN_TAU_S);

    const gh = rate * dt;
    this.totalGh += gh;
    this.windowPush(dt, rate);
    let covered = this.windowCovered();
    while (this.winLen > 1 && covered - this.winDt[this.winStart]! >= WINDOW_5S) {
      covered -= this.winDt[this.winStart]!;
      this.winStart = (this.winStart + 1) % this.winDt.length;
      this.winLen--;
    }
    this.ema30m = firstOrderLag(this.ema30m, rate, dt, WINDOW_30M);

    // A share is a hash below target; at difficulty D one hash in D·2^32 qualifies, so shares
    // arrive as a Poisson process with rate H / (D · 2^32).
    const shares = rng.poisson((gh * 1e9) / (this.difficulty * TWO_POW_32));
    for (let s = 0; s < shares; s++) {
      if (rng.chance(REJECT_PROBABILITY)) this.rejected++;
      else this.accepted++;
    }
    if (shares > 0) {
      this.lastShareAtS = this.elapsedS;
      // A share's own difficulty is D/U for uniform U, so the best of n is D over the least of
      // n uniforms, which is distributed as 1 − V^(1/n).
      const minU = 1 - Math.pow(rng.next(), 1 / shares);
      this.bestShare = Math.max(this.bestShare, Math.floor(this.difficulty / Math.max(minU, 1e-12)));
    }
    for (let i = 0; i < m.boards; i++) {
      this.chainHw[i]! += rng.poisson((this.chainRateGhs[i]! / 1000) * HW_ERRORS_PER_TH_S * dt);
    }
  }

  /** a sub-step onto the window's end; the ring doubles when full (sub-steps shorter than 1 s) */
  private windowPush(dt: number, ghs: number): void {
    const cap = this.winDt.length;
    if (this.winLen === cap) {
      const dts = doubles(cap * 2);
      const rates = doubles(cap * 2);
      for (let i = 0; i < cap; i++) {
        dts[i] = this.winDt[(this.winStart + i) % cap]!;
        rates[i] = this.winGhs[(this.winStart + i) % cap]!;
      }
      this.winDt = dts;
      this.winGhs = rates;
      this.winStart = 0;
    }
    const at = (this.winStart + this.winLen) % this.winDt.length;
    this.winDt[at] = dt;
    this.winGhs[at] = ghs;
    this.winLen++;
  }

  /** the window's span, summed oldest first */
  private windowCovered(): number {
    const cap = this.winDt.length;
    let covered = 0;
    for (let i = 0; i < this.winLen; i++) covered += this.winDt[(this.winStart + i) % cap]!;
    return covered;
  }

  private ghs5s(): number {
    const covered = this.windowCovered();
    if (covered <= 0) return 0;
    // The oldest segment may reach past 5 s; count only its part inside the window.
    const excess = Math.max(0, covered - WINDOW_5S);
    const cap = this.winDt.length;
    let gh = 0;
    for (let i = 0; i < this.winLen; i++) {
      const k = (this.winStart + i) % cap;
      gh += this.winGhs[k]! * (i === 0 ? this.winDt[k]! - excess : this.winDt[k]!);
    }
    return gh / Math.min(covered, WINDOW_5S);
  }

  private fansRpm(): number[] {
    return this.fanRpm.map((f, i) => Math.round(f * this.fanFactor[i]!));
  }

  private sumHw(): number {
    let n = 0;
    for (const h of this.chainHw) n += h;
    return n;
  }

  reading(nowMs: number): AsicSample {
    // What cgminerStatus() reports, read straight from the state: a site's agent reads every
    // ASIC every second, and the whole status (chains, pool, sensor lists) was garbage at once.
    const boards = this.chainRateGhs.length;
    return this.readInto({
      deviceId: this.id, tsMs: 0, hashrate5sThs: 0, hashrateAvgThs: 0, powerW: 0,
      boardTemperaturesC: new Array<number>(boards).fill(0), chipTemperaturesC: new Array<number>(boards).fill(0), fanRpm: new Array<number>(this.fanRpm.length).fill(0),
      acceptedShares: 0, rejectedShares: 0, hardwareErrors: 0, miningState: MiningState.MINING_STATE_UNSPECIFIED, powerTargetW: 0,
    }, nowMs);
  }

  readInto(r: AsicSample, nowMs: number): AsicSample {
    for (let i = 0; i < r.boardTemperaturesC.length; i++) {
      r.boardTemperaturesC[i] = hottestSensor(this.pcbC[i]!, PCB_SENSOR_OFFSET);
      r.chipTemperaturesC[i] = hottestSensor(this.chipC[i]!, CHIP_SENSOR_OFFSET);
    }
    for (let i = 0; i < r.fanRpm.length; i++) r.fanRpm[i] = Math.round(this.fanRpm[i]! * this.fanFactor[i]!);
    r.tsMs = nowMs;
    r.hashrate5sThs = round2(this.ghs5s()) / 1000;
    r.hashrateAvgThs = round2(this.elapsedS > 0 ? this.totalGh / this.elapsedS : 0) / 1000;
    r.powerW = Math.round(this.powerW * 10) / 10;
    r.acceptedShares = this.accepted;
    r.rejectedShares = this.rejected;
    r.hardwareErrors = this.sumHw();
    r.miningState = this.miningState;
    r.powerTargetW = this.powerTarget ?? 0;
    return r;
  }

  cgminerStatus(): CgminerStatus {
    const m = this.model;
    const hf = this.hashFraction();
    return {
      type: m.name,
      minerId: this.minerId,
      elapsedS: Math.floor(this.elapsedS),
      ghs5s: round2(this.ghs5s()),
      ghsAv: round2(this.elapsedS > 0 ? this.totalGh / this.elapsedS : 0),
      ghs30m: round2(this.ema30m),
      rateIdealGhs: round2(m.ratedThs * 1000 * hf),
      accepted: this.accepted,
      rejected: this.rejected,
      hardwareErrors: this.sumHw(),
      bestShare: this.bestShare,
      lastShareAgeS: this.lastShareAtS === null ? null : Math.floor(this.elapsedS - this.lastShareAtS),
      // Antminer miner-mode: 1 sleep; 3 low power when running below stock power; 0 normal.
      mode: this.phase === 'sleeping' ? 1 : this.powerTarget !== null && this.powerTarget < m.ratedPowerW ? 3 : 0,
      // Hashrate is proportional to chip clock, so the clock scales with the hash fraction.
      frequencyMhz: Math.round(m.stockFrequencyMhz * hf),
      fansRpm: this.fansRpm(),
      chains: this.chainRateGhs.map((r, i) => ({
        rateGhs: round2(r),
        chips: m.chipsPerBoard,
        hardwareErrors: this.chainHw[i]!,
        pcbTempsC: PCB_SENSOR_OFFSET.map((o) => Math.round(this.pcbC[i]! + o)),
        chipTempsC: CHIP_SENSOR_OFFSET.map((o) => Math.round(this.chipC[i]! + o)),
      })),
      pool: {
        url: this.poolUrl ?? 'stratum+tcp://pool.example:3333',
        user: this.poolUser ?? `hcp.${this.id}`,
        difficulty: this.difficulty,
      },
      ...(this.reportsPower ? { powerW: Math.round(this.powerW) } : {}),
    };
  }
}
