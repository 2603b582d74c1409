import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceKind } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { createManualClock } from '../../sim-hardware/clock.js';
import { createSimFleet, type CgminerEndpoint } from '../../sim-hardware/fleet.js';
import { handleCgminerRequest } from '../../sim-hardware/cgminer-protocol.js';
import { freePort } from '../../test/harness/ports.js';
import { createCgminerDriver } from './cgminer-driver.js';

const clock = createManualClock(1_750_000_000_000);
const fleet = createSimFleet({ site: 'texas-2', gpus: 0, asics: 4, asicModel: 's21-xp', seed: 11, clock });
let endpoints: CgminerEndpoint[];
let deadPort: number;

beforeAll(async () => {
  endpoints = await fleet.serveCgminer({ host: '127.0.0.1', basePort: 0 });
  deadPort = await freePort();
  clock.advance(120_000);
});
afterAll(() => fleet.close());

describe('cgminer driver against sim servers', () => {
  it('reads every reachable miner in parallel; a refused endpoint is an error entry', async () => {
    fleet.asics[2]!.setMining(false);
    const driver = createCgminerDriver({
      devices: [
        ...endpoints.map((e) => ({ id: e.deviceId, host: e.host, port: e.port, model: 's21-xp' })),
        { id: 'asic-texas-2-00099', host: '127.0.0.1', port: deadPort, model: 's21-xp' },
      ],
      timeoutMs: 1000,
      concurrency: 2,
    });
    clock.advance(20_000);
    const r = await driver.read(clock.now());
    expect(r.gpus).toEqual([]);
    expect(r.errors).toEqual([{ deviceId: 'asic-texas-2-00099', code: 'refused', message: expect.any(String) }]);
    expect(r.asics.map((a) => a.deviceId)).toEqual(endpoints.map((e) => e.deviceId));

    for (const a of r.asics) {
      const sim = fleet.asic(a.deviceId)!;
      const truth = sim.reading(clock.now());
      // Same instant (the server steps the fleet to clock.now()), so the protocol path must
      // deliver the model's own numbers.
      expect(a.hashrate5sThs).toBeCloseTo(truth.hashrate5sThs, 4);
      expect(a.boardTemperaturesC).toEqual(truth.boardTemperaturesC);
      expect(a.chipTemperaturesC).toEqual(truth.chipTemperaturesC);
      expect(a.fanRpm).toEqual(truth.fanRpm);
      expect(a.acceptedShares).toBe(truth.acceptedShares);
      expect(a.hardwareErrors).toBe(truth.hardwareErrors);
      expect(a.tsMs).toBe(clock.now());
      expect(a.miningState).toBe(truth.miningState);
      // Estimated power is within a few percent of the model's actual draw.
      expect(Math.abs(a.powerW - truth.powerW) / truth.powerW).toBeLessThan(0.05);
    }
    const asleep = r.asics[2]!;
    expect(asleep.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    expect(asleep.hashrate5sThs).toBe(0);
    expect(asleep.powerW).toBeLessThan(50);
    await driver.close();
    await driver.close();
  });

  it('falls back to separate stats and summary requests when the firmware refuses joins', async () => {
    const sim = fleet.asics[0]!;
    const seen: string[] = [];
    // A real TCP server in front of the sim protocol that, like old firmware, rejects joins.
    const old = net.createServer((sock) =>
      sock.once('data', (buf) => {
        const req = JSON.parse(buf.toString()) as { command: string };
        seen.push(req.command);
        sock.end(req.command.includes('+') ? handleCgminerRequest('{"command":"nope"}', sim, 0) : handleCgminerRequest(buf.toString(), sim, 0));
      }),
    );
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    try {
      const port = (old.address() as net.AddressInfo).port;
      const driver = createCgminerDriver({ devices: [{ id: sim.id, host: '127.0.0.1', port, model: 's21-xp' }], timeoutMs: 1000 });
      const r = await driver.read(clock.now());
      expect(r.errors).toEqual([]);
      expect(seen).toEqual(['stats+summary', 'stats', 'summary']);
      expect(r.asics[0]!.acceptedShares).toBe(sim.reading(0).acceptedShares);
      expect(r.asics[0]!.chipTemperaturesC).toHaveLength(3);
    } finally {
      old.close();
    }
  });

  it('inventory names the cgminer driver, endpoint and rated figures', () => {
    const e = endpoints[0]!;
    const driver = createCgminerDriver({ devices: [{ id: e.deviceId, host: e.host, port: e.port, model: 's21-xp' }] });
    expect(driver.name).toBe('cgminer');
    expect(driver.inventory()).toEqual([
      {
        id: e.deviceId, kind: DeviceKind.DEVICE_KIND_ASIC, model: 'Antminer S21 XP', endpoint: `127.0.0.1:${e.port}`,
        serial: '', ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: 0, driver: 'cgminer',
      },
    ]);
  });

  it('rejects bad options, naming every problem', () => {
    expect(() =>
      createCgminerDriver({
        devices: [
          { id: 'a', host: 'h', port: 0, model: 's19' },
          { id: 'a', host: '', port: 4028, model: 's21' },
        ],
        concurrency: 0,
      }),
    ).toThrow(/port 0.*model "s19".*duplicated.*host is empty.*concurrency/);
  });
});
