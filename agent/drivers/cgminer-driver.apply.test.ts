import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { createAntminerWebServer, type AntminerWebServer } from '../../sim-hardware/antminer-web-server.js';
import { s21WebMiner } from '../../sim-hardware/antminer-web.js';
import { createManualClock } from '../../sim-hardware/clock.js';
import { createSimFleet, type CgminerEndpoint } from '../../sim-hardware/fleet.js';
import { lowPowerTargetW, S21_MODELS } from '../../sim-hardware/s21-models.js';
import { freePort } from '../../test/harness/ports.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { ASIC_MODELS } from '../../proto/asic-models.js';
import { createCgminerDriver, type CgminerDeviceConfig } from './cgminer-driver.js';

const clock = createManualClock(1_750_000_000_000);
const fleet = createSimFleet({ site: 'texas-4', gpus: 0, asics: 3, asicModel: 's21-xp', seed: 12, clock });
const DEAD = 'asic-texas-4-00099';
let endpoints: CgminerEndpoint[];
let devices: CgminerDeviceConfig[];
let deadPort: number;

beforeAll(async () => {
  endpoints = await fleet.serveCgminer();
  deadPort = await freePort();
  devices = endpoints.map((e) => ({ id: e.deviceId, host: e.host, port: e.port, webPort: e.webPort, model: 's21-xp' }));
  clock.advance(60_000);
});
afterAll(() => fleet.close());

const off = (deviceId: string) => ({ kind: 'mining' as const, deviceId, enabled: false, powerTargetW: null });
const on = (deviceId: string, powerTargetW: number | null = null) => ({ kind: 'mining' as const, deviceId, enabled: true, powerTargetW });

