// NVIDIA H100 SXM5 model. Numbers from docs/architecture.md "Reference numbers" and the nvidia-smi
// capture in shared/reference/device-protocols.md.
import { GpuState, type GpuSample } from '../proto/gen/hcp/v1/telemetry.js';
import { clamp, firstOrderLag } from './lag.js';
import { formatNvidiaSmiLine } from './nvidia-smi-csv.js';
import type { Rng } from './rng.js';

export const H100 = {
  name: 'NVIDIA H100 80GB HBM3',
  /** 80 GB HBM3, of which nvidia-smi shows 81,559 MiB */
  memoryTotalMib: 81_559,
  powerLimitW: 700,
  powerLimitMinW: 200,
  smClockMaxMhz: 1_980,
  smClockIdleMhz: 1_000,
  idlePowerW: 105,
} as const;

// Board power versus utilization, piecewise linear through the product defaults:
// idle 0–5 % ≈ 105 W, active 85–99 % = 560–686 W (9 W per point near the top).
const POWER_CURVE: ReadonlyArray<readonly [util: number, watts: number]> = [
  [0, 100],
  [5, 110],
  [85, 560],
  [99, 686],
  [100, 695],
];

export function h100PowerForUtilization(utilPct: number): number {
  const u = clamp(utilPct, 0, 100);
  for (let i = 1; i < POWER_CURVE.length; i++) {
    const [u1, w1] = POWER_CURVE[i]!;
    const [u0, w0] = POWER_CURVE[i - 1]!;
    if (u <= u1) return w0 + ((u - u0) / (u1 - u0)) * (w1 - w0);
  }
  return POWER_CURVE[POWER_CURVE.length - 1]![1];
}

// Steady-state die temperature: the cooling loop holds the heatsink ~16 °C over inlet air and
// the die rises 0.038 °C/W above it. Chosen so 105 W → 45 °C and 560–686 W → 62–67 °C at 25 °C
// inlet, i.e. the 45 °C idle / 60–70 °C active product defaults.
const HEATSINK_OVER_AMBIENT_C = 16;
const DIE_C_PER_W = 0.038;
/** die + heatsink thermal time constant; H100 temperatures settle within about a minute */
const THERMAL_TAU_S = 20;
/** model load / kernel launch: utilization and memory reach their level within seconds */
const LOAD_TAU_S = 2;
/** default rate of spontaneous, non-fatal XIDs; about one per 500 GPU-hours */
const DEFAULT_XID_PER_HOUR = 1 / 500;
// Xids an application restart clears (NVIDIA "Xid Errors" catalogue): 13 graphics engine
// exception, 31 MMU fault, 43 GPU stopped processing, 45 preemptive cleanup, 63/94 ECC
// row-remap / contained ECC error.
const RECOVERABLE_XIDS = [13, 31, 43, 45, 63, 94] as const;
// Xids that take the GPU out of service until a reset: 48 double-bit ECC, 79 fallen off the
// bus, 95 uncontained ECC, 119 GSP timeout.
const FATAL_XIDS = new Set([48, 79, 95, 119]);

export interface H100Options {
  id: string;
  rng: Rng;
  ambientC?: number;
  xidPerHour?: number;
}

export interface SimH100 {
  readonly id: string;
  readonly uuid: string;
  readonly name: string;
  readonly memoryTotalMib: number;
  readonly powerLimitW: number;
  readonly workloadId: string;
  readonly state: GpuState;
  /** starts a workload; the GPU becomes busy (utilization and memory climb within seconds) */
  assign(workloadId: string): void;
  /** ends the workload; memory is freed at once, utilization and power fall */
  release(): void;
  /** records an Xid; fatal ones (48, 79, 95, 119) put the GPU in FAULT until reset() */
  injectXid(xid: number): void;
  /** clears a fault (nvidia-smi -r) */
  reset(): void;
  step(dtSeconds: number): void;
  reading(nowMs: number): GpuSample;
  /** this GPU's line of `nvidia-smi --query-gpu=… --format=csv,noheader,nounits` */
  nvidiaSmiLine(index: number): string;
}

function formatUuid(hex32: string): string {
  return `GPU-${hex32.slice(0, 8)}-${hex32.slice(8, 12)}-${hex32.slice(12, 16)}-${hex32.slice(16, 20)}-${hex32.slice(20, 32)}`;
}

