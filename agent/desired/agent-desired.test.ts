// The agent holding its site's desired state, end to end in-process: a real gRPC control plane
// stand-in on a loopback port sends DesiredState after HelloAck, a real Aedes broker carries
// telemetry and the grid frequency, and the agent runs the simulated fleet on a manual clock.
// The desired state survives a restart; the restarted agent, with no control plane, converges its
// miners within the ramp limit (measured from the fleet's own state changes), sleeps a miner that
// reboots into mining, and leaves a miner the grid trip slept asleep.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentGatewayService, type AgentMessage, type ControlMessage, type DesiredState } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { createManualClock } from '../../sim-hardware/clock.js';
import type { SimFleet } from '../../sim-hardware/fleet.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { createAgent, type Agent } from '../agent.js';
import { parseAgentArgs } from '../config.js';
import { simDriverRegistry } from '../main-sim.js';
import { RAMP_WINDOW_MS } from './converger.js';
import { DESIRED_FILE, loadDesired } from './store.js';

const SITE = 'texas-7';
const ids = Array.from({ length: 6 }, (_, i) => `asic-${SITE}-${String(i + 1).padStart(5, '0')}`);
const XP_W = 3645;
const RAMP_KW = 8; // two S21 XPs a minute
const desired = (version: number, mining: (i: number) => boolean): DesiredState => ({
  version, generatedAtMs: Date.now(), rampKwPerMin: RAMP_KW, capacityKw: 0,
  asics: ids.map((deviceId, i) => ({ deviceId, mining: mining(i), powerTargetW: 0, source: 'operator' })),
});
const running = (s: MiningState) => s === MiningState.MINING_STATE_MINING || s === MiningState.MINING_STATE_RAMPING;
const until = (ok: () => boolean | Promise<boolean>, message: string) => waitFor(ok, { timeoutMs: 10_000, intervalMs: 20, message });

