// The saved trip settings: a round trip through disk, and an agent that starts while the control
// plane is unreachable is armed from them and trips on its own (real Aedes broker on a random
// port, the agent in-process with simulated S21s).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiningState, TelemetryBatch } from '../../proto/gen/hcp/v1/telemetry.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { createAgent, type Agent } from '../agent.js';
import { simDriverRegistry } from '../main-sim.js';
import { parseAgentArgs } from '../config.js';
import { loadTrip, saveTrip } from './trip-store.js';

describe('grid trip store', () => {
  it('round-trips the settings and reads nothing from an empty directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-trip-'));
    try {
      expect(loadTrip(dir)).toBeNull();
      saveTrip(dir, { enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: ['asic-texas-1-00002'] });
      expect(loadTrip(dir)).toEqual({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: ['asic-texas-1-00002'] });
      expect(JSON.parse(readFileSync(join(dir, 'grid-trip.json'), 'utf8'))).toMatchObject({ region: 'ercot' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('an agent restarted while the control plane is unreachable', () => {
    let aedes: Aedes;
    let server: Server;
    let url = '';
    let agent: Agent | undefined;
    const dir = mkdtempSync(join(tmpdir(), 'hcp-trip-'));

    beforeAll(async () => {
      aedes = await Aedes.createBroker();
      server = createServer(aedes.handle);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      await agent?.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    });

    it('is armed from the saved settings and sleeps its ASICs at the threshold on its own', async () => {
      writeFileSync(join(dir, 'grid-trip.json'), JSON.stringify({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] }));
      const parsed = parseAgentArgs([
        '--site', 'texas-9', '--control-plane', '127.0.0.1:1', '--mqtt', url, '--sim-asics', '3', '--sim-startup-s', '1',
        '--sample-interval-ms', '200', '--state-dir', dir,
      ], {});
      if (!('config' in parsed)) throw new Error('expected a config');
      agent = await createAgent(parsed.config, pino({ level: 'silent' }), { drivers: simDriverRegistry() });

      const sub = await mqtt.connectAsync(url);
      const latest: { states: MiningState[] } = { states: [] };
      sub.on('message', (_t, payload) => {
        latest.states = TelemetryBatch.decode(payload).asics.map((a) => a.miningState);
      });
      await sub.subscribeAsync('hcp/v1/sites/texas-9/telemetry');
      const until = (ok: () => boolean, message: string) => waitFor(ok, { timeoutMs: 10_000, intervalMs: 20, message });
      await until(() => latest.states.length === 3 && latest.states.every((s) => s === MiningState.MINING_STATE_MINING), 'mining');
      await sub.publishAsync('hcp/v1/grid/ercot/frequency', JSON.stringify({ ts: new Date().toISOString(), hz: 59.6 }));
      await until(() => latest.states.every((s) => s === MiningState.MINING_STATE_SLEEPING), 'asleep without the control plane');
      await sub.endAsync();
    });
  });
});
