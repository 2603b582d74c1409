import { describe, expect, it } from 'vitest';
import type { AsicSpec, Claim, ClaimSource, ClaimWant, SiteSpec } from './model.js';
import { resolve } from './resolve.js';

const spec = (id: string, over: Partial<AsicSpec> = {}): AsicSpec => ({ id, ratedPowerW: 3645, standbyW: 35, minPowerW: 1823, maxPowerW: 4009, jPerTh: 13.5, ...over });
const site = (asics: AsicSpec[], over: Partial<SiteSpec> = {}): SiteSpec => ({ siteId: 's1', capacityKw: 0, gpuKw: 0, asics, ...over });
let seq = 0;
const claim = (source: ClaimSource, want: ClaimWant, over: Partial<Claim> = {}): Claim => ({
  id: `c${++seq}`, siteId: 's1', source, deviceIds: [], want, reason: `${source} says so`, actor: 'system:test', createdAtMs: 1000 + seq, expiresAtMs: null, ...over,
});
const on = (powerTargetW: number | null = null): ClaimWant => ({ kind: 'mining', enabled: true, powerTargetW });
const off: ClaimWant = { kind: 'mining', enabled: false, powerTargetW: null };
const cap = (capKw: number): ClaimWant => ({ kind: 'site_cap', capKw });
const three = site([spec('a'), spec('b'), spec('c')]);

