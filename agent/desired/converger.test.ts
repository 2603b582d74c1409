// The local converger over the simulated fleet (the sim driver, a manual clock): the ramp limit
// measured from the devices' own state changes, capacity, sleeping what must sleep whether the
// control plane is connected or not, older versions ignored, the grid trip's hold, backoff, and
// the held state across a restart of the converger.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { DesiredState } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { createSimDriver } from '../../sim-hardware/agent-driver.js';
import { createManualClock } from '../../sim-hardware/clock.js';
import { createSimFleet } from '../../sim-hardware/fleet.js';
import type { CommandableDriver } from '../drivers/driver.js';
import { createAgentMetrics } from '../metrics.js';
import { allowedStarts, createDesiredConverger, RAMP_WINDOW_MS } from './converger.js';

const NOW = 1_750_000_000_000;
const XP_KW = 3.645;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(o: { asleep?: boolean; asics?: number; stateDir?: string; wrap?: (d: CommandableDriver) => CommandableDriver } = {}) {
  const clock = createManualClock(NOW);
  const fleet = createSimFleet({ site: 'texas-1', gpus: 0, asics: o.asics ?? 6, asicModel: 's21-xp', seed: 7, clock, startupSeconds: 30, asicsAsleep: o.asleep ?? true });
  const base = createSimDriver(fleet);
  const driver = o.wrap ? o.wrap(base) : base;
  const held: number[] = [];
  let connected = false;
  const metrics = createAgentMetrics();
  const make = () =>
    createDesiredConverger({
      drivers: [driver], connected: () => connected, sendHeld: (v) => held.push(v), log: pino({ level: 'silent' }), metrics, stateDir: o.stateDir, now: () => clock.now(),
    });
  const conv = make();
  /** started kW by sim time, from each miner leaving sleep */
  const starts: Array<{ atMs: number; id: string }> = [];
  const last = new Map(fleet.asics.map((a) => [a.id, a.miningState]));
  const tick = async (ms: number, c = conv) => {
    clock.advance(ms);
    const r = await driver.read(clock.now());
    await c.converge({ gpus: r.gpus, asics: r.asics });
    for (const a of fleet.asics) {
      if (last.get(a.id) === MiningState.MINING_STATE_SLEEPING && a.miningState !== MiningState.MINING_STATE_SLEEPING) starts.push({ atMs: clock.now(), id: a.id });
      last.set(a.id, a.miningState);
    }
  };
  return { clock, fleet, driver, conv, make, held, tick, starts, metrics, setConnected: (v: boolean) => (connected = v) };
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `asic-texas-1-${String(i + 1).padStart(5, '0')}`);
function desired(version: number, mining: (id: string, i: number) => boolean, o: Partial<DesiredState> = {}, targetW = 0): DesiredState {
  return {
    version, generatedAtMs: NOW, rampKwPerMin: 0, capacityKw: 0,
    asics: ids(6).map((id, i) => ({ deviceId: id, mining: mining(id, i), powerTargetW: targetW, source: 'economics' })), ...o,
  };
}
const running = (s: MiningState) => s === MiningState.MINING_STATE_MINING || s === MiningState.MINING_STATE_RAMPING;
const states = (s: ReturnType<typeof setup>) => s.fleet.asics.map((a) => running(a.miningState));

/** the most kW started inside any ramp window, and the most starts in one */
function worstWindow(starts: Array<{ atMs: number }>, kwEach: number) {
  let kw = 0;
  let count = 0;
  for (const s of starts) {
    const inWindow = starts.filter((x) => x.atMs > s.atMs - RAMP_WINDOW_MS && x.atMs <= s.atMs).length;
    kw = Math.max(kw, inWindow * kwEach);
    count = Math.max(count, inWindow);
  }
  return { kw, count };
}

