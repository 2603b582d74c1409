import { describe, expect, it } from 'vitest';
import type { AsicSpec, DesiredAsic, DesiredState } from './model.js';
import { groupDesired } from './resolve.js';
import { DEFAULT_TIMINGS, plan, type ObservedAsic, type PlanInput } from './plan.js';

const spec = (id: string, ratedPowerW = 3645): AsicSpec => ({ id, ratedPowerW, standbyW: 35, minPowerW: 1823, maxPowerW: 4009, jPerTh: 13.5 });
const ids = (n: number) => Array.from({ length: n }, (_, i) => `a${i + 1}`);
const desired = (asics: Array<Partial<DesiredAsic> & { deviceId: string }>): DesiredState => {
  const full = asics.map((a) => ({ mining: true, powerTargetW: null, rule: 'default' as const, claimId: null, ...a }));
  return { siteId: 's1', atMs: 0, asics: full, capKw: null, capClaimId: null, groups: groupDesired(full, (id) => `why ${id}`) };
};
const seen = (state: ObservedAsic['state'], over: Partial<ObservedAsic> = {}): ObservedAsic => ({
  online: true, state, powerTargetW: null, powerW: state === 'sleeping' ? 35 : 3645, ...over,
});
const input = (d: DesiredState, observed: Record<string, ObservedAsic>, over: Partial<PlanInput> = {}): PlanInput => ({
  nowMs: 1_000_000, desired: d, specs: new Map(d.asics.map((a) => [a.deviceId, spec(a.deviceId)])), observed: new Map(Object.entries(observed)),
  pending: [], progress: new Map(), starts: [], rampKwPerMin: 0, capacityKw: 0, siteDrawKw: 0, timings: DEFAULT_TIMINGS, ...over,
});