export function createH100(opts: H100Options): SimH100 {
  const ambientC = opts.ambientC ?? 25;
  const xidPerHour = opts.xidPerHour ?? DEFAULT_XID_PER_HOUR;
  const rng = opts.rng.fork('dynamics');
  const uuid = formatUuid(opts.rng.fork('uuid').hex(32));

  let workloadId = '';
  let fault = false;
  let utilLevel = 0;
  let utilTarget = 0;
  let memLevel = 0;
  let memTarget = 0;
  // Reported values are rounded to nvidia-smi's precision, so the proto sample and the CSV line
  // carry exactly the same numbers.
  let util = 0;
  let powerW = H100.idlePowerW;
  let tempC = ambientC + HEATSINK_OVER_AMBIENT_C + DIE_C_PER_W * H100.idlePowerW;
  let energyMj = 0;
  let lastXid = 0;

  const busy = (): boolean => workloadId !== '' && !fault;

  const gpu: SimH100 = {
    id: opts.id,
    uuid,
    name: H100.name,
    memoryTotalMib: H100.memoryTotalMib,
    powerLimitW: H100.powerLimitW,
    get workloadId() {
      return workloadId;
    },
    get state() {
      return fault ? GpuState.GPU_STATE_FAULT : busy() ? GpuState.GPU_STATE_BUSY : GpuState.GPU_STATE_IDLE;
    },
    assign(id) {
      if (!id) throw new TypeError('workloadId must be non-empty');
      workloadId = id;
      // Each workload has its own load level: 85–99 % busy, 70–95 % of memory (product defaults).
      utilTarget = rng.range(88, 96);
      memTarget = rng.range(0.72, 0.93) * H100.memoryTotalMib;
    },
    release() {
      workloadId = '';
      utilTarget = 0;
      memTarget = 0;
      memLevel = 0; // process exit frees device memory at once
    },
    injectXid(xid) {
      lastXid = xid;
      if (FATAL_XIDS.has(xid)) fault = true;
    },
    reset() {
      fault = false;
      lastXid = 0;
    },
    step(dtSeconds) {
      if (!(dtSeconds > 0)) return;
      const active = busy();
      utilLevel = firstOrderLag(utilLevel, active ? utilTarget : 0, dtSeconds, LOAD_TAU_S);
      memLevel = active ? firstOrderLag(memLevel, memTarget, dtSeconds, LOAD_TAU_S) : 0;

      const settled = active && Math.abs(utilLevel - utilTarget) < 1;
      let u = utilLevel + rng.normal() * (active ? 1.5 : 0.8);
      u = settled ? clamp(u, 85, 99) : active ? clamp(u, 0, 99) : clamp(u, 0, 5);
      util = Math.round(u);

      // Power follows utilization within milliseconds; the 700 W limit is enforced by the board.
      const p = h100PowerForUtilization(util) * (1 + rng.normal() * 0.004);
      const prevPower = powerW;
      powerW = Math.round(clamp(p, 60, H100.powerLimitW) * 100) / 100;
      energyMj += ((prevPower + powerW) / 2) * dtSeconds * 1000; // W·s = J; trapezoid rule

      const tempTarget = ambientC + HEATSINK_OVER_AMBIENT_C + DIE_C_PER_W * powerW;
      tempC = firstOrderLag(tempC, tempTarget, dtSeconds, THERMAL_TAU_S);

      if (rng.chance((xidPerHour / 3600) * dtSeconds)) {
        lastXid = RECOVERABLE_XIDS[Math.floor(rng.next() * RECOVERABLE_XIDS.length)]!;
      }
    },
    reading(nowMs) {
      const active = busy();
      return {
        deviceId: opts.id,
        tsMs: nowMs,
        utilizationPct: util,
        memoryUsedMib: Math.round(memLevel),
        memoryTotalMib: H100.memoryTotalMib,
        temperatureC: Math.round(tempC),
        powerW,
        // Boost clock under load, 1,000 MHz at idle (product defaults).
        smClockMhz: active && utilLevel > 10 ? H100.smClockMaxMhz : H100.smClockIdleMhz,
        state: gpu.state,
        workloadId,
        // HBM3 runs a few degrees above the die under load.
        memoryTemperatureC: Math.round(tempC + 2 + 4 * (util / 100)),
        powerLimitW: H100.powerLimitW,
        energyMj: Math.round(energyMj),
        xidErrors: lastXid,
      };
    },
    nvidiaSmiLine(index) {
      const r = gpu.reading(0);
      return formatNvidiaSmiLine({
        index,
        uuid,
        name: H100.name,
        utilizationPct: r.utilizationPct,
        memoryUsedMib: r.memoryUsedMib,
        memoryTotalMib: r.memoryTotalMib,
        temperatureC: r.temperatureC,
        powerW: r.powerW,
        smClockMhz: r.smClockMhz,
      });
    },
  };
  return gpu;
}
