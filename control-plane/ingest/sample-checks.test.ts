import { describe, expect, it } from 'vitest';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { checkAsicSample, checkGpuSample } from './sample-checks.js';

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

describe('sample checks', () => {
  it('accepts plausible samples', () => {
    expect(checkGpuSample(g, w)).toBeNull();
    expect(checkAsicSample(a, w)).toBeNull();
  });

  it('rejects samples from too far in the past or future', () => {
    expect(checkGpuSample({ ...g, tsMs: now - 3600_001 }, w)).toBe('bad_timestamp');
    expect(checkAsicSample({ ...a, tsMs: now + 60_001 }, w)).toBe('bad_timestamp');
  });

  it('rejects impossible readings', () => {
    expect(checkGpuSample({ ...g, utilizationPct: 101 }, w)).toBe('invalid_value');
    expect(checkGpuSample({ ...g, powerW: -1 }, w)).toBe('invalid_value');
    expect(checkGpuSample({ ...g, memoryUsedMib: 90000 }, w)).toBe('invalid_value');
    expect(checkGpuSample({ ...g, temperatureC: Number.NaN }, w)).toBe('invalid_value');
    expect(checkAsicSample({ ...a, hashrate5sThs: Number.POSITIVE_INFINITY }, w)).toBe('invalid_value');
    expect(checkAsicSample({ ...a, chipTemperaturesC: [70, 400, 70] }, w)).toBe('invalid_value');
  });
});
