import { describe, expect, it } from 'vitest';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { checkAsicSample, checkGpuSample, MAX_ID_LENGTH } from './sample-checks.js';

const now = 1_800_000_000_000;
const w = { nowMs: now, maxAgeMs: 3600_000, maxSkewMs: 60_000 };
const g: GpuSample = {
  deviceId: 'gpu-a-0001', tsMs: now, utilizationPct: 90, memoryUsedMib: 1000, memoryTotalMib: 81559, temperatureC: 65, powerW: 600,
  smClockMhz: 1980, state: GpuState.GPU_STATE_BUSY, workloadId: 'w', memoryTemperatureC: 70, powerLimitW: 700, energyMj: 1, xidErrors: 0,
};
const a: AsicSample = {
  deviceId: 'asic-a-00001', tsMs: now, hashrate5sThs: 270, hashrateAvgThs: 270, powerW: 3645, boardTemperaturesC: [60, 60, 60],
  chipTemperaturesC: [70, 70, 70], fanRpm: [1, 2, 3, 4], acceptedShares: 1, rejectedShares: 0, hardwareErrors: 0, miningState: MiningState.MINING_STATE_MINING, powerTargetW: 0,
};

const REAL_MAX = 3.4028234663852886e38;

describe('sample checks', () => {
  it('accepts plausible samples', () => {
    expect(checkGpuSample(g, w)).toBeNull();
    expect(checkAsicSample(a, w)).toBeNull();
  });

  it('rejects samples from too far in the past or future', () => {
    expect(checkGpuSample({ ...g, tsMs: now - 3600_001 }, w)).toEqual({ reason: 'bad_timestamp', field: 'ts_ms' });
    expect(checkAsicSample({ ...a, tsMs: now + 60_001 }, w)).toEqual({ reason: 'bad_timestamp', field: 'ts_ms' });
  });

  it('rejects impossible readings, naming the field', () => {
    expect(checkGpuSample({ ...g, utilizationPct: 101 }, w)).toEqual({ reason: 'invalid_value', field: 'utilization_pct' });
    expect(checkGpuSample({ ...g, powerW: -1 }, w)).toEqual({ reason: 'invalid_value', field: 'power_w' });
    expect(checkGpuSample({ ...g, memoryUsedMib: 90000 }, w)).toEqual({ reason: 'invalid_value', field: 'memory_used_mib' });
    expect(checkGpuSample({ ...g, temperatureC: Number.NaN }, w)).toEqual({ reason: 'invalid_value', field: 'temperature_c' });
    expect(checkAsicSample({ ...a, hashrate5sThs: Number.POSITIVE_INFINITY }, w)).toEqual({ reason: 'invalid_value', field: 'hashrate_5s_ths' });
    expect(checkAsicSample({ ...a, chipTemperaturesC: [70, 400, 70] }, w)).toEqual({ reason: 'invalid_value', field: 'chip_temperatures_c' });
    expect(checkAsicSample({ ...a, fanRpm: Array(17).fill(1) }, w)).toEqual({ reason: 'invalid_value', field: 'fan_rpm' });
  });

  // gpu_telemetry: integer xid_errors, bigint energy_mj, real everything else, text ids
  it.each<[Partial<GpuSample>, string]>([
    [{ xidErrors: 4e9 }, 'xid_errors'],
    [{ xidErrors: 2 ** 31 }, 'xid_errors'],
    [{ xidErrors: 1.5 }, 'xid_errors'],
    [{ energyMj: 2 ** 53 }, 'energy_mj'],
    [{ energyMj: -1 }, 'energy_mj'],
    [{ energyMj: 0.5 }, 'energy_mj'],
    [{ memoryTotalMib: 1e39, memoryUsedMib: 0 }, 'memory_total_mib'],
    [{ memoryUsedMib: 1e-46 }, 'memory_used_mib'],
    [{ powerLimitW: 1e39 }, 'power_limit_w'],
    [{ smClockMhz: 3.5e38 }, 'sm_clock_mhz'],
    [{ memoryTemperatureC: 1e39 }, 'memory_temperature_c'],
    [{ memoryTemperatureC: Number.NaN }, 'memory_temperature_c'],
    [{ utilizationPct: 1e-50 }, 'utilization_pct'],
    [{ temperatureC: -1e-50 }, 'temperature_c'],
  ])('GPU %o is out of its column range (%s)', (over, field) => {
    expect(checkGpuSample({ ...g, ...over }, w)).toEqual({ reason: 'out_of_range', field });
  });

  it('accepts GPU values at the edges of their columns', () => {
    expect(checkGpuSample({ ...g, xidErrors: 2 ** 31 - 1, energyMj: Number.MAX_SAFE_INTEGER, powerLimitW: REAL_MAX, memoryUsedMib: 1e-40 }, w)).toBeNull();
  });

  it.each<[Partial<GpuSample>, string]>([
    [{ workloadId: 'w\u0000' }, 'workload_id'],
    [{ workloadId: 'w'.repeat(MAX_ID_LENGTH + 1) }, 'workload_id'],
    [{ deviceId: 'gpu\u0000' }, 'device_id'],
    [{ deviceId: 'g'.repeat(MAX_ID_LENGTH + 1) }, 'device_id'],
  ])('GPU %o has text a text column refuses or should not hold (%s)', (over, field) => {
    expect(checkGpuSample({ ...g, ...over }, w)).toEqual({ reason: 'invalid_text', field });
  });

  // asic_telemetry: integer[] fan_rpm, bigint shares and errors, real and real[] the rest
  it.each<[Partial<AsicSample>, string]>([
    [{ fanRpm: [4000, 4e9, 4000, 4000] }, 'fan_rpm'],
    [{ fanRpm: [4000.5] }, 'fan_rpm'],
    [{ acceptedShares: 2 ** 64 }, 'accepted_shares'],
    [{ rejectedShares: 2 ** 53 }, 'rejected_shares'],
    [{ hardwareErrors: 1e20 }, 'hardware_errors'],
    [{ hashrate5sThs: 1e39 }, 'hashrate_5s_ths'],
    [{ hashrateAvgThs: 1e39 }, 'hashrate_avg_ths'],
    [{ powerW: 1e39 }, 'power_w'],
    [{ powerTargetW: 1e39 }, 'power_target_w'],
    [{ boardTemperaturesC: [60, 1e-50] }, 'board_temperatures_c'],
    [{ chipTemperaturesC: [-1e-50] }, 'chip_temperatures_c'],
  ])('ASIC %o is out of its column range (%s)', (over, field) => {
    expect(checkAsicSample({ ...a, ...over }, w)).toEqual({ reason: 'out_of_range', field });
  });

  // Every numeric field but the enums (written as their names) goes into a real, integer or bigint
  // column, and 1e-50 fits none of them: real underflows, the integers are not integers. A field
  // the checks forget is caught here.
  it('refuses 1e-50 in every numeric field of a GPU and an ASIC sample', () => {
    const enums = new Set(['state', 'miningState']);
    const numeric = (o: object) => Object.entries(o).filter(([k, v]) => typeof v === 'number' && !enums.has(k)).map(([k]) => k);
    for (const k of numeric(g)) expect(checkGpuSample({ ...g, [k]: 1e-50 }, w), k).not.toBeNull();
    for (const k of numeric(a)) expect(checkAsicSample({ ...a, [k]: 1e-50 }, w), k).not.toBeNull();
    const arrays = (o: object) => Object.entries(o).filter(([, v]) => Array.isArray(v)).map(([k]) => k);
    for (const k of arrays(a)) expect(checkAsicSample({ ...a, [k]: [1e-50] }, w), k).not.toBeNull();
    expect(numeric(g).length).toBeGreaterThan(8);
    expect(arrays(a)).toEqual(expect.arrayContaining(['boardTemperaturesC', 'chipTemperaturesC', 'fanRpm']));
  });

  it('rejects an ASIC device id a text column refuses', () => {
    expect(checkAsicSample({ ...a, deviceId: 'asic\u0000' }, w)).toEqual({ reason: 'invalid_text', field: 'device_id' });
  });
});