describe('desired state converger', () => {
  it('starts the miners meant to mine within the ramp limit while the control plane is away', async () => {
    const s = setup();
    s.conv.offer(desired(1, (_, i) => i < 5, { rampKwPerMin: 8 })); // 2 XPs (7.29 kW) a minute
    for (let i = 0; i < 60; i++) await s.tick(5_000);
    expect(states(s)).toEqual([true, true, true, true, true, false]);
    expect(s.starts).toHaveLength(5);
    expect(worstWindow(s.starts, XP_KW).kw).toBeLessThanOrEqual(8);
    // not all at once: the whole ramp took more than two windows
    expect(s.starts.at(-1)!.atMs - s.starts[0]!.atMs).toBeGreaterThanOrEqual(2 * RAMP_WINDOW_MS);
    expect(s.conv.status()).toMatchObject({ version: 1, asics: 6, differing: 0 });
  });

  it('starts one miner a minute when one miner alone exceeds the ramp limit', async () => {
    const s = setup({ asics: 3 });
    s.conv.offer(desired(1, () => true, { rampKwPerMin: 2, asics: ids(3).map((id) => ({ deviceId: id, mining: true, powerTargetW: 0, source: 'operator' })) }));
    for (let i = 0; i < 40; i++) await s.tick(5_000);
    expect(s.starts.map((x) => x.atMs - s.starts[0]!.atMs)).toEqual([0, 60_000, 120_000]);
    expect(worstWindow(s.starts, XP_KW).count).toBe(1);
  });

  it('keeps the site draw plus the starting miners under capacity', async () => {
    const s = setup();
    s.conv.offer(desired(1, () => true, { capacityKw: 9 }));
    for (let i = 0; i < 40; i++) await s.tick(5_000);
    // two XPs (7.29 kW) and four asleep (0.14 kW) fit in 9 kW; a third would not
    expect(states(s).filter(Boolean)).toHaveLength(2);
    expect(s.fleet.asics.reduce((w, a) => w + a.reading(0).powerW, 0)).toBeLessThan(9_000);
  });

  it('sleeps a miner meant to sleep even while connected, but leaves starts and retargets to the control plane', async () => {
    const s = setup({ asleep: false });
    s.setConnected(true);
    s.conv.offer(desired(1, (_, i) => i >= 3, {}, 3000));
    await s.tick(1_000);
    expect(states(s)).toEqual([false, false, false, true, true, true]);
    expect(s.fleet.asics.map((a) => a.powerTargetW)).toEqual([null, null, null, null, null, null]);
    s.conv.offer(desired(2, () => true, {}, 3000));
    for (let i = 0; i < 5; i++) await s.tick(5_000);
    expect(states(s)).toEqual([false, false, false, true, true, true]);
    expect(s.conv.status().differing).toBe(6);
    s.setConnected(false);
    await s.tick(1_000);
    expect(states(s)).toEqual([true, true, true, true, true, true]);
    expect(s.fleet.asics.map((a) => a.powerTargetW)).toEqual([3000, 3000, 3000, 3000, 3000, 3000]);
  });

  it('puts a miner that reboots into mining back to sleep', async () => {
    const s = setup();
    s.setConnected(true);
    s.conv.offer(desired(1, () => false));
    await s.tick(1_000);
    s.fleet.asics[2]!.reboot();
    expect(s.fleet.asics[2]!.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    await s.tick(1_000);
    expect(s.fleet.asics[2]!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    expect(await s.metrics.desiredActions.get()).toMatchObject({ values: [expect.objectContaining({ labels: { action: 'sleep', outcome: 'ok' }, value: 1 })] });
  });

  it('ignores an older version and answers with the version it holds', () => {
    const s = setup();
    expect(s.conv.offer(desired(5, () => false))).toBe('stored');
    expect(s.conv.offer(desired(4, () => true))).toBe('older');
    expect(s.conv.offer(desired(5, () => false))).toBe('same');
    expect(s.held).toEqual([5, 5, 5]);
    expect(s.conv.held()!.asics.every((a) => !a.mining)).toBe(true);
  });

  it('does not start a miner the grid trip slept until a newer desired state arrives', async () => {
    const s = setup({ asleep: false });
    s.conv.offer(desired(1, () => true));
    await s.tick(1_000);
    const tripped = ids(6).slice(0, 4);
    await s.driver.apply(tripped.map((deviceId) => ({ kind: 'mining', deviceId, enabled: false, powerTargetW: null, urgent: true })));
    s.conv.tripped(tripped);
    for (let i = 0; i < 30; i++) await s.tick(5_000);
    expect(states(s)).toEqual([false, false, false, false, true, true]);
    expect(s.conv.status().trip_held).toBe(4);
    s.conv.offer(desired(2, () => true));
    for (let i = 0; i < 5; i++) await s.tick(5_000);
    expect(states(s)).toEqual([true, true, true, true, true, true]);
  });

  it('retries a failed action with backoff and never throws', async () => {
    let failing = 2;
    const attempts: number[] = [];
    const s = setup({
      asleep: false,
      wrap: (d) => ({
        ...d, inventory: () => d.inventory(), read: (n) => d.read(n),
        apply: async (ops) => {
          attempts.push(clock().now());
          if (failing-- > 0) throw new Error('miner unreachable');
          return d.apply(ops);
        },
      }),
    });
    const clock = () => s.clock;
    s.conv.offer(desired(1, (id) => id !== ids(6)[0]));
    for (let i = 0; i < 20; i++) await s.tick(250);
    expect(s.fleet.asics[0]!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    // 1 s, then 2 s of backoff: three attempts, not one per 250 ms tick
    expect(attempts.map((t) => t - attempts[0]!)).toEqual([0, 1_000, 3_000]);
    const failed = (await s.metrics.desiredActions.get()).values.find((v) => v.labels.outcome === 'failed');
    expect(failed?.value).toBe(2);
  });

  it('keeps the held state and the trip hold in the state dir across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-desired-'));
    dirs.push(dir);
    const s = setup({ stateDir: dir, asleep: false });
    s.conv.offer(desired(3, (_, i) => i % 2 === 0, { rampKwPerMin: 12, capacityKw: 40 }));
    s.conv.offer(desired(2, () => true));
    s.conv.tripped([ids(6)[0]!]);
    const again = s.make();
    expect(again.held()).toMatchObject({ version: 3, rampKwPerMin: 12, capacityKw: 40 });
    expect(again.held()!.asics.map((a) => a.mining)).toEqual([true, false, true, false, true, false]);
    expect(again.status()).toMatchObject({ version: 3, trip_held: 1 });
  });
});

