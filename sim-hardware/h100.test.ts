import { describe, expect, it } from 'vitest';
import { GpuState } from '../proto/gen/hcp/v1/telemetry.js';
import { createH100, h100PowerForUtilization } from './h100.js';
import { parseNvidiaSmiLine } from './nvidia-smi-csv.js';
import { createRng } from './rng.js';

const gpu = (seed = 1) => createH100({ id: 'gpu-t-0001', rng: createRng(seed).fork('gpu-t-0001'), ambientC: 25 });
const run = (g: ReturnType<typeof gpu>, seconds: number) => {
  for (let i = 0; i < seconds; i++) g.step(1);
};

describe('H100', () => {
  it('idle: 0–5 % util, ~0 memory, ~105 W, 45 °C, 1,000 MHz', () => {
    const g = gpu();
    run(g, 300);
    const r = g.reading(0);
    expect(r.state).toBe(GpuState.GPU_STATE_IDLE);
    expect(r.utilizationPct).toBeGreaterThanOrEqual(0);
    expect(r.utilizationPct).toBeLessThanOrEqual(5);
    expect(r.memoryUsedMib).toBe(0);
    expect(r.powerW).toBeGreaterThan(95);
    expect(r.powerW).toBeLessThan(115);
    expect(r.temperatureC).toBeGreaterThanOrEqual(44);
    expect(r.temperatureC).toBeLessThanOrEqual(46);
    expect(r.smClockMhz).toBe(1000);
    expect(r.memoryTotalMib).toBe(81_559);
    expect(r.powerLimitW).toBe(700);
  });

  it('busy: 85–99 % util, 70–95 % memory, 560–686 W, 60–70 °C, 1,980 MHz, over many samples', () => {
    const g = gpu(2);
    g.assign('wl-1');
    run(g, 200);
    for (let i = 0; i < 200; i++) {
      g.step(1);
      const r = g.reading(i);
      expect(r.state).toBe(GpuState.GPU_STATE_BUSY);
      expect(r.workloadId).toBe('wl-1');
      expect(r.utilizationPct).toBeGreaterThanOrEqual(85);
      expect(r.utilizationPct).toBeLessThanOrEqual(99);
      expect(r.memoryUsedMib / r.memoryTotalMib).toBeGreaterThanOrEqual(0.7);
      expect(r.memoryUsedMib / r.memoryTotalMib).toBeLessThanOrEqual(0.95);
      expect(r.powerW).toBeGreaterThanOrEqual(555);
      expect(r.powerW).toBeLessThanOrEqual(690);
      expect(r.temperatureC).toBeGreaterThanOrEqual(60);
      expect(r.temperatureC).toBeLessThanOrEqual(70);
      expect(r.smClockMhz).toBe(1980);
    }
  });

  it('power follows utilization; temperature lags power (first-order, ~20 s)', () => {
    expect(h100PowerForUtilization(85)).toBe(560);
    expect(h100PowerForUtilization(99)).toBe(686);
    const g = gpu(3);
    run(g, 300);
    g.assign('wl');
    run(g, 10);
    const early = g.reading(0);
    expect(early.powerW).toBeGreaterThan(500); // power is already up …
    expect(early.temperatureC).toBeLessThan(60); // … the die is still heating
    run(g, 120);
    expect(g.reading(0).temperatureC).toBeGreaterThanOrEqual(60);
    g.release();
    g.step(1);
    expect(g.reading(0).memoryUsedMib).toBe(0);
    run(g, 10);
    const cooling = g.reading(0);
    expect(cooling.powerW).toBeLessThan(120);
    expect(cooling.temperatureC).toBeGreaterThan(47);
  });

  it('energy counter integrates power (mJ)', () => {
    const g = gpu(4);
    run(g, 60);
    const e0 = g.reading(0).energyMj;
    run(g, 100);
    const e1 = g.reading(0).energyMj;
    // ~105 W × 100 s = 10.5 kJ = 10,500,000 mJ
    expect(e1 - e0).toBeGreaterThan(9_500_000);
    expect(e1 - e0).toBeLessThan(11_500_000);
  });

  it('a fatal Xid faults the GPU until reset', () => {
    const g = gpu();
    g.assign('wl');
    g.injectXid(79);
    g.step(1);
    expect(g.reading(0).state).toBe(GpuState.GPU_STATE_FAULT);
    expect(g.reading(0).xidErrors).toBe(79);
    g.reset();
    expect(g.reading(0).state).toBe(GpuState.GPU_STATE_BUSY);
    g.injectXid(13);
    expect(g.reading(0).state).toBe(GpuState.GPU_STATE_BUSY);
    expect(g.reading(0).xidErrors).toBe(13);
  });

  it('same seed → identical readings and uuid; different seed → different', () => {
    const a = gpu(9);
    const b = gpu(9);
    const c = gpu(10);
    for (const g of [a, b, c]) {
      g.assign('w');
      run(g, 30);
    }
    expect(a.uuid).toMatch(/^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(a.uuid).toBe(b.uuid);
    expect(a.reading(5)).toEqual(b.reading(5));
    expect(a.uuid).not.toBe(c.uuid);
    expect(a.reading(5)).not.toEqual(c.reading(5));
  });

  it('nvidia-smi line round-trips to the reading', () => {
    const g = gpu(5);
    g.assign('w');
    run(g, 60);
    const r = g.reading(0);
    const row = parseNvidiaSmiLine(g.nvidiaSmiLine(3));
    expect(row).toEqual({
      index: 3,
      uuid: g.uuid,
      name: 'NVIDIA H100 80GB HBM3',
      utilizationPct: r.utilizationPct,
      memoryUsedMib: r.memoryUsedMib,
      memoryTotalMib: 81_559,
      temperatureC: r.temperatureC,
      powerW: r.powerW,
      smClockMhz: 1980,
    });
  });
});
