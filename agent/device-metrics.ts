// Per-device readings on the agent's /metrics, rendered as Prometheus text at scrape time from
// the last tick's samples (docs/observability.md). GPUs under the names and labels of NVIDIA's
// dcgm-exporter (its default counters: DCGM_FI_DEV_GPU_UTIL, …; labels gpu, UUID, device,
// modelName, Hostname), so dashboards and alerts written for it work on an HCP site. ASICs in the
// style of the cgminer exporters (cgminer_hashrate_ghs{miner, window}, cgminer_temperature_celsius,
// …). The sampling loop only swaps two array references; every string is built on a scrape, and
// each device's label set is escaped once and kept (the inventory is fixed for the agent's life).
// Labels are bounded: one agent serves one site, so there are at most the site's device count of
// label sets per family.
import type { AsicSample, GpuSample } from '../proto/gen/hcp/v1/telemetry.js';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { DeviceKind, type Device } from '../proto/gen/hcp/v1/gateway.js';

export interface DeviceMetrics {
  /** the last tick's readings (called by the sampling loop: two assignments) */
  update(gpus: readonly GpuSample[], asics: readonly AsicSample[]): void;
  /** Prometheus text exposition (0.0.4) of the held readings */
  render(): string;
}

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

interface Family<T> {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  /** one or more lines of `name{labels} value` for one device's sample */
  lines(s: T, labels: string, out: string[]): void;
}

const gpuFamily = (name: string, type: 'gauge' | 'counter', help: string, value: (s: GpuSample) => number): Family<GpuSample> => ({
  name, type, help, lines: (s, l, out) => { out.push(`${name}{${l}} ${num(value(s))}`); },
});

// dcgm-exporter's default counters that a GpuSample carries (etc/default-counters.csv).
const GPU_FAMILIES: Family<GpuSample>[] = [
  gpuFamily('DCGM_FI_DEV_SM_CLOCK', 'gauge', 'SM clock frequency (in MHz).', (s) => s.smClockMhz),
  gpuFamily('DCGM_FI_DEV_MEMORY_TEMP', 'gauge', 'Memory temperature (in C).', (s) => s.memoryTemperatureC),
  gpuFamily('DCGM_FI_DEV_GPU_TEMP', 'gauge', 'GPU temperature (in C).', (s) => s.temperatureC),
  gpuFamily('DCGM_FI_DEV_POWER_USAGE', 'gauge', 'Power draw (in W).', (s) => s.powerW),
  gpuFamily('DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION', 'counter', 'Total energy consumption since boot (in mJ).', (s) => Number(s.energyMj)),
  gpuFamily('DCGM_FI_DEV_GPU_UTIL', 'gauge', 'GPU utilization (in %).', (s) => s.utilizationPct),
  gpuFamily('DCGM_FI_DEV_XID_ERRORS', 'gauge', 'Value of the last XID error encountered.', (s) => s.xidErrors),
  gpuFamily('DCGM_FI_DEV_FB_FREE', 'gauge', 'Framebuffer memory free (in MiB).', (s) => Math.max(0, s.memoryTotalMib - s.memoryUsedMib)),
  gpuFamily('DCGM_FI_DEV_FB_USED', 'gauge', 'Framebuffer memory used (in MiB).', (s) => s.memoryUsedMib),
  // not a default counter, but a DCGM field (power.limit): the cap the GPU runs under
  gpuFamily('DCGM_FI_DEV_POWER_MGMT_LIMIT', 'gauge', 'Power management limit (in W).', (s) => s.powerLimitW),
];

const asicFamily = (name: string, type: 'gauge' | 'counter', help: string, value: (s: AsicSample) => number): Family<AsicSample> => ({
  name, type, help, lines: (s, l, out) => { out.push(`${name}{${l}} ${num(value(s))}`); },
});