describe('cgminer driver apply against sim miners (web control endpoint)', () => {
  it('agrees with the simulator on the low-power wattage of every model', () => {
    for (const id of ['s21', 's21-pro', 's21-xp'] as const) expect(ASIC_MODELS[id]!.lowPowerW).toBe(lowPowerTargetW(S21_MODELS[id]));
  });

  it('off then on; an unreachable miner is driver_error while the others succeed', async () => {
    const driver = createCgminerDriver({
      devices: [...devices, { id: DEAD, host: '127.0.0.1', port: deadPort, webPort: deadPort, model: 's21-xp' }],
      timeoutMs: 1000,
    });
    const ids = endpoints.map((e) => e.deviceId);
    const res = await driver.apply([...ids, DEAD].map(off));
    expect(res.slice(0, 3)).toEqual(ids.map((id) => ({ deviceId: id, ok: true, code: 'ok', message: '', state: { deviceId: id, state: 'sleeping', workloadId: '', powerTargetW: 0 } })));
    expect(res[3]).toMatchObject({ deviceId: DEAD, ok: false, code: 'driver_error', state: { state: 'unreachable' } });
    expect(res[3]!.message).toMatch(/refused/);
    for (const id of ids) expect(fleet.asic(id)!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);

    clock.advance(10_000);
    let r = await driver.read(clock.now());
    expect(r.asics.map((a) => [a.miningState, a.hashrate5sThs])).toEqual(ids.map(() => [MiningState.MINING_STATE_SLEEPING, 0]));
    expect(r.asics.every((a) => a.powerW < 50)).toBe(true);

    // Sleeping a sleeping miner succeeds and changes nothing.
    expect((await driver.apply([off(ids[0]!)]))[0]).toMatchObject({ ok: true, state: { state: 'sleeping' } });

    const woke = await driver.apply([on(ids[0]!), on(ids[1]!)]);
    expect(woke.map((w) => [w.code, w.state.state])).toEqual([['ok', 'ramping'], ['ok', 'ramping']]);
    clock.advance(250_000);
    r = await driver.read(clock.now());
    expect(r.asics.map((a) => a.miningState)).toEqual([MiningState.MINING_STATE_MINING, MiningState.MINING_STATE_MINING, MiningState.MINING_STATE_SLEEPING]);
    expect(r.asics[0]!.hashrate5sThs).toBeGreaterThan(260);
    // On while mining: ok, stays mining (no conf write, so no bmminer restart on real firmware).
    expect((await driver.apply([on(ids[0]!)]))[0]).toMatchObject({ ok: true, state: { state: 'mining', powerTargetW: 0 } });
    await driver.close();
  });

  it('only the low-power target is settable; any other is unsupported and leaves the miner alone', async () => {
    const driver = createCgminerDriver({ devices, timeoutMs: 1000 });
    const e = endpoints[2]!;
    const lp = ASIC_MODELS['s21-xp']!.lowPowerW;
    const [bad] = await driver.apply([on(e.deviceId, 3000)]);
    expect(bad).toMatchObject({ ok: false, code: 'unsupported' });
    expect(bad!.message).toContain(`${lp} W`);
    expect(fleet.asic(e.deviceId)!.powerTargetW).toBeNull();

    const [low] = await driver.apply([on(e.deviceId, lp)]);
    expect(low).toMatchObject({ ok: true, code: 'ok', state: { powerTargetW: lp } });
    expect(fleet.asic(e.deviceId)!.powerTargetW).toBe(lp);
    clock.advance(300_000);
    const a = (await driver.read(clock.now())).asics[2]!;
    expect(a.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(a.hashrate5sThs).toBeGreaterThan(200);
    expect(a.hashrate5sThs).toBeLessThan(240);
    // and telemetry says so, so a reconciler asking for this target sees it reached
    expect(a.powerTargetW).toBe(lp);

    // Back to stock, in the same batch as ops that must fail on their own.
    const res = await driver.apply([
      { kind: 'assign', deviceId: e.deviceId, workloadId: 'wl-1' },
      { kind: 'release', deviceId: e.deviceId },
      on(e.deviceId, Number.NaN),
      on(e.deviceId, -1),
      on('gpu-texas-4-0001'),
      on(e.deviceId),
    ]);
    expect(res.map((x) => x.code)).toEqual(['invalid_command', 'invalid_command', 'invalid_command', 'invalid_command', 'unknown_device', 'ok']);
    expect(fleet.asic(e.deviceId)!.powerTargetW).toBeNull();
    expect(res[5]!.state).toMatchObject({ state: 'mining', powerTargetW: 0 });
    clock.advance(300_000);
    expect((await driver.read(clock.now())).asics[2]!.powerTargetW).toBe(0);
  });

  it('wrong credentials and a miner that never answers are driver_error, within the timeout', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const silentPort = (silent.address() as net.AddressInfo).port;
      const driver = createCgminerDriver({
        devices: [devices[0]!, { id: DEAD, host: '127.0.0.1', port: silentPort, webPort: silentPort, model: 's21-xp' }],
        webCredentials: { user: 'root', password: 'admin' },
        timeoutMs: 300,
      });
      const res = await driver.apply([off(devices[0]!.id), off(DEAD)]);
      expect(res.map((x) => [x.code, x.state.state])).toEqual([['driver_error', 'unreachable'], ['driver_error', 'unreachable']]);
      expect(res[0]!.message).toMatch(/^auth: .*refused/);
      expect(res[1]!.message).toMatch(/^timeout: .*300 ms/);
      expect(fleet.asic(devices[0]!.id)!.miningState).not.toBe(MiningState.MINING_STATE_SLEEPING);
    } finally {
      silent.close();
    }
  });

  it('an urgent op on a prepared miner is one round trip: conf kept, digest nonce reused; a stale nonce costs one more', async () => {
    const wall = createManualClock(1_750_000_000_000);
    const servers: AntminerWebServer[] = [];
    for (const e of endpoints) {
      servers.push(await createAntminerWebServer({ miner: s21WebMiner(fleet.asic(e.deviceId)!), port: 0, nonceTtlMs: 60_000, now: () => wall.now() }));
    }
    const own = endpoints.map((e, i) => ({ ...devices[i]!, webPort: servers[i]!.port }));
    const driver = createCgminerDriver({ devices: own, timeoutMs: 1000 });
    const ids = own.map((d) => d.id);
    const counts = () => servers.map((s) => [s.stats.requests, s.stats.challenged]);
    const since = (before: number[][]) => counts().map(([r, c], i) => [r! - before[i]![0]!, c! - before[i]![1]!]);
    try {
      const setup = createCgminerDriver({ devices: own, timeoutMs: 1000 });
      await setup.apply(ids.map((id) => on(id))); // all mining at stock
      await setup.close();
      expect(await driver.prepare!(ids.slice(0, 2))).toEqual({ ready: 2, failed: 0 });

      let before = counts();
      const urgentOff = (id: string) => ({ ...off(id), urgent: true });
      const res = await driver.apply(ids.map(urgentOff));
      expect(res.map((r) => [r.code, r.state.state])).toEqual(ids.map(() => ['ok', 'sleeping']));
      for (const id of ids) expect(fleet.asic(id)!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
      // prepared: the write alone; the third, never prepared nor read by this driver: challenge, read, write
      expect(since(before)).toEqual([[1, 0], [1, 0], [3, 1]]);

      // An ordinary op still reads before it writes, on the same nonce.
      before = counts();
      expect((await driver.apply([on(ids[0]!)]))[0]).toMatchObject({ ok: true, state: { state: 'ramping' } });
      expect(since(before)[0]).toEqual([2, 0]);

      // The firmware expires the nonce: one 401 with stale=true, answered, and the op succeeds.
      wall.advance(61_000);
      before = counts();
      expect((await driver.apply([urgentOff(ids[0]!)]))[0]).toMatchObject({ ok: true, state: { state: 'sleeping' } });
      expect(since(before)[0]).toEqual([2, 1]);
      expect(fleet.asic(ids[0]!)!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);

      // A miner that cannot be prepared is counted, and an urgent op on it fails on its own.
      const dead = createCgminerDriver({ devices: [...own, { id: DEAD, host: '127.0.0.1', port: deadPort, webPort: deadPort, model: 's21-xp' }], timeoutMs: 500 });
      expect(await dead.prepare!([ids[0]!, DEAD])).toEqual({ ready: 1, failed: 1 });
      const both = await dead.apply([{ ...on(ids[0]!), urgent: true }, urgentOff(DEAD)]);
      expect(both.map((r) => r.code)).toEqual(['ok', 'driver_error']);
      await dead.close();
    } finally {
      await driver.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('an urgent op wins over an ordinary one under way on the same miner; a conf older than two refreshes is read again', async () => {
    const wall = createManualClock(1_750_000_000_000);
    const e = endpoints[1]!;
    const server = await createAntminerWebServer({ miner: s21WebMiner(fleet.asic(e.deviceId)!), port: 0 });
    const dev = { ...devices[1]!, webPort: server.port };
    const driver = createCgminerDriver({ devices: [dev], timeoutMs: 1000, confRefreshMs: 60_000, now: () => wall.now() });
    const urgentOff = { ...off(dev.id), urgent: true };
    try {
      await driver.apply([on(dev.id)]);
      expect(await driver.prepare!([dev.id])).toEqual({ ready: 1, failed: 0 });
      // The ordinary op is reading when the trip fires: it must not write low power afterwards.
      const [[slow], [trip]] = await Promise.all([driver.apply([on(dev.id, ASIC_MODELS['s21-xp']!.lowPowerW)]), driver.apply([urgentOff])]);
      expect(trip).toMatchObject({ ok: true, state: { state: 'sleeping' } });
      expect(slow).toMatchObject({ ok: false, code: 'superseded' });
      expect(fleet.asic(dev.id)!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
      expect(fleet.asic(dev.id)!.powerTargetW).toBeNull();

      // Two refresh periods without a read (the timer is a minute away): the conf is too old to write blind.
      await driver.apply([on(dev.id)]);
      wall.advance(120_001);
      const before = server.stats.requests;
      expect((await driver.apply([urgentOff]))[0]).toMatchObject({ ok: true });
      expect(server.stats.requests - before).toBe(2); // read, then write
    } finally {
      await driver.close();
      await server.close();
    }
  });

  it('reads the confs of prepared miners again every confRefreshMs', async () => {
    const e = endpoints[0]!;
    const server = await createAntminerWebServer({ miner: s21WebMiner(fleet.asic(e.deviceId)!), port: 0 });
    const driver = createCgminerDriver({ devices: [{ ...devices[0]!, webPort: server.port }], timeoutMs: 1000, confRefreshMs: 1000 });
    try {
      await driver.prepare!([e.deviceId]);
      const after = server.stats.requests;
      await waitFor(() => server.stats.requests >= after + 2, { message: 'two refreshes', timeoutMs: 5000 });
    } finally {
      await driver.close();
      await server.close();
    }
  });

  it('rejects a webPort that is not a TCP port', () => {
    expect(() => createCgminerDriver({ devices: [{ ...devices[0]!, webPort: 70_000 }] })).toThrow(/webPort 70000 is not a TCP port/);
  });
});
