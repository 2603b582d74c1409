// Per-device readings on the agent's /metrics, rendered as Prometheus text at scrape time from
// the last tick's samples (docs/observability.md). GPUs under the names and labels of NVIDIA's
// dcgm-exporter (its default counters: DCGM_FI_DEV_GPU_UTIL, …; labels gpu, UUID, device,
// modelName, Hostname), so dashboards and alerts written for it work on an HCP site. ASICs in the
// style of the cgminer exporters (cgminer_hashrate_ghs{miner, window}, cgminer_temperature_celsius,
// …). The sampling loop copies each sample's numbers into one preallocated Float64Array (a row
// per device): holding the tick's sample objects instead kept 5,000 of them alive across a
// scavenge every tick, which cost the agent 34 MB of RSS and 1.5 % of a core at 5,000 ASICs
// (bench:agent). Every string is built on a scrape, and each device's label set is escaped once
// and kept (the inventory is fixed for the agent's life).
// Labels are bounded: one agent serves one site, so there are at most the site's device count of
// label sets per family.
import type { AsicSample, GpuSample } from '../proto/gen/hcp/v1/telemetry.js';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { DeviceKind, type Device } from '../proto/gen/hcp/v1/gateway.js';

export interface DeviceMetrics {
  /** the last tick's readings (called by the sampling loop: two assignments) */
  update(gpus: readonly GpuSample[], asics: readonly AsicSample[]): void;
  /**
   * Prometheus text exposition (0.0.4) of the held readings, a few hundred devices of one family
   * at a time: written to the scrape's response chunk by chunk, each is garbage before the next
   * scavenge. Building the whole text at once (5,000 ASICs: 110,000 lines, 10 MB) kept it alive
   * through collections, and the old generation it was promoted to stayed 30 MB larger.
   */
  chunks(): Generator<string>;
  /** all of it as one string (tests) */
  render(): string;
}

/** devices per chunk of the exposition */
const CHUNK_DEVICES = 250;

/** a label value escaped per the text format: backslash, double quote, newline */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** a number as the text format writes it */
function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** one device's readings as the sampling loop copied them: a row of a Float64Array */
type Row = { v: Float64Array; o: number };

interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  /** one or more lines of `name{labels} value` for one device's row */
  lines(r: Row, labels: string, out: string[]): void;
}

const family = (name: string, type: 'gauge' | 'counter', help: string, field: number): Family => ({
  name, type, help, lines: (r, l, out) => { out.push(`${name}{${l}} ${num(r.v[r.o + field]!)}`); },
});

// GPU row: the fields dcgm-exporter's default counters read (etc/default-counters.csv)
const G = { sm: 0, memTemp: 1, temp: 2, power: 3, energy: 4, util: 5, xid: 6, fbFree: 7, fbUsed: 8, limit: 9 } as const;
const GPU_STRIDE = 10;

function copyGpu(s: GpuSample, v: Float64Array, o: number): void {
  v[o + G.sm] = s.smClockMhz;
  v[o + G.memTemp] = s.memoryTemperatureC;
  v[o + G.temp] = s.temperatureC;
  v[o + G.power] = s.powerW;
  v[o + G.energy] = Number(s.energyMj);
  v[o + G.util] = s.utilizationPct;
  v[o + G.xid] = s.xidErrors;
  v[o + G.fbFree] = Math.max(0, s.memoryTotalMib - s.memoryUsedMib);
  v[o + G.fbUsed] = s.memoryUsedMib;
  v[o + G.limit] = s.powerLimitW;
}

const GPU_FAMILIES: Family[] = [
  family('DCGM_FI_DEV_SM_CLOCK', 'gauge', 'SM clock frequency (in MHz).', G.sm),
  family('DCGM_FI_DEV_MEMORY_TEMP', 'gauge', 'Memory temperature (in C).', G.memTemp),
  family('DCGM_FI_DEV_GPU_TEMP', 'gauge', 'GPU temperature (in C).', G.temp),
  family('DCGM_FI_DEV_POWER_USAGE', 'gauge', 'Power draw (in W).', G.power),
  family('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', 'counter', 'Total energy consumption since boot (in mJ).', G.energy),
  family('DCGM_FI_DEV_GPU_UTIL', 'gauge', 'GPU utilization (in %).', G.util),
  family('DCGM_FI_DEV_XID_ERRORS', 'gauge', 'Value of the last XID error encountered.', G.xid),
  family('DCGM_FI_DEV_FB_FREE', 'gauge', 'Framebuffer memory free (in MiB).', G.fbFree),
  family('DCGM_FI_DEV_FB_USED', 'gauge', 'Framebuffer memory used (in MiB).', G.fbUsed),
  // not a default counter, but a DCGM field (power.limit): the cap the GPU runs under
  family('DCGM_FI_DEV_POWER_MGMT_LIMIT', 'gauge', 'Power management limit (in W).', G.limit),
];

