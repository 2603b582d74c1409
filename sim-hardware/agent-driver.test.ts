import { describe, expect, it } from 'vitest';
import { DeviceKind } from '../proto/gen/hcp/v1/gateway.js';
import { GpuState, MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { createManualClock } from './clock.js';
import { createSimFleet } from './fleet.js';
import { createSimDriver } from './agent-driver.js';

describe('sim driver', () => {
  const clock = createManualClock(1_750_000_000_000);
  const fleet = createSimFleet({ site: 'texas-1', gpus: 2, asics: 1, asicModel: 's21', seed: 3, clock });
  const driver = createSimDriver(fleet);

  it('inventory lists GPUs and ASICs with model, serial and rated figures', () => {
    const inv = driver.inventory();
    expect(driver.name).toBe('sim');
    expect(inv).toHaveLength(3);
    expect(inv[0]).toEqual({
      id: 'gpu-texas-1-0001', kind: DeviceKind.DEVICE_KIND_GPU, model: 'NVIDIA H100 80GB HBM3', endpoint: '',
      serial: fleet.gpus[0]!.uuid, ratedPowerW: 700, ratedHashrateThs: 0, memoryTotalMib: 81_559, driver: 'sim',
    });
    expect(inv[2]).toEqual({
      id: 'asic-texas-1-00001', kind: DeviceKind.DEVICE_KIND_ASIC, model: 'Antminer S21', endpoint: '',
      serial: fleet.asics[0]!.minerId, ratedPowerW: 3500, ratedHashrateThs: 200, memoryTotalMib: 0, driver: 'sim',
    });
  });

  it('read() advances the fleet to the clock and returns every device', async () => {
    fleet.gpus[1]!.assign('wl-9');
    clock.advance(60_000);
    const r = await driver.read(clock.now());
    expect(r.errors).toEqual([]);
    expect(r.gpus.map((g) => g.state)).toEqual([GpuState.GPU_STATE_IDLE, GpuState.GPU_STATE_BUSY]);
    expect(r.gpus[1]!.workloadId).toBe('wl-9');
    expect(r.gpus[1]!.utilizationPct).toBeGreaterThanOrEqual(85);
    expect(r.asics[0]!.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(r.asics[0]!.hashrate5sThs).toBeGreaterThan(190);
    expect(r.asics[0]!.tsMs).toBe(clock.now());
    await driver.close();
    expect((await driver.read(clock.now())).asics).toEqual([]);
  });
});
