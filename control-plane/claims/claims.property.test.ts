// Property tests of resolve (resolve.ts) and plan (plan.ts) driven step by step, as the site's
// reconciler drives them, over random sequences of claims (every source and kind, random device
// subsets, expiries and releases), grid events (a grid "mining off" on every ASIC appears and
// goes), time steps and telemetry from a simulated site whose miners apply commands after a
// random delay, sometimes fail them, reboot into mining or drop offline.
// HCP_FUZZ_RUNS multiplies the case count (test/harness/fuzz-runs.ts).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzParams, fuzzTestTimeout } from '../../test/harness/fuzz-runs.js';
import { CLAIM_SOURCES, isLiveClaim, precedence, type AsicSpec, type Claim, type ClaimSource, type DesiredState, type SiteSpec } from './model.js';
import { resolve } from './resolve.js';
import { plan, type DeviceProgress, type ObservedAsic, type PendingCommand, type PlanTimings, type StartRecord } from './plan.js';

const TIMINGS: PlanTimings = { startMs: 90_000, stopMs: 30_000, retargetMs: 30_000, maxAttempts: 3, backoffBaseMs: 5_000 };

type Event =
  | { type: 'claim'; source: ClaimSource; cap: boolean; enabled: boolean; targetFraction: number | null; capKw: number; devices: number[]; expiresInS: number | null }
  | { type: 'release'; pick: number }
  | { type: 'grid_on' }
  | { type: 'grid_off' }
  | { type: 'tick'; s: number }
  | { type: 'reboot'; dev: number }
  | { type: 'offline'; dev: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 4, arbitrary: fc.record({
    type: fc.constant('claim' as const), source: fc.constantFrom(...CLAIM_SOURCES), cap: fc.integer({ min: 0, max: 4 }).map((n) => n === 0), enabled: fc.boolean(),
    targetFraction: fc.option(fc.double({ min: 0.5, max: 1.1, noNaN: true }), { nil: null }), capKw: fc.integer({ min: 0, max: 40 }),
    devices: fc.uniqueArray(fc.nat(7), { maxLength: 4 }), expiresInS: fc.option(fc.integer({ min: 1, max: 300 }), { nil: null }),
  }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ type: 'grid_on' as const }) },
  { weight: 1, arbitrary: fc.constant({ type: 'grid_off' as const }) },
  { weight: 5, arbitrary: fc.record({ type: fc.constant('tick' as const), s: fc.integer({ min: 1, max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('reboot' as const), dev: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('offline' as const), dev: fc.nat(7) }) },
);

const scenarioArb = fc.record({
  asics: fc.array(fc.record({ ratedPowerW: fc.integer({ min: 3000, max: 3700 }), jPerTh: fc.constantFrom(13.5, 15, 17.5), sleeping: fc.boolean() }), { minLength: 1, maxLength: 8 }),
  gpuKw: fc.integer({ min: 0, max: 20 }),
  capacityExtraKw: fc.option(fc.integer({ min: 0, max: 30 }), { nil: null }),
  rampKwPerMin: fc.constantFrom(0, 2, 5, 8, 15, 40),
  failPercent: fc.constantFrom(0, 10, 30),
  seed: fc.integer(),
  events: fc.array(eventArb, { minLength: 5, maxLength: 60 }),
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

/** mulberry32: the simulated site's own randomness, from the scenario's seed */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimMiner {
  spec: AsicSpec;
  state: 'mining' | 'ramping' | 'sleeping';
  target: number | null;
  online: boolean;
  bootUntilMs: number;
}
interface SimCommand extends PendingCommand {
  finishAtMs: number;
  failed: boolean;
}

const drawW = (m: SimMiner) => (m.state === 'sleeping' ? m.spec.standbyW : m.state === 'ramping' ? (m.spec.standbyW + (m.target ?? m.spec.ratedPowerW)) / 2 : (m.target ?? m.spec.ratedPowerW));
const converged = (m: SimMiner, mining: boolean, target: number | null) =>
  mining ? (m.state === 'mining' || m.state === 'ramping') && (target === null ? m.target === null : m.target !== null && Math.abs(m.target - target) <= target * 0.01) : m.state === 'sleeping';

/** a property's check (vitest's expect costs too much per step for hundreds of runs) */
function must(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Error(message);
}

/** the latest claim: created last, then the larger id */
const latest = (cs: Claim[]): Claim | undefined => [...cs].sort((a, b) => b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : -1))[0];

function run(sc: Scenario): { miners: Map<string, SimMiner>; startLog: Array<{ atMs: number; kw: number }> } {
  const random = rng(sc.seed);
  const specs: AsicSpec[] = sc.asics.map((a, i) => ({
    id: `asic-${String(i + 1).padStart(2, '0')}`, ratedPowerW: a.ratedPowerW, standbyW: 35,
    minPowerW: Math.ceil(a.ratedPowerW * 0.5), maxPowerW: Math.floor(a.ratedPowerW * 1.1), jPerTh: a.jPerTh,
  }));
  const capacityKw = sc.capacityExtraKw === null ? 0 : sc.gpuKw + specs.length * 0.035 + sc.capacityExtraKw;
  const site: SiteSpec = { siteId: 's1', capacityKw, gpuKw: sc.gpuKw, asics: specs };
  const miners = new Map<string, SimMiner>(specs.map((s, i) => [s.id, { spec: s, state: sc.asics[i]!.sleeping ? 'sleeping' : 'mining', target: null, online: true, bootUntilMs: 0 }]));
  const specMap = new Map(specs.map((s) => [s.id, s]));
  let now = 1_700_000_000_000;
  let seq = 0;
  let claims: Claim[] = [];
  let gridClaim: string | null = null;
  let progress = new Map<string, DeviceProgress>();
  let starts: StartRecord[] = [];
  let commands: SimCommand[] = [];
  const startLog: Array<{ atMs: number; kw: number }> = [];
  const pick = (devs: number[]) => [...new Set(devs.filter((d) => d < specs.length).map((d) => specs[d]!.id))];

  const advance = (ms: number) => {
    const until = now + ms;
    // effects in time order: commands finishing, miners finishing their boot
    for (;;) {
      const next = Math.min(...commands.map((c) => c.finishAtMs), ...[...miners.values()].filter((m) => m.state === 'ramping').map((m) => m.bootUntilMs), Infinity);
      if (next > until) break;
      now = Math.max(now, next);
      for (const m of miners.values()) if (m.state === 'ramping' && m.bootUntilMs <= now) m.state = 'mining';
      for (const c of commands.filter((x) => x.finishAtMs <= now && !x.failed)) {
        for (const id of c.deviceIds) {
          const m = miners.get(id)!;
          if (!m.online) continue;
          if (!c.mining) m.state = 'sleeping';
          else {
            if (m.state === 'sleeping') Object.assign(m, { state: 'ramping', bootUntilMs: now + 10_000 + Math.floor(random() * 50_000) });
            m.target = c.powerTargetW;
          }
        }
      }
      finishing(now);
    }
    now = until;
  };
  const failures = new Map<string, string>();
  const finishing = (t: number) => {
    for (const c of commands) if (c.finishAtMs <= t && c.failed) for (const id of c.deviceIds) failures.set(id, 'driver_error');
    commands = commands.filter((c) => c.finishAtMs > t);
  };

  const check = (desired: DesiredState) => {
    const live = claims.filter((c) => isLiveClaim(c, now));
    const mining = live.filter((c) => c.want.kind === 'mining');
    const names = (c: Claim, id: string) => c.deviceIds.length === 0 || c.deviceIds.includes(id);
    for (const a of desired.asics) {
      const applicable = mining.filter((c) => names(c, a.deviceId));
      const best = Math.min(...applicable.map((c) => precedence(c.source)), Infinity);
      // the grid always wins: a device named by a live grid claim is decided by the grid
      if (applicable.some((c) => c.source === 'grid')) must(a.rule === 'grid', `${a.deviceId} under a live grid claim is decided by ${a.rule}`);
      const grid = latest(applicable.filter((c) => c.source === 'grid'));
      if (grid && grid.want.kind === 'mining') must(a.claimId === grid.id && a.mining === grid.want.enabled, `${a.deviceId} under the grid's ${grid.id} is ${a.claimId} mining=${a.mining}`);
      if (a.claimId === null) {
        // control handed back: nothing live names it
        must(a.rule === 'default' && applicable.length === 0, `${a.deviceId} on ${a.rule} while ${applicable.map((c) => c.id).join()} name it`);
        continue;
      }
      const winner = live.find((c) => c.id === a.claimId);
      must(winner !== undefined, `${a.deviceId} decided by ${a.claimId}, which is not live`);
      if (winner!.want.kind === 'mining') {
        // the next claim down: nothing earlier names it; within its source it is the latest
        must(precedence(winner!.source) === best, `${a.deviceId}: ${winner!.source} won over an earlier source`);
        for (const c of applicable.filter((x) => x.source === winner!.source)) {
          must(c.createdAtMs < winner!.createdAtMs || (c.createdAtMs === winner!.createdAtMs && c.id <= winner!.id), `${a.deviceId}: ${winner!.id} won over the later ${c.id}`);
        }
        // an operator beats economics
        if (applicable.some((c) => c.source === 'operator')) must(a.rule !== 'economics', `${a.deviceId}: economics beat an operator`);
      } else {
        // shed by a cap: only a device no earlier source decided
        must(!a.mining && precedence(winner!.source) < best, `${a.deviceId}: shed by ${winner!.id} though an earlier source decides it`);
      }
    }
  };

  const step = () => {
    const desired = resolve(claims, site, now);
    check(desired);
    const observed = new Map<string, ObservedAsic>(
      [...miners].map(([id, m]) => [id, { online: m.online, state: m.state, powerTargetW: m.target, powerW: drawW(m) }]),
    );
    const siteDrawKw = sc.gpuKw + [...miners.values()].reduce((w, m) => w + drawW(m), 0) / 1000;
    const out = plan({
      nowMs: now, desired, specs: specMap, observed, pending: commands, progress, starts, rampKwPerMin: sc.rampKwPerMin,
      capacityKw, siteDrawKw, timings: TIMINGS, failures: new Map(failures),
    });
    failures.clear();
    const gridMining = claims.filter((c) => isLiveClaim(c, now) && c.source === 'grid' && c.want.kind === 'mining');
    const liveGridOff = new Set(specs.map((s) => s.id).filter((id) => {
      const g = latest(gridMining.filter((c) => c.deviceIds.length === 0 || c.deviceIds.includes(id)));
      return g?.want.kind === 'mining' && !g.want.enabled;
    }));
    let newStartKw = 0;
    for (const c of out.commands) {
      for (const id of c.deviceIds) {
        const m = miners.get(id)!;
        // nothing is sent whose effect is already observed, nor to an offline device
        must(!converged(m, c.mining, c.powerTargetW), `${id}: ${c.mining ? 'on' : 'off'} already observed`);
        must(m.online, `${id}: sent while offline`);
        // nor one duplicating a command of ours still in flight towards the same want
        must(!commands.some((p) => p.deviceIds.includes(id) && p.mining === c.mining && (!c.mining || p.powerTargetW === c.powerTargetW)), `${id}: duplicate of ${c.mining ? 'on' : 'off'} in flight`);
        if (c.mining) must(!liveGridOff.has(id), `${id}: start while the grid holds it off`);
        if (c.mining && m.state === 'sleeping') {
          const kw = (c.powerTargetW ?? m.spec.ratedPowerW) / 1000;
          startLog.push({ atMs: now, kw });
          newStartKw += kw;
        }
      }
      const failed = random() * 100 < sc.failPercent;
      commands.push({ commandId: `cmd-${++seq}`, deviceIds: c.deviceIds, mining: c.mining, powerTargetW: c.powerTargetW, sentAtMs: now, finishAtMs: now + Math.floor(random() * 20_000), failed });
    }
    // the start-up inrush stays under capacity: what is drawn now, what the miners still coming up
    // will add, and the new starts
    if (capacityKw > 0 && newStartKw > 0) {
      const coming = new Map(starts
        .filter((s) => s.atMs < now && miners.get(s.deviceId)!.online && miners.get(s.deviceId)!.state !== 'mining' && s.atMs > now - 2 * TIMINGS.startMs)
        .map((s) => [s.deviceId, s]));
      const comingKw = [...coming.values()].reduce((kw, s) => kw + Math.max(0, s.kw - drawW(miners.get(s.deviceId)!) / 1000), 0);
      must(siteDrawKw + comingKw + newStartKw <= capacityKw + 1e-6, `inrush ${siteDrawKw} + ${comingKw} + ${newStartKw} kW over capacity ${capacityKw}`);
    }
    progress = out.progress;
    starts = out.starts;
  };

  for (const e of sc.events) {
    switch (e.type) {
      case 'claim': {
        const id = `c${String(++seq).padStart(4, '0')}`;
        const spec0 = specs[e.devices.find((d) => d < specs.length) ?? 0]!;
        const want = e.cap
          ? { kind: 'site_cap' as const, capKw: e.capKw }
          : { kind: 'mining' as const, enabled: e.enabled, powerTargetW: e.enabled && e.targetFraction !== null ? Math.round(spec0.ratedPowerW * e.targetFraction) : null };
        claims.push({ id, siteId: 's1', source: e.source, deviceIds: pick(e.devices), want, reason: `${e.source} ${id}`, actor: 'system:test', createdAtMs: now, expiresAtMs: e.expiresInS === null ? null : now + e.expiresInS * 1000 });
        break;
      }
      case 'release':
        if (claims.length) claims = claims.filter((_, i) => i !== e.pick % claims.length);
        break;
      case 'grid_on':
        if (!gridClaim) {
          gridClaim = `grid-${++seq}`;
          claims.push({ id: gridClaim, siteId: 's1', source: 'grid', deviceIds: [], want: { kind: 'mining', enabled: false, powerTargetW: null }, reason: 'under-frequency', actor: 'system:grid', createdAtMs: now, expiresAtMs: null });
        }
        break;
      case 'grid_off':
        claims = claims.filter((c) => c.id !== gridClaim);
        gridClaim = null;
        break;
      case 'tick':
        advance(e.s * 1000);
        break;
      case 'reboot': {
        const m = miners.get(specs[e.dev % specs.length]!.id)!;
        if (m.online) Object.assign(m, { state: 'ramping', target: null, bootUntilMs: now + 30_000 });
        break;
      }
      case 'offline': {
        const m = miners.get(specs[e.dev % specs.length]!.id)!;
        m.online = !m.online;
        break;
      }
    }
    step();
    advance(1000);
    step();
  }

  // a restart never exceeds the ramp limit: Σ start kW in any 60 s window ≤ the limit, or one miner
  if (sc.rampKwPerMin > 0) {
    for (const s of startLog) {
      const inWindow = startLog.filter((x) => x.atMs > s.atMs - 60_000 && x.atMs <= s.atMs);
      const kw = inWindow.reduce((sum, x) => sum + x.kw, 0);
      if (inWindow.length > 1) must(kw <= sc.rampKwPerMin + 1e-6, `starts in the minute up to ${s.atMs}: ${kw} kW over ${sc.rampKwPerMin}`);
    }
  }
  return { miners, startLog };
}

describe('claims resolved and reconciled step by step', () => {
  it('the grid always wins, the next claim down takes over, nothing already observed is sent, restarts respect ramp and capacity', () => {
    fc.assert(fc.property(scenarioArb, (sc) => {
      run(sc);
    }), fuzzParams(400, 20_000));
  }, fuzzTestTimeout(20_000));

  it('a site curtailed by the grid comes back within the ramp limit once the grid lets go', () => {
    // the liveness side of the same machinery: not only is nothing wrong sent, the site does return
    const n = 6;
    const sc: Scenario = {
      asics: Array.from({ length: n }, () => ({ ratedPowerW: 3645, jPerTh: 13.5, sleeping: false })), gpuKw: 0, capacityExtraKw: null,
      rampKwPerMin: 8, failPercent: 0, seed: 1,
      events: [{ type: 'grid_on' }, { type: 'tick', s: 60 }, { type: 'grid_off' }, ...Array.from({ length: 12 }, () => ({ type: 'tick' as const, s: 30 }))],
    };
    const { miners, startLog } = run(sc);
    expect([...miners.values()].map((m) => m.state)).toEqual(Array.from({ length: n }, () => 'mining'));
    // 8 kW/min takes two 3.645 kW miners a minute: six come back in three steps a minute apart
    const steps = [...new Set(startLog.map((s) => s.atMs))];
    expect(startLog).toHaveLength(n);
    expect(steps).toHaveLength(3);
    expect(steps[1]! - steps[0]!).toBeGreaterThanOrEqual(60_000);
  });
});