describe('resolve', () => {
  it('without claims every ASIC mines at stock power under the default rule', () => {
    const d = resolve([], three, 5000);
    expect(d.asics).toEqual(['a', 'b', 'c'].map((id) => ({ deviceId: id, mining: true, powerTargetW: null, rule: 'default', claimId: null })));
    expect(d.groups).toEqual([{ rule: 'default', claimId: null, reason: null, mining: true, powerTargetW: null, deviceIds: ['a', 'b', 'c'] }]);
    expect(d).toMatchObject({ siteId: 's1', atMs: 5000, capKw: null, capClaimId: null });
  });

  it('the earliest source wins whatever the order of creation; unknown devices and other sites are ignored', () => {
    const grid = claim('grid', off, { deviceIds: ['a', 'zz'] });
    const econ = claim('economics', on(3000));
    const op = claim('operator', on(), { deviceIds: ['a', 'b'] });
    const other = claim('grid', off, { siteId: 's2' });
    const d = resolve([econ, grid, op, other], three, 5000);
    expect(d.asics.map((a) => [a.deviceId, a.mining, a.powerTargetW, a.rule, a.claimId])).toEqual([
      ['a', false, null, 'grid', grid.id],
      ['b', true, null, 'operator', op.id],
      ['c', true, 3000, 'economics', econ.id],
    ]);
    expect(d.groups.map((g) => [g.rule, g.reason, g.deviceIds])).toEqual([
      ['grid', 'grid says so', ['a']],
      ['operator', 'operator says so', ['b']],
      ['economics', 'economics says so', ['c']],
    ]);
  });

  it('two operators on the same devices: the later claim wins, then the larger id', () => {
    const first = claim('operator', off, { createdAtMs: 10 });
    const later = claim('operator', on(), { createdAtMs: 20, deviceIds: ['a'] });
    expect(resolve([later, first], three, 30).asics.map((a) => a.claimId)).toEqual([later.id, first.id, first.id]);
    const x = claim('operator', off, { id: 'op-x', createdAtMs: 20 });
    const y = claim('operator', on(), { id: 'op-y', createdAtMs: 20 });
    expect(resolve([y, x], three, 30).asics[0]!.claimId).toBe('op-y');
    expect(resolve([x, y], three, 30).asics[0]!.claimId).toBe('op-y');
  });

  it('an expired claim hands control to the next claim down, then to the default', () => {
    const op = claim('operator', off, { expiresAtMs: 2000 });
    const econ = claim('economics', on(2500), { expiresAtMs: 4000 });
    expect(resolve([op, econ], three, 1999).asics[0]).toMatchObject({ rule: 'operator', mining: false });
    expect(resolve([op, econ], three, 2000).asics[0]).toMatchObject({ rule: 'economics', mining: true, powerTargetW: 2500 });
    expect(resolve([op, econ], three, 4000).asics[0]).toMatchObject({ rule: 'default', mining: true, powerTargetW: null });
  });

  it('clamps a power target into the device range, and an off claim has no target', () => {
    const d = resolve([claim('operator', on(9000), { deviceIds: ['a'] }), claim('operator', on(10), { deviceIds: ['b'] }), claim('economics', { kind: 'mining', enabled: false, powerTargetW: 3000 }, { deviceIds: ['c'] })], three, 5000);
    expect(d.asics.map((a) => a.powerTargetW)).toEqual([4009, 1823, null]);
  });

  it('a cap sheds the least efficient ASICs of later rules first, until the site fits', () => {
    // load: gpu 10 kW + 4 × 3.645 = 24.58 kW; cap 18 kW ⇒ two ASICs go (each frees 3.61 kW)
    const s = site([spec('a', { jPerTh: 13.5 }), spec('b', { jPerTh: 17.5, ratedPowerW: 3500 }), spec('c', { jPerTh: 17.5 }), spec('d', { jPerTh: 15 })], { gpuKw: 10 });
    const c = claim('demand_response', cap(18));
    const d = resolve([c], s, 5000);
    expect(d.asics.filter((a) => !a.mining).map((a) => a.deviceId)).toEqual(['b', 'c']);
    expect(d.asics.find((a) => a.deviceId === 'b')).toMatchObject({ rule: 'demand_response', claimId: c.id, powerTargetW: null });
    expect(d).toMatchObject({ capKw: 18, capClaimId: c.id });
    // highest J/TH first; between b and c (same J/TH) the higher draw (c: 3645 W) goes first
    const one = resolve([claim('demand_response', cap(21))], s, 5000);
    expect(one.asics.filter((a) => !a.mining).map((a) => a.deviceId)).toEqual(['c']);
  });

  it('a cap does not shed ASICs decided by an earlier source, and applies in precedence order', () => {
    const s = site([spec('a'), spec('b'), spec('c')]);
    const op = claim('operator', on(), { deviceIds: ['a', 'b'] });
    const schedCap = claim('scheduler', cap(0));
    const d = resolve([op, schedCap], s, 5000);
    // scheduler's cap cannot touch the operator's a, b; it sheds c (default) and cannot fit
    expect(d.asics.map((a) => [a.deviceId, a.mining, a.rule])).toEqual([['a', true, 'operator'], ['b', true, 'operator'], ['c', false, 'scheduler']]);
    // a grid cap beats the operator (applied first: a and b go, c is left to fit 4 kW), then the
    // scheduler's cap sheds c; the tightest cap in force is reported
    const gridCap = claim('grid', cap(4));
    const g = resolve([op, schedCap, gridCap], s, 5000);
    expect(g.asics.map((a) => [a.deviceId, a.mining, a.claimId])).toEqual([['a', false, gridCap.id], ['b', false, gridCap.id], ['c', false, schedCap.id]]);
    expect(g).toMatchObject({ capKw: 0, capClaimId: schedCap.id });
  });

  it('of several caps of one source the tightest applies; a cap counts targets and standby', () => {
    const s = site([spec('a'), spec('b')]);
    const loose = claim('scheduler', cap(100));
    const tight = claim('scheduler', cap(5));
    const withTarget = claim('schedule', on(2000));
    // 2 × 2.0 kW = 4 kW fits 5 kW
    expect(resolve([loose, tight, withTarget], s, 5000).asics.every((a) => a.mining)).toBe(true);
    // at stock 2 × 3.645 = 7.29 kW > 5: one goes; 3.645 + 0.035 fits
    const d = resolve([loose, tight], s, 5000);
    expect(d.asics.map((a) => a.mining)).toEqual([false, true]);
    expect(d.capClaimId).toBe(tight.id);
  });
});
