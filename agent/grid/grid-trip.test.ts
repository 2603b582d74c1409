import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { GridTripFired } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { encodeFrequency } from '../../proto/market-topics.js';
import { createManualClock } from '../../sim-hardware/clock.js';
import { createSimFleet } from '../../sim-hardware/fleet.js';
import { createAntminerWebServer } from '../../sim-hardware/antminer-web-server.js';
import { s21WebMiner } from '../../sim-hardware/antminer-web.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { createCgminerDriver } from '../drivers/cgminer-driver.js';
import { createSimDriver } from '../../sim-hardware/agent-driver.js';
import { createAgentMetrics } from '../metrics.js';
import { createGridTrip } from './grid-trip.js';

function setup() {
  const clock = createManualClock(1_750_000_000_000);
  const fleet = createSimFleet({ site: 'texas-1', gpus: 1, asics: 4, asicModel: 's21-xp', seed: 2, clock, startupSeconds: 1 });
  const driver = createSimDriver(fleet);
  const listening = new Map<string, (p: Buffer) => void>();
  const reports: GridTripFired[] = [];
  const metrics = createAgentMetrics();
  const trip = createGridTrip({
    drivers: [driver],
    listen: (t, fn) => listening.set(t, fn),
    unlisten: (t) => listening.delete(t),
    report: (f) => reports.push(f),
    changed: () => {},
    log: pino({ level: 'silent' }),
    metrics,
    now: () => clock.now(),
  });
  const publish = async (topic: string, hz: number) => {
    listening.get(topic)?.(Buffer.from(encodeFrequency({ ts: new Date(clock.now()).toISOString(), hz })));
    await trip.idle();
  };
  const states = async () => (await driver.read(clock.now())).asics.map((a) => a.miningState);
  return { clock, trip, listening, reports, metrics, publish, states, driver };
}

const ERCOT = 'hcp/v1/grid/ercot/frequency';
const SLEEPING = MiningState.MINING_STATE_SLEEPING;

describe('agent under-frequency trip', () => {
  it('does nothing until armed; armed, it sleeps every ASIC at or below the threshold, once', async () => {
    const s = setup();
    expect(s.listening.size).toBe(0);
    const armed = s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] });
    expect(armed.ok && armed.devices.length).toBe(4);
    expect([...s.listening.keys()]).toEqual([ERCOT]);

    await s.publish(ERCOT, 59.75);
    expect(await s.states()).not.toContain(SLEEPING);
    await s.publish(ERCOT, 59.7); // "at or below"
    expect(await s.states()).toEqual([SLEEPING, SLEEPING, SLEEPING, SLEEPING]);
    expect(s.reports).toHaveLength(1);
    expect(s.reports[0]).toMatchObject({ region: 'ercot', hz: 59.7 });
    expect(s.reports[0]!.deviceIds).toHaveLength(4);

    // still low: no second trip
    await s.publish(ERCOT, 59.6);
    expect(s.reports).toHaveLength(1);
  });

  it('re-arms once the frequency is back above the threshold, and fires on the next dip', async () => {
    const s = setup();
    s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: ['asic-texas-1-00002'] });
    await s.publish(ERCOT, 59.5);
    expect(s.reports.map((r) => r.deviceIds)).toEqual([['asic-texas-1-00002']]);
    const st = await s.states();
    expect(st.filter((x) => x === SLEEPING)).toHaveLength(1); // only the covered one
    await s.publish(ERCOT, 60.0);
    expect(s.trip.state()).toMatchObject({ fired: false });
    await s.publish(ERCOT, 59.65);
    expect(s.reports).toHaveLength(2);
  });

  it('counts a malformed reading and ignores other regions', async () => {
    const s = setup();
    s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] });
    s.listening.get(ERCOT)!(Buffer.from('{"hz":"low"}'));
    s.listening.get(ERCOT)!(Buffer.from('not json'));
    expect((await s.metrics.registry.getSingleMetric('hcp_agent_grid_readings_rejected_total')!.get()).values[0]!.value).toBe(2);
    await s.publish('hcp/v1/grid/ieso/frequency', 59.0);
    expect(s.reports).toHaveLength(0);
  });

  it('refuses bad settings whole and keeps the earlier ones', async () => {
    const s = setup();
    s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] });
    expect(s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 0, deviceIds: [] })).toMatchObject({ ok: false, code: 'invalid_command' });
    expect(s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: ['gpu-texas-1-0001'] })).toMatchObject({ ok: false, code: 'unknown_device' });
    expect(s.trip.arm({ enabled: true, region: 'Bad Region', thresholdHz: 59.7, deviceIds: [] })).toMatchObject({ ok: false });
    expect(s.trip.state()).toEqual({ region: 'ercot', thresholdHz: 59.7, devices: 4, fired: false });
  });

  it('moves to another region and disarms', async () => {
    const s = setup();
    s.trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] });
    s.trip.arm({ enabled: true, region: 'ieso', thresholdHz: 59.5, deviceIds: [] });
    expect([...s.listening.keys()]).toEqual(['hcp/v1/grid/ieso/frequency']);
    s.trip.arm({ enabled: false, region: '', thresholdHz: 0, deviceIds: [] });
    expect(s.listening.size).toBe(0);
    expect(s.trip.state()).toBeNull();
  });

  it('over Antminers on stock firmware: arming reads their confs, so the trip is one web request per miner', async () => {
    const clock = createManualClock(1_750_000_000_000);
    const fleet = createSimFleet({ site: 'texas-1', gpus: 0, asics: 3, asicModel: 's21', seed: 3, clock, startupSeconds: 1 });
    const servers = await Promise.all(fleet.asics.map((a) => createAntminerWebServer({ miner: s21WebMiner(a), port: 0 })));
    // cgminer reads are not used by a trip; any port will do
    const driver = createCgminerDriver({ devices: fleet.asics.map((a, i) => ({ id: a.id, host: '127.0.0.1', port: 4028, webPort: servers[i]!.port, model: 's21' })), timeoutMs: 1000 });
    const listening = new Map<string, (p: Buffer) => void>();
    const reports: GridTripFired[] = [];
    const trip = createGridTrip({
      drivers: [driver], listen: (t, fn) => listening.set(t, fn), unlisten: (t) => listening.delete(t),
      report: (f) => reports.push(f), changed: () => {}, log: pino({ level: 'silent' }), metrics: createAgentMetrics(), now: () => clock.now(),
    });
    try {
      clock.advance(30_000);
      expect(trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] }).ok).toBe(true);
      // challenge + get_miner_conf on each, in the background
      await waitFor(() => servers.every((s) => s.stats.requests === 2), { message: 'confs read on arming' });
      listening.get(ERCOT)!(Buffer.from(encodeFrequency({ ts: new Date(clock.now()).toISOString(), hz: 59.6 })));
      await trip.idle();
      expect(servers.map((s) => s.stats.requests)).toEqual([3, 3, 3]);
      expect(fleet.asics.map((a) => a.miningState)).toEqual([SLEEPING, SLEEPING, SLEEPING]);
      expect(reports[0]!.deviceIds).toEqual(fleet.asics.map((a) => a.id));
    } finally {
      await driver.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