// ASIC row: scalars, then up to MAX_PER sensors per list (an S21 has 3 hashboards and 4 fans)
const A = { up: 0, mining: 1, h5: 2, havg: 3, power: 4, target: 5, accepted: 6, rejected: 7, hw: 8, state: 9, boards: 10, chips: 11, fans: 12, lists: 13 } as const;
const MAX_PER = 8;
const ASIC_STRIDE = A.lists + 3 * MAX_PER;

function copyAsic(s: AsicSample, v: Float64Array, o: number): void {
  const st = s.miningState;
  v[o + A.up] = st === MiningState.MINING_STATE_UNREACHABLE || st === MiningState.MINING_STATE_FAULT ? 0 : 1;
  v[o + A.mining] = st === MiningState.MINING_STATE_MINING || st === MiningState.MINING_STATE_RAMPING ? 1 : 0;
  v[o + A.h5] = s.hashrate5sThs * 1000;
  v[o + A.havg] = s.hashrateAvgThs * 1000;
  v[o + A.power] = s.powerW;
  v[o + A.target] = s.powerTargetW;
  v[o + A.accepted] = Number(s.acceptedShares);
  v[o + A.rejected] = Number(s.rejectedShares);
  v[o + A.hw] = Number(s.hardwareErrors);
  v[o + A.state] = st;
  copyList(s.boardTemperaturesC, v, o, 0);
  copyList(s.chipTemperaturesC, v, o, 1);
  copyList(s.fanRpm, v, o, 2);
}

/** list k of a row (0 boards, 1 chips, 2 fans): its length, then its values */
function copyList(xs: readonly number[], v: Float64Array, o: number, k: number): void {
  const n = Math.min(xs.length, MAX_PER);
  v[o + A.boards + k] = n;
  for (let i = 0; i < n; i++) v[o + A.lists + k * MAX_PER + i] = xs[i]!;
}

/** the i-th value of list k (0 boards, 1 chips, 2 fans) of a row, and how many it has */
const listOf = (r: Row, k: number) => ({ n: r.v[r.o + A.boards + k]!, at: (i: number) => r.v[r.o + A.lists + k * MAX_PER + i]! });

const ASIC_FAMILIES: Family[] = [
  family('cgminer_up', 'gauge', 'Whether the miner answered its last read and is not in fault (1) or not (0).', A.up),
  family('cgminer_mining', 'gauge', 'Whether the miner is hashing or ramping up (1), or asleep, in fault or unreachable (0).', A.mining),
  {
    name: 'cgminer_hashrate_ghs', type: 'gauge', help: 'Hashrate in GH/s as cgminer reports it ("GHS 5s" and "GHS av"), by window.',
    lines: (r, l, out) => {
      out.push(`cgminer_hashrate_ghs{${l},window="5s"} ${num(r.v[r.o + A.h5]!)}`);
      out.push(`cgminer_hashrate_ghs{${l},window="avg"} ${num(r.v[r.o + A.havg]!)}`);
    },
  },
  family('cgminer_power_watts', 'gauge', 'Power draw of the miner in watts.', A.power),
  family('cgminer_power_target_watts', 'gauge', 'Power target set on the miner in watts (0 = the model\'s stock power).', A.target),
  {
    name: 'cgminer_temperature_celsius', type: 'gauge', help: 'Hottest sensor per hashboard in degrees Celsius, by board and sensor (pcb, chip).',
    lines: (r, l, out) => {
      const boards = listOf(r, 0);
      const chips = listOf(r, 1);
      for (let i = 0; i < boards.n; i++) out.push(`cgminer_temperature_celsius{${l},board="${i}",sensor="pcb"} ${num(boards.at(i))}`);
      for (let i = 0; i < chips.n; i++) out.push(`cgminer_temperature_celsius{${l},board="${i}",sensor="chip"} ${num(chips.at(i))}`);
    },
  },
  {
    name: 'cgminer_fan_speed_rpm', type: 'gauge', help: 'Fan speed in RPM, by fan.',
    lines: (r, l, out) => {
      const fans = listOf(r, 2);
      for (let i = 0; i < fans.n; i++) out.push(`cgminer_fan_speed_rpm{${l},fan="${i + 1}"} ${num(fans.at(i))}`);
    },
  },
  family('cgminer_shares_accepted_total', 'counter', 'Shares the pool accepted.', A.accepted),
  family('cgminer_shares_rejected_total', 'counter', 'Shares the pool rejected.', A.rejected),
  family('cgminer_hardware_errors_total', 'counter', 'Hardware errors the miner counted.', A.hw),
];

const STATES: Array<[MiningState, string]> = [
  [MiningState.MINING_STATE_MINING, 'mining'],
  [MiningState.MINING_STATE_RAMPING, 'ramping'],
  [MiningState.MINING_STATE_SLEEPING, 'sleeping'],
  [MiningState.MINING_STATE_FAULT, 'fault'],
  [MiningState.MINING_STATE_UNREACHABLE, 'unreachable'],
];

