import { describe, expect, it } from 'vitest';
import { GpuState, MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { createManualClock } from './clock.js';
import { createSimFleet } from './fleet.js';
import { hashFractionForPower, S21_MODELS } from './s21-models.js';
import { createSimDriver } from './agent-driver.js';

const setup = () => {
  const clock = createManualClock(1_750_000_000_000);
  const fleet = createSimFleet({ site: 'texas-1', gpus: 2, asics: 2, asicModel: 's21', seed: 5, clock });
  const driver = createSimDriver(fleet);
  const read = async (advanceMs: number) => {
    clock.advance(advanceMs);
    return driver.read(clock.now());
  };
  return { clock, fleet, driver, read };
};
const GPU1 = 'gpu-texas-1-0001';
const GPU2 = 'gpu-texas-1-0002';
const ASIC1 = 'asic-texas-1-00001';
const ASIC2 = 'asic-texas-1-00002';

describe('sim driver apply: GPUs', () => {
  it('assign makes the GPU busy with the workload; release makes it idle; both are idempotent', async () => {
    const { driver, read } = setup();
    const [a] = await driver.apply([{ kind: 'assign', deviceId: GPU1, workloadId: 'wl-1' }]);
    expect(a).toEqual({ deviceId: GPU1, ok: true, code: 'ok', message: '', state: { deviceId: GPU1, state: 'busy', workloadId: 'wl-1', powerTargetW: 0 } });
    let r = await read(30_000);
    expect(r.gpus[0]).toMatchObject({ state: GpuState.GPU_STATE_BUSY, workloadId: 'wl-1' });
    expect(r.gpus[0]!.utilizationPct).toBeGreaterThanOrEqual(85);
    const util = r.gpus[0]!.memoryUsedMib;

    // Same workload again: success, and the running job is untouched.
    const [again] = await driver.apply([{ kind: 'assign', deviceId: GPU1, workloadId: 'wl-1' }]);
    expect(again).toMatchObject({ ok: true, code: 'ok', state: { state: 'busy', workloadId: 'wl-1' } });
    r = await read(1_000);
    expect(Math.abs(r.gpus[0]!.memoryUsedMib - util) / util).toBeLessThan(0.05);

    const [rel] = await driver.apply([{ kind: 'release', deviceId: GPU1 }]);
    expect(rel).toMatchObject({ ok: true, code: 'ok', state: { state: 'idle', workloadId: '' } });
    r = await read(30_000);
    expect(r.gpus[0]).toMatchObject({ state: GpuState.GPU_STATE_IDLE, workloadId: '', memoryUsedMib: 0 });
    expect(r.gpus[0]!.utilizationPct).toBeLessThanOrEqual(5);

    const [rel2] = await driver.apply([{ kind: 'release', deviceId: GPU1 }]);
    expect(rel2).toMatchObject({ ok: true, code: 'ok', state: { state: 'idle' } });
  });

  it('a GPU running another workload is device_busy and keeps its job', async () => {
    const { driver, fleet } = setup();
    await driver.apply([{ kind: 'assign', deviceId: GPU1, workloadId: 'wl-1' }]);
    const [r] = await driver.apply([{ kind: 'assign', deviceId: GPU1, workloadId: 'wl-2' }]);
    expect(r).toMatchObject({ ok: false, code: 'device_busy', state: { state: 'busy', workloadId: 'wl-1' } });
    expect(r!.message).toContain('wl-1');
    expect(fleet.gpu(GPU1)!.workloadId).toBe('wl-1');
  });

  it('a faulted GPU takes no work', async () => {
    const { driver, fleet } = setup();
    fleet.gpu(GPU2)!.injectXid(79);
    const [r] = await driver.apply([{ kind: 'assign', deviceId: GPU2, workloadId: 'wl-1' }]);
    expect(r).toMatchObject({ ok: false, code: 'driver_error', state: { state: 'fault', workloadId: '' } });
  });

  it('each op stands alone: bad ops fail with their own code, the rest apply', async () => {
    const { driver, fleet } = setup();
    const res = await driver.apply([
      { kind: 'assign', deviceId: 'gpu-elsewhere-0001', workloadId: 'wl-1' },
      { kind: 'mining', deviceId: GPU1, enabled: false, powerTargetW: null },
      { kind: 'assign', deviceId: ASIC1, workloadId: 'wl-1' },
      { kind: 'assign', deviceId: GPU2, workloadId: '' },
      { kind: 'assign', deviceId: GPU2, workloadId: 'wl-7' },
      { kind: 'mining', deviceId: ASIC2, enabled: false, powerTargetW: null },
    ]);
    expect(res.map((r) => [r.deviceId, r.code])).toEqual([
      ['gpu-elsewhere-0001', 'unknown_device'],
      [GPU1, 'invalid_command'],
      [ASIC1, 'invalid_command'],
      [GPU2, 'invalid_command'],
      [GPU2, 'ok'],
      [ASIC2, 'ok'],
    ]);
    expect(fleet.gpu(GPU2)!.workloadId).toBe('wl-7');
    expect(fleet.asic(ASIC2)!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
  });
});

describe('sim driver apply: ASICs', () => {
  it('off: sleeping, ~0 TH/s and standby power within seconds; off again is a no-op success', async () => {
    const { driver, read } = setup();
    await read(60_000);
    const [off] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: null }]);
    expect(off).toEqual({ deviceId: ASIC1, ok: true, code: 'ok', message: '', state: { deviceId: ASIC1, state: 'sleeping', workloadId: '', powerTargetW: 0 } });
    const r = await read(8_000);
    const a = r.asics[0]!;
    expect(a.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    expect(a.hashrate5sThs).toBe(0);
    expect(a.powerW).toBeLessThan(S21_MODELS.s21.standbyW + 5);
    // the other miner is untouched
    expect(r.asics[1]!.hashrate5sThs).toBeGreaterThan(190);
    const [again] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: null }]);
    expect(again).toMatchObject({ ok: true, state: { state: 'sleeping' } });
  });

  it('on: ramps up over the start-up time, then mines at rated hashrate', async () => {
    const { driver, read } = setup();
    await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: null }]);
    await read(30_000);
    const [on] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: true, powerTargetW: null }]);
    expect(on).toMatchObject({ ok: true, state: { state: 'ramping' } });
    // Boot and board init (first 25 % of 240 s): no hashing yet.
    let a = (await read(30_000)).asics[0]!;
    expect(a.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    expect(a.hashrate5sThs).toBe(0);
    a = (await read(120_000)).asics[0]!; // 150 s in: part-way up
    expect(a.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    expect(a.hashrate5sThs).toBeGreaterThan(50);
    expect(a.hashrate5sThs).toBeLessThan(180);
    // On while ramping must not restart the ramp.
    await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: true, powerTargetW: null }]);
    a = (await read(100_000)).asics[0]!;
    expect(a.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(a.hashrate5sThs).toBeGreaterThan(190);
    expect(a.powerW).toBeGreaterThan(3400);
  });

  it('a power target moves hashrate and power along the efficiency curve; out of range is clamped', async () => {
    const { driver, read } = setup();
    const [r] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: true, powerTargetW: 2625 }]);
    expect(r).toMatchObject({ ok: true, state: { state: 'mining', powerTargetW: 2625 } });
    const a = (await read(30_000)).asics[0]!;
    const m = S21_MODELS.s21;
    expect(a.powerW).toBeCloseTo(2625, -1);
    expect(a.hashrate5sThs / 200).toBeCloseTo(hashFractionForPower(m, 2625), 1);
    expect(a.hashrate5sThs).toBeGreaterThan(150); // 75 % power keeps > 75 % hashrate
    expect(a.powerTargetW).toBe(2625);

    const [hi] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: true, powerTargetW: 10_000 }]);
    expect(hi).toMatchObject({ ok: true, state: { powerTargetW: 3850 } });
    const [lo] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: true, powerTargetW: 100 }]);
    expect(lo).toMatchObject({ ok: true, state: { powerTargetW: 1750 } });
    const [stock] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: true, powerTargetW: null }]);
    expect(stock).toMatchObject({ ok: true, state: { powerTargetW: 0 } });
    expect((await read(30_000)).asics[0]!.powerW).toBeCloseTo(3500, -2);
  });

  it('rejects a negative or non-finite power target without changing the miner', async () => {
    const { driver, fleet } = setup();
    const res = await driver.apply([
      { kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: -5 },
      { kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: Number.NaN },
      { kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: Number.POSITIVE_INFINITY },
    ]);
    expect(res.map((r) => r.code)).toEqual(['invalid_command', 'invalid_command', 'invalid_command']);
    expect(res[0]!.state.state).toBe('mining');
    expect(fleet.asic(ASIC1)!.miningState).toBe(MiningState.MINING_STATE_MINING);
  });

  it('after close(), every op fails with driver_error and nothing changes', async () => {
    const { driver, fleet } = setup();
    await driver.close();
    const [r] = await driver.apply([{ kind: 'mining', deviceId: ASIC1, enabled: false, powerTargetW: null }]);
    expect(r).toMatchObject({ ok: false, code: 'driver_error' });
    expect(fleet.asic(ASIC1)!.miningState).toBe(MiningState.MINING_STATE_MINING);
  });
});