describe('plan', () => {
  it('sends nothing to converged devices (ramping counts as on; targets within 1 %) and forgets their progress', () => {
    const d = desired([{ deviceId: 'a1', mining: false }, { deviceId: 'a2' }, { deviceId: 'a3', powerTargetW: 3000 }]);
    const progress = new Map([['a1', { want: 'off', attempts: 2, lastSentAtMs: 1, lastFailure: null, divergent: null }]]);
    const out = plan(input(d, { a1: seen('sleeping'), a2: seen('ramping'), a3: seen('mining', { powerTargetW: 2975 }) }, { progress }));
    expect(out).toMatchObject({ commands: [], held: [], divergent: [] });
    expect(out.progress.size).toBe(0);
  });

  it('groups commands by want and claim with the reason, stops before power changes; offline devices are held', () => {
    const d = desired([
      { deviceId: 'a1', mining: false, rule: 'grid', claimId: 'g1' }, { deviceId: 'a2', mining: false, rule: 'grid', claimId: 'g1' },
      { deviceId: 'a3', powerTargetW: 3000, rule: 'economics', claimId: 'e1' }, { deviceId: 'a4', mining: false, rule: 'grid', claimId: 'g1' },
    ]);
    const out = plan(input(d, { a3: seen('mining'), a2: seen('other'), a1: seen('mining'), a4: seen('mining', { online: false }) }));
    expect(out.commands).toEqual([
      { kind: 'stop', mining: false, powerTargetW: null, rule: 'grid', claimId: 'g1', reason: 'why g1', deviceIds: ['a1', 'a2'] },
      { kind: 'retarget', mining: true, powerTargetW: 3000, rule: 'economics', claimId: 'e1', reason: 'why e1', deviceIds: ['a3'] },
    ]);
    expect(out.held).toEqual([{ deviceId: 'a4', why: 'offline' }]);
    expect(out.progress.get('a1')).toMatchObject({ want: 'off', attempts: 1, lastSentAtMs: 1_000_000 });
  });

  it('does not duplicate a pending command heading to the same want, but overrides one heading elsewhere', () => {
    const d = desired([{ deviceId: 'a1', mining: false }, { deviceId: 'a2', mining: false }]);
    const pending = [
      { commandId: 'c1', deviceIds: ['a1'], mining: false, powerTargetW: null, sentAtMs: 0 },
      { commandId: 'c2', deviceIds: ['a2'], mining: true, powerTargetW: null, sentAtMs: 0 },
    ];
    const out = plan(input(d, { a1: seen('mining'), a2: seen('mining') }, { pending }));
    expect(out.held).toEqual([{ deviceId: 'a1', why: 'in_flight' }]);
    expect(out.commands.map((c) => c.deviceIds)).toEqual([['a2']]);
  });

  it('retries after the expected time with exponential backoff, then marks the device divergent until the want changes', () => {
    const d = desired([{ deviceId: 'a1', mining: false }]);
    const t = DEFAULT_TIMINGS;
    let now = 0;
    let progress = plan(input(d, { a1: seen('mining') }, { nowMs: now })).progress;
    expect(progress.get('a1')!.attempts).toBe(1);
    // attempt n waits stopMs + base × 2^(n-1) after the last send
    for (const [attempt, wait] of [[1, t.stopMs + t.backoffBaseMs], [2, t.stopMs + 2 * t.backoffBaseMs]] as const) {
      const early = plan(input(d, { a1: seen('mining') }, { nowMs: now + wait - 1, progress }));
      expect(early.held).toEqual([{ deviceId: 'a1', why: 'backoff' }]);
      now += wait;
      const retry = plan(input(d, { a1: seen('mining') }, { nowMs: now, progress }));
      expect(retry.commands.map((c) => c.deviceIds)).toEqual([['a1']]);
      progress = retry.progress;
      expect(progress.get('a1')!.attempts).toBe(attempt + 1);
    }
    now += t.stopMs + 4 * t.backoffBaseMs;
    const gaveUp = plan(input(d, { a1: seen('mining') }, { nowMs: now, progress }));
    expect(gaveUp.commands).toEqual([]);
    expect(gaveUp.divergent).toEqual([{ deviceId: 'a1', reason: 'sent 3 times; still observed mining' }]);
    const still = plan(input(d, { a1: seen('mining') }, { nowMs: now + 10 * t.stopMs, progress: gaveUp.progress }));
    expect(still.divergent).toHaveLength(1);
    expect(still.commands).toEqual([]);
    // a new want starts over
    const retargeted = plan(input(desired([{ deviceId: 'a1', powerTargetW: 3000 }]), { a1: seen('mining') }, { nowMs: now + 1, progress: gaveUp.progress }));
    expect(retargeted.commands.map((c) => [c.kind, c.deviceIds])).toEqual([['retarget', ['a1']]]);
    expect(retargeted.progress.get('a1')).toMatchObject({ attempts: 1, divergent: null });
  });

  it('a failed command is retried after the backoff alone, and named in the divergent reason', () => {
    const d = desired([{ deviceId: 'a1', mining: false }]);
    const t = { ...DEFAULT_TIMINGS, maxAttempts: 2 };
    const first = plan(input(d, { a1: seen('mining') }, { nowMs: 0, timings: t }));
    const failures = new Map([['a1', 'driver_error']]);
    const retry = plan(input(d, { a1: seen('mining') }, { nowMs: t.backoffBaseMs, progress: first.progress, failures, timings: t }));
    expect(retry.commands).toHaveLength(1);
    const gaveUp = plan(input(d, { a1: seen('mining') }, { nowMs: 10 * t.backoffBaseMs, progress: retry.progress, failures, timings: t }));
    expect(gaveUp.divergent).toEqual([{ deviceId: 'a1', reason: 'command failed: driver_error (sent 2 times)' }]);
  });

  it('limits starts by the ramp over a sliding minute, in precedence order then id; stops are never limited', () => {
    const devs = ids(6);
    const d = desired([
      ...devs.slice(0, 5).map((id) => ({ deviceId: id, rule: id === 'a5' ? ('operator' as const) : ('default' as const) })),
      { deviceId: 'a6', mining: false },
    ]);
    const observed = Object.fromEntries(devs.map((id) => [id, seen(id === 'a6' ? 'mining' : 'sleeping')]));
    // 8 kW/min: two S21 XPs (7.29 kW) per minute
    const first = plan(input(d, observed, { nowMs: 0, rampKwPerMin: 8 }));
    expect(first.commands.map((c) => [c.kind, c.deviceIds])).toEqual([['stop', ['a6']], ['start', ['a5']], ['start', ['a1']]]);
    expect(first.held).toEqual(['a2', 'a3', 'a4'].map((id) => ({ deviceId: id, why: 'ramp_limit' })));
    expect(first.starts.map((s) => s.deviceId)).toEqual(['a5', 'a1']);
    const pending = first.commands.map((c, i) => ({ commandId: `c${i}`, deviceIds: c.deviceIds, mining: c.mining, powerTargetW: c.powerTargetW, sentAtMs: 0 }));
    const stillFull = plan(input(d, observed, { nowMs: 59_999, rampKwPerMin: 8, starts: first.starts, progress: first.progress, pending }));
    expect(stillFull.commands).toEqual([]);
    const next = plan(input(d, { ...observed, a1: seen('ramping'), a5: seen('mining'), a6: seen('sleeping') }, { nowMs: 60_000, rampKwPerMin: 8, starts: stillFull.starts, progress: stillFull.progress }));
    expect(next.commands.map((c) => c.deviceIds)).toEqual([['a2', 'a3']]);
  });

  it('one miner larger than the ramp starts alone, once per window', () => {
    const d = desired(ids(2).map((id) => ({ deviceId: id })));
    const observed = { a1: seen('sleeping'), a2: seen('sleeping') };
    const first = plan(input(d, observed, { nowMs: 0, rampKwPerMin: 1 }));
    expect(first.commands.map((c) => c.deviceIds)).toEqual([['a1']]);
    expect(plan(input(d, observed, { nowMs: 30_000, rampKwPerMin: 1, starts: first.starts, progress: first.progress })).held).toContainEqual({ deviceId: 'a2', why: 'ramp_limit' });
    expect(plan(input(d, observed, { nowMs: 60_000, rampKwPerMin: 1, starts: first.starts, progress: first.progress })).commands.map((c) => c.deviceIds)).toEqual([['a2']]);
  });

  it('keeps the start-up inrush under capacity: observed draw + starts still coming up + the new one', () => {
    const d = desired(ids(3).map((id) => ({ deviceId: id })));
    const observed = { a1: seen('sleeping'), a2: seen('sleeping'), a3: seen('sleeping') };
    // 10 kW drawn by GPUs and standby; 18 kW capacity: two 3.645 kW starts fit (17.29), not three
    const first = plan(input(d, observed, { nowMs: 0, capacityKw: 18, siteDrawKw: 10 }));
    expect(first.commands.map((c) => c.deviceIds)).toEqual([['a1', 'a2']]);
    expect(first.held).toEqual([{ deviceId: 'a3', why: 'capacity' }]);
    // two minutes on, past the ramp window: a1 and a2 ramping at 1 kW each still count for what they will add
    const later = plan(input(d, { ...observed, a1: seen('ramping', { powerW: 1000 }), a2: seen('ramping', { powerW: 1000 }) }, {
      nowMs: 120_000, capacityKw: 18, siteDrawKw: 12, starts: first.starts, progress: first.progress,
    }));
    expect(later.held).toEqual([{ deviceId: 'a3', why: 'capacity' }]);
    // once they mine, what they draw is in the observed draw alone
    const mined = plan(input(d, { ...observed, a1: seen('mining'), a2: seen('mining') }, { nowMs: 120_000, capacityKw: 22, siteDrawKw: 17.3, starts: first.starts, progress: first.progress }));
    expect(mined.commands.map((c) => c.deviceIds)).toEqual([['a3']]);
  });
});