/**
 * Rows of one kind of device: a row per device of the inventory (and any other the drivers
 * report, added once), the devices of the last update marked by its tick.
 */
function rowTable(stride: number, ids: readonly string[]) {
  const index = new Map<string, number>();
  let values = new Float64Array(Math.max(1, ids.length) * stride);
  let seen = new Uint32Array(Math.max(1, ids.length));
  let tick = 0;
  const order: string[] = [];
  const add = (id: string) => {
    const i = order.length;
    index.set(id, i);
    order.push(id);
    if ((i + 1) * stride > values.length) {
      const grown = new Float64Array(values.length * 2);
      grown.set(values);
      values = grown;
      const s2 = new Uint32Array(seen.length * 2);
      s2.set(seen);
      seen = s2;
    }
    return i;
  };
  for (const id of ids) add(id);
  return {
    /** a new tick: rows not written in it are not rendered */
    next() {
      tick++;
    },
    write<T extends { deviceId: string }>(s: T, copy: (s: T, v: Float64Array, o: number) => void) {
      const i = index.get(s.deviceId) ?? add(s.deviceId);
      seen[i] = tick;
      copy(s, values, i * stride);
    },
    /** this tick's rows, in inventory order */
    *rows(): Generator<{ id: string; row: Row }> {
      const row: Row = { v: values, o: 0 };
      for (let i = 0; i < order.length; i++) {
        if (seen[i] !== tick || tick === 0) continue;
        row.o = i * stride;
        yield { id: order[i]!, row };
      }
    },
    count: () => {
      let n = 0;
      for (let i = 0; i < order.length; i++) if (seen[i] === tick && tick > 0) n++;
      return n;
    },
  };
}

export function createDeviceMetrics(o: { inventory: readonly Device[]; hostname: string }): DeviceMetrics {
  const host = escapeLabel(o.hostname);
  // escaped label sets, one per device, made once
  const gpuLabels = new Map<string, string>();
  const asicLabels = new Map<string, string>();
  const gpus = o.inventory.filter((d) => d.kind === DeviceKind.DEVICE_KIND_GPU);
  for (const [i, d] of gpus.entries()) gpuLabels.set(d.id, `gpu="${i}",UUID="${escapeLabel(d.serial || d.id)}",device="nvidia${i}",modelName="${escapeLabel(d.model)}",Hostname="${host}",hcp_device="${escapeLabel(d.id)}"`);
  for (const d of o.inventory) {
    if (d.kind === DeviceKind.DEVICE_KIND_ASIC) asicLabels.set(d.id, `miner="${escapeLabel(d.id)}",model="${escapeLabel(d.model)}"`);
  }
  // a device the inventory did not list (no driver does this today): labelled by its id alone
  const gpuLabel = (id: string) => gpuLabels.get(id) ?? `gpu="",UUID="${escapeLabel(id)}",device="",modelName="",Hostname="${host}",hcp_device="${escapeLabel(id)}"`;
  const asicLabel = (id: string) => asicLabels.get(id) ?? `miner="${escapeLabel(id)}",model=""`;

  const gpuRows = rowTable(GPU_STRIDE, gpus.map((d) => d.id));
  const asicRows = rowTable(ASIC_STRIDE, o.inventory.filter((d) => d.kind === DeviceKind.DEVICE_KIND_ASIC).map((d) => d.id));

  function* family(f: Family, table: ReturnType<typeof rowTable>, label: (id: string) => string): Generator<string> {
    let out: string[] = [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`];
    let n = 0;
    for (const { id, row } of table.rows()) {
      f.lines(row, label(id), out);
      if (++n % CHUNK_DEVICES === 0) {
        yield `${out.join('\n')}\n`;
        out = [];
      }
    }
    if (out.length) yield `${out.join('\n')}\n`;
  }

  function* chunks(): Generator<string> {
    if (gpuRows.count()) for (const f of GPU_FAMILIES) yield* family(f, gpuRows, gpuLabel);
    if (asicRows.count() || asicLabels.size) {
      for (const f of ASIC_FAMILIES) yield* family(f, asicRows, asicLabel);
      // the site's ASICs by the state the miners report: one series per state, for fleet panels
      const counts = new Map<number, number>();
      for (const { row } of asicRows.rows()) {
        const st = row.v[row.o + A.state]!;
        counts.set(st, (counts.get(st) ?? 0) + 1);
      }
      const out = ['# HELP hcp_agent_asics ASICs in the last tick by the state the miner reports', '# TYPE hcp_agent_asics gauge'];
      for (const [st, name] of STATES) out.push(`hcp_agent_asics{state="${name}"} ${counts.get(st) ?? 0}`);
      yield `${out.join('\n')}\n`;
    }
  }

  return {
    update(g, a) {
      gpuRows.next();
      asicRows.next();
      for (const s of g) gpuRows.write(s, copyGpu);
      for (const s of a) asicRows.write(s, copyAsic);
    },
    chunks,
    render: () => [...chunks()].join(''),
  };
}
