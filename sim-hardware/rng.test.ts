import { describe, expect, it } from 'vitest';
import { createRng } from './rng.js';

const draw = (seed: number | string, n = 5): number[] => {
  const r = createRng(seed);
  return Array.from({ length: n }, () => r.next());
};

describe('rng', () => {
  it('same seed gives the same stream, different seeds differ', () => {
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(draw('a')).not.toEqual(draw('b'));
  });

  it('fork depends only on key and label, not on draws already made', () => {
    const a = createRng(7);
    const b = createRng(7);
    b.next();
    b.next();
    expect(a.fork('gpu-x-0001').next()).toBe(b.fork('gpu-x-0001').next());
    expect(a.fork('gpu-x-0001').next()).not.toBe(a.fork('gpu-x-0002').next());
  });

  it('next() is uniform in [0, 1), normal() has mean 0 and sd 1, poisson() has mean lambda', () => {
    const r = createRng(1);
    const n = 20_000;
    let sum = 0;
    let sumSq = 0;
    let min = 1;
    let max = 0;
    let uSum = 0;
    let pSum = 0;
    let pBig = 0;
    for (let i = 0; i < n; i++) {
      const u = r.next();
      min = Math.min(min, u);
      max = Math.max(max, u);
      uSum += u;
      const z = r.normal();
      sum += z;
      sumSq += z * z;
      pSum += r.poisson(3);
      pBig += r.poisson(100);
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    expect(uSum / n).toBeCloseTo(0.5, 1);
    expect(Math.abs(sum / n)).toBeLessThan(0.05);
    expect(Math.sqrt(sumSq / n)).toBeCloseTo(1, 1);
    expect(pSum / n).toBeCloseTo(3, 1);
    expect(pBig / n).toBeGreaterThan(99.5);
    expect(pBig / n).toBeLessThan(100.5);
  });

  it('hex() gives n lowercase hex digits', () => {
    expect(createRng(3).hex(32)).toMatch(/^[0-9a-f]{32}$/);
  });
});