describe('allowed starts', () => {
  it('never exceeds the ramp limit (but for one start in an empty window) nor the capacity', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.1, max: 6, noNaN: true }), { maxLength: 30 }),
        fc.double({ min: 0, max: 30, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.nat({ max: 4 }),
        fc.double({ min: 0, max: 20, noNaN: true }),
        fc.double({ min: 0, max: 60, noNaN: true }),
        (kws, ramp, capacity, startsInWindow, startedPerStart, draw) => {
          const startedInWindowKw = startsInWindow * startedPerStart;
          const candidates = kws.map((kw, i) => ({ deviceId: `d${i}`, kw }));
          const out = allowedStarts(candidates, { rampKwPerMin: ramp, capacityKw: capacity, startedInWindowKw, startsInWindow, drawKw: draw });
          const kw = out.reduce((s, id) => s + candidates[Number(id.slice(1))]!.kw, 0);
          expect(out).toEqual(candidates.slice(0, out.length).map((c) => c.deviceId));
          if (ramp > 0 && out.length > 0 && !(startsInWindow === 0 && out.length === 1)) expect(startedInWindowKw + kw).toBeLessThanOrEqual(ramp + 1e-6);
          if (capacity > 0 && out.length > 0) expect(draw + kw).toBeLessThanOrEqual(capacity + 1e-6);
          // nothing that fits is held back: the next candidate breaks a limit
          const next = candidates[out.length];
          if (next) {
            const overRamp = ramp > 0 && startsInWindow + out.length > 0 && startedInWindowKw + kw + next.kw > ramp + 1e-9;
            const overCap = capacity > 0 && draw + kw + next.kw > capacity + 1e-9;
            expect(overRamp || overCap).toBe(true);
          }
        },
      ),
    );
  });
});
