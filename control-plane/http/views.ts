// JSON shapes of the registry for the REST API (snake_case, ISO times).
import type { AsicSample, GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { GPU_STATE_NAME, MINING_STATE_NAME } from '../db/telemetry-writer.js';
import type { DeviceState, Registry, SiteState } from '../registry/registry.js';

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

export function gpuSampleView(s: GpuSample) {
  return {
    ts: new Date(s.tsMs).toISOString(),
    utilization_pct: s.utilizationPct,
    memory_used_mib: s.memoryUsedMib,
    memory_total_mib: s.memoryTotalMib,
    temperature_c: s.temperatureC,
    memory_temperature_c: s.memoryTemperatureC,
    power_w: s.powerW,
    power_limit_w: s.powerLimitW,
    sm_clock_mhz: s.smClockMhz,
    state: GPU_STATE_NAME[s.state] ?? 'unknown',
    workload_id: s.workloadId || null,
    energy_mj: s.energyMj,
    xid_errors: s.xidErrors,
  };
}

export function asicSampleView(s: AsicSample) {
  return {
    ts: new Date(s.tsMs).toISOString(),
    hashrate_ths: s.hashrate5sThs,
    hashrate_avg_ths: s.hashrateAvgThs,
    power_w: s.powerW,
    board_temperatures_c: s.boardTemperaturesC,
    chip_temperatures_c: s.chipTemperaturesC,
    fan_rpm: s.fanRpm,
    accepted_shares: s.acceptedShares,
    rejected_shares: s.rejectedShares,
    hardware_errors: s.hardwareErrors,
    mining_state: MINING_STATE_NAME[s.miningState] ?? 'unknown',
    power_target_w: s.powerTargetW || null,
  };
}

export function deviceView(d: DeviceState) {
  const latest = d.kind === 'gpu' ? (d.gpu ? gpuSampleView(d.gpu) : null) : d.asic ? asicSampleView(d.asic) : null;
  return {
    id: d.id,
    site: d.siteId,
    kind: d.kind,
    model: d.model,
    driver: d.driver,
    ...(d.endpoint ? { endpoint: d.endpoint } : {}),
    serial: d.serial,
    rated_power_w: d.ratedPowerW,
    ...(d.kind === 'asic' ? { rated_hashrate_ths: d.ratedHashrateThs } : { memory_total_mib: d.memoryTotalMib }),
    online: d.online,
    last_seen: isoOrNull(d.lastSeenMs),
    latest,
  };
}

/** live totals of a site's online devices */
export function siteTotals(registry: Registry, siteId: string) {
  let gpus = 0, asics = 0, gpusOnline = 0, asicsOnline = 0, gpusBusy = 0, asicsMining = 0;
  let power = 0, hash = 0, utilSum = 0;
  for (const d of registry.devicesOf(siteId)) {
    if (d.kind === 'gpu') {
      gpus++;
      if (d.online && d.gpu) {
        gpusOnline++;
        power += d.gpu.powerW;
        utilSum += d.gpu.utilizationPct;
        if (d.gpu.workloadId) gpusBusy++;
      }
    } else {
      asics++;
      if (d.online && d.asic) {
        asicsOnline++;
        power += d.asic.powerW;
        hash += d.asic.hashrate5sThs;
        if (d.asic.hashrate5sThs > 0) asicsMining++;
      }
    }
  }
  return {
    gpus, asics, gpus_online: gpusOnline, asics_online: asicsOnline, gpus_busy: gpusBusy, asics_mining: asicsMining,
    hashrate_ths: round(hash), power_w: round(power, 1),
    gpu_utilization_pct: gpusOnline ? round(utilSum / gpusOnline) : null,
    utilSum,
  };
}

export function siteView(registry: Registry, s: SiteState, totals = siteTotals(registry, s.id)) {
  const { utilSum: _u, ...shown } = totals;
  return {
    id: s.id,
    name: s.name,
    region: s.region,
    power_capacity_kw: s.powerCapacityKw,
    online: s.online,
    last_seen: isoOrNull(s.lastSeenMs),
    agent: { version: s.agentVersion, session: s.agentSession, hostname: s.agentHostname, stream_connected: s.streamSession !== null },
    ...shown,
  };
}

/** one walk over the fleet's devices (GET /api/v1/status is polled; a fleet is 100,000 devices) */
export function statusView(registry: Registry) {
  let utilSum = 0, gpusOnline = 0;
  const sites = registry.sites().map((s) => {
    const t = siteTotals(registry, s.id);
    utilSum += t.utilSum;
    gpusOnline += t.gpus_online;
    return siteView(registry, s, t);
  });
  return {
    sites,
    fleet: {
      sites_online: sites.filter((s) => s.online).length,
      sites_total: sites.length,
      devices_online: sites.reduce((n, s) => n + s.gpus_online + s.asics_online, 0),
      devices_total: sites.reduce((n, s) => n + s.gpus + s.asics, 0),
      hashrate_ths: round(sites.reduce((n, s) => n + s.hashrate_ths, 0)),
      power_w: round(sites.reduce((n, s) => n + s.power_w, 0), 1),
      gpu_utilization_pct: gpusOnline ? round(utilSum / gpusOnline) : null,
    },
  };
}