const ASIC_FAMILIES: Family<AsicSample>[] = [
  asicFamily('cgminer_up', 'gauge', 'Whether the miner answered its last read and is not in fault (1) or not (0).',
    (s) => (s.miningState === MiningState.MINING_STATE_UNREACHABLE || s.miningState === MiningState.MINING_STATE_FAULT ? 0 : 1)),
  asicFamily('cgminer_mining', 'gauge', 'Whether the miner is hashing or ramping up (1), or asleep, in fault or unreachable (0).',
    (s) => (s.miningState === MiningState.MINING_STATE_MINING || s.miningState === MiningState.MINING_STATE_RAMPING ? 1 : 0)),
  {
    name: 'cgminer_hashrate_ghs', type: 'gauge', help: 'Hashrate in GH/s as cgminer reports it ("GHS 5s" and "GHS av"), by window.',
    lines: (s, l, out) => {
      out.push(`cgminer_hashrate_ghs{${l},window="5s"} ${num(s.hashrate5sThs * 1000)}`);
      out.push(`cgminer_hashrate_ghs{${l},window="avg"} ${num(s.hashrateAvgThs * 1000)}`);
    },
  },
  asicFamily('cgminer_power_watts', 'gauge', 'Power draw of the miner in watts.', (s) => s.powerW),
  asicFamily('cgminer_power_target_watts', 'gauge', 'Power target set on the miner in watts (0 = the model\'s stock power).', (s) => s.powerTargetW),
  {
    name: 'cgminer_temperature_celsius', type: 'gauge', help: 'Hottest sensor per hashboard in degrees Celsius, by board and sensor (pcb, chip).',
    lines: (s, l, out) => {
      for (const [i, t] of s.boardTemperaturesC.entries()) out.push(`cgminer_temperature_celsius{${l},board="${i}",sensor="pcb"} ${num(t)}`);
      for (const [i, t] of s.chipTemperaturesC.entries()) out.push(`cgminer_temperature_celsius{${l},board="${i}",sensor="chip"} ${num(t)}`);
    },
  },
  {
    name: 'cgminer_fan_speed_rpm', type: 'gauge', help: 'Fan speed in RPM, by fan.',
    lines: (s, l, out) => {
      for (const [i, r] of s.fanRpm.entries()) out.push(`cgminer_fan_speed_rpm{${l},fan="${i + 1}"} ${num(r)}`);
    },
  },
  asicFamily('cgminer_shares_accepted_total', 'counter', 'Shares the pool accepted.', (s) => Number(s.acceptedShares)),
  asicFamily('cgminer_shares_rejected_total', 'counter', 'Shares the pool rejected.', (s) => Number(s.rejectedShares)),
  asicFamily('cgminer_hardware_errors_total', 'counter', 'Hardware errors the miner counted.', (s) => Number(s.hardwareErrors)),
];

const STATES: Array<[MiningState, string]> = [
  [MiningState.MINING_STATE_MINING, 'mining'],
  [MiningState.MINING_STATE_RAMPING, 'ramping'],
  [MiningState.MINING_STATE_SLEEPING, 'sleeping'],
  [MiningState.MINING_STATE_FAULT, 'fault'],
  [MiningState.MINING_STATE_UNREACHABLE, 'unreachable'],
];

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

  let lastGpus: readonly GpuSample[] = [];
  let lastAsics: readonly AsicSample[] = [];

  function family<T extends { deviceId: string }>(f: Family<T>, samples: readonly T[], label: (id: string) => string, out: string[]): void {
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of samples) f.lines(s, label(s.deviceId), out);
  }

  return {
    update(g, a) {
      lastGpus = g;
      lastAsics = a;
    },
    render() {
      const out: string[] = [];
      if (lastGpus.length) for (const f of GPU_FAMILIES) family(f, lastGpus, gpuLabel, out);
      if (lastAsics.length || asicLabels.size) {
        for (const f of ASIC_FAMILIES) family(f, lastAsics, asicLabel, out);
        // the site's ASICs by the state the miners report: one series per state, for fleet panels
        const counts = new Map<MiningState, number>();
        for (const s of lastAsics) counts.set(s.miningState, (counts.get(s.miningState) ?? 0) + 1);
        out.push('# HELP hcp_agent_asics ASICs in the last tick by the state the miner reports', '# TYPE hcp_agent_asics gauge');
        for (const [st, name] of STATES) out.push(`hcp_agent_asics{state="${name}"} ${counts.get(st) ?? 0}`);
      }
      return out.length ? `${out.join('\n')}\n` : '';
    },
  };
}
