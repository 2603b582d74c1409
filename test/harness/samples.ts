// Device samples for tests.
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';

export function gpu(deviceId: string, tsMs: number, util: number, powerW: number): GpuSample {
  return {
    deviceId, tsMs, utilizationPct: util, memoryUsedMib: util > 50 ? 60000 : 0, memoryTotalMib: 81559, temperatureC: 50,
    powerW, smClockMhz: 1980, state: util > 50 ? GpuState.GPU_STATE_BUSY : GpuState.GPU_STATE_IDLE, workloadId: util > 50 ? 'wl-1' : '',
    memoryTemperatureC: 52, powerLimitW: 700, energyMj: 1000, xidErrors: 0,
  };
}

export function asic(deviceId: string, tsMs: number, ths: number, powerW: number): AsicSample {
  return {
    deviceId, tsMs, hashrate5sThs: ths, hashrateAvgThs: ths, powerW, boardTemperaturesC: [60, 61, 62], chipTemperaturesC: [70, 71, 75],
    fanRpm: [4000, 4100, 4050, 4020], acceptedShares: 10, rejectedShares: 1, hardwareErrors: 2, miningState: MiningState.MINING_STATE_MINING, powerTargetW: 0,
  };
}