describe('the agent holds the desired state', () => {
  let aedes: Aedes;
  let broker: NetServer;
  let mqttUrl = '';
  let cp: Server | undefined;
  let cpPort = 0;
  const received: AgentMessage[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'hcp-desired-'));
  const agents: Agent[] = [];

  const args = (controlPlane: string) => {
    const parsed = parseAgentArgs([
      '--site', SITE, '--control-plane', controlPlane, '--mqtt', mqttUrl, '--sim-asics', '6', '--asic-model', 's21-xp', '--sim-startup-s', '30',
      // ticks are driven by the test on the manual clock
      '--sample-interval-ms', '60000', '--state-dir', dir,
    ], {});
    if (!('config' in parsed)) throw new Error('expected a config');
    return parsed.config;
  };
  const health = async (a: Agent) => (await (await fetch(`http://127.0.0.1:${a.httpPort}/health`)).json()) as { desired_state: { version: number; differing: number; trip_held: number } };

  beforeAll(async () => {
    aedes = await Aedes.createBroker();
    broker = createServer(aedes.handle);
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    mqttUrl = `mqtt://127.0.0.1:${(broker.address() as { port: number }).port}`;
    // the control plane's side of the stream: HelloAck, then v2, then an older v1
    cp = new Server();
    cp.addService(AgentGatewayService, {
      connect: (call: ServerDuplexStream<AgentMessage, ControlMessage>) => {
        call.on('data', (m: AgentMessage) => {
          received.push(m);
          if (m.body?.$case !== 'hello') return;
          call.write({ body: { $case: 'helloAck', value: { heartbeatIntervalMs: 60_000, serverTimeMs: Date.now(), devicesRegistered: 6, gridTrip: undefined } } });
          call.write({ body: { $case: 'desiredState', value: desired(2, (i) => i < 5) } });
          call.write({ body: { $case: 'desiredState', value: desired(1, () => false) } });
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    cpPort = await new Promise<number>((resolve, reject) => cp!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  });
  afterAll(async () => {
    for (const a of agents) await a.close();
    cp?.forceShutdown();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores the newest version from the control plane, ignores an older one, and answers with the version held', async () => {
    const clock = createManualClock(Date.now());
    let fleet: SimFleet | undefined;
    const agent = await createAgent(args(`127.0.0.1:${cpPort}`), pino({ level: 'silent' }), {
      drivers: simDriverRegistry({ clock: () => clock, onFleet: (f) => (fleet = f) }),
      now: () => clock.now(),
    });
    agents.push(agent);
    const held = () => received.flatMap((m) => (m.body?.$case === 'desiredStateHeld' ? [m.body.value.version] : []));
    await until(() => held().length === 2, 'two DesiredStateHeld answers');
    expect(held()).toEqual([2, 2]);
    expect(loadDesired(dir)?.desired).toMatchObject({ version: 2, rampKwPerMin: RAMP_KW });
    expect((await health(agent)).desired_state.version).toBe(2);
    // connected: the miner meant to sleep is slept; the others are the control plane's to start
    expect(fleet!.asics.every((a) => running(a.miningState))).toBe(true);
    clock.advance(1_000);
    await agent.tick();
    expect(fleet!.asics.map((a) => running(a.miningState))).toEqual([true, true, true, true, true, false]);
    await agent.close();
    agents.pop();
    cp!.forceShutdown();
    cp = undefined;
  });

  it('restarted with no control plane, converges its miners to the stored state within the ramp limit, and sleeps a miner that reboots into mining', async () => {
    expect(existsSync(join(dir, DESIRED_FILE))).toBe(true);
    const clock = createManualClock(Date.now());
    let fleet: SimFleet | undefined;
    // the site lost power: every miner boots asleep
    const agent = await createAgent(args(`127.0.0.1:${cpPort}`), pino({ level: 'silent' }), {
      drivers: simDriverRegistry({ clock: () => clock, asicsAsleep: true, onFleet: (f) => (fleet = f) }),
      now: () => clock.now(),
    });
    agents.push(agent);
    expect((await health(agent)).desired_state.version).toBe(2);
    const starts: number[] = [];
    const last = fleet!.asics.map((a) => a.miningState);
    for (let i = 0; i < 60; i++) {
      clock.advance(5_000);
      await agent.tick();
      fleet!.asics.forEach((a, j) => {
        if (last[j] === MiningState.MINING_STATE_SLEEPING && running(a.miningState)) starts.push(clock.now());
        last[j] = a.miningState;
      });
    }
    expect(fleet!.asics.map((a) => running(a.miningState))).toEqual([true, true, true, true, true, false]);
    expect(starts).toHaveLength(5);
    for (const t of starts) {
      const kw = (starts.filter((s) => s > t - RAMP_WINDOW_MS && s <= t).length * XP_W) / 1000;
      expect(kw).toBeLessThanOrEqual(RAMP_KW);
    }
    expect((await health(agent)).desired_state).toMatchObject({ version: 2, differing: 0 });

    fleet!.asics[5]!.reboot();
    expect(running(fleet!.asics[5]!.miningState)).toBe(true);
    clock.advance(1_000);
    await agent.tick();
    expect(fleet!.asics[5]!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    await agent.close();
    agents.pop();
  });

  it('does not start again the miners its grid trip slept', async () => {
    writeFileSync(join(dir, 'grid-trip.json'), JSON.stringify({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] }));
    const clock = createManualClock(Date.now());
    let fleet: SimFleet | undefined;
    const agent = await createAgent(args(`127.0.0.1:${cpPort}`), pino({ level: 'silent' }), {
      drivers: simDriverRegistry({ clock: () => clock, onFleet: (f) => (fleet = f) }),
      now: () => clock.now(),
    });
    agents.push(agent);
    const pub = await mqtt.connectAsync(mqttUrl);
    // the trip listens once the agent's MQTT session is up; publish until it has fired
    await until(async () => {
      await pub.publishAsync('hcp/v1/grid/ercot/frequency', JSON.stringify({ ts: new Date().toISOString(), hz: 59.6 }));
      return fleet!.asics.every((a) => a.miningState === MiningState.MINING_STATE_SLEEPING);
    }, 'every miner tripped asleep');
    await pub.endAsync();
    await until(async () => (await health(agent)).desired_state.trip_held === 6, 'the trip hold recorded');
    for (let i = 0; i < 30; i++) {
      clock.advance(5_000);
      await agent.tick();
    }
    expect(fleet!.asics.every((a) => a.miningState === MiningState.MINING_STATE_SLEEPING)).toBe(true);
    expect((await health(agent)).desired_state).toMatchObject({ version: 2, differing: 5, trip_held: 6 });
    expect(loadDesired(dir)?.tripHeld).toHaveLength(6);
  });
});
