import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../test/harness/wait-for.js';
import { createManualClock, createSimClock } from './clock.js';
import { createSimFleet, type SimFleet } from './fleet.js';
import net from 'node:net';

const fleets: SimFleet[] = [];
const make = (seed: number | string, o: Partial<Parameters<typeof createSimFleet>[0]> = {}) => {
  const clock = createManualClock(1_750_000_000_000);
  const f = createSimFleet({ site: 'texas-1', gpus: 2, asics: 3, asicModel: 's21-pro', seed, clock, ...o });
  fleets.push(f);
  return { f, clock: o.clock ? undefined : clock };
};
afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close()));
});

describe('sim fleet', () => {
  it('names devices gpu-<site>-0001 and asic-<site>-00001', () => {
    const { f } = make(1);
    expect(f.gpus.map((g) => g.id)).toEqual(['gpu-texas-1-0001', 'gpu-texas-1-0002']);
    expect(f.asics.map((a) => a.id)).toEqual(['asic-texas-1-00001', 'asic-texas-1-00002', 'asic-texas-1-00003']);
    expect(f.asic('asic-texas-1-00002')?.model.name).toBe('Antminer S21 Pro');
    expect(f.gpu('gpu-texas-1-0002')?.name).toBe('NVIDIA H100 80GB HBM3');
    expect(() => createSimFleet({ site: 'Bad Site', gpus: 0, asics: 0, asicModel: 's21', seed: 1, clock: createManualClock() })).toThrow(RangeError);
  });

  it('step() advances every device to clock.now(); same seed → identical, different seed → different', () => {
    const run = (seed: number) => {
      const { f, clock } = make(seed);
      f.gpus[0]!.assign('w');
      for (let i = 0; i < 30; i++) {
        clock!.advance(1000);
        f.step();
      }
      return { gpus: f.gpus.map((g) => g.reading(0)), asics: f.asics.map((a) => a.reading(0)), elapsed: f.asics[0]!.cgminerStatus().elapsedS };
    };
    const a = run(7);
    expect(a.elapsed).toBe(30);
    expect(a).toEqual(run(7));
    expect(a).not.toEqual(run(8));
    // Devices within one fleet have independent streams.
    expect(a.asics[0]!.fanRpm).not.toEqual(a.asics[1]!.fanRpm);
  });

  it('start(tickMs) advances devices on a real interval with a fast sim clock', async () => {
    const clock = createSimClock({ speed: 100 });
    const f = createSimFleet({ site: 'canada-1', gpus: 0, asics: 1, asicModel: 's21', seed: 1, clock, asicsAsleep: true, startupSeconds: 20 });
    fleets.push(f);
    f.asics[0]!.setMining(true);
    f.start(20);
    // 20 sim-seconds of start-up at 100× is ~0.2 s of real time.
    await waitFor(() => f.asics[0]!.reading(0).hashrate5sThs > 190, { message: 'S21 reaches full hashrate' });
    f.stop();
  });

  it('serveCgminer starts one server per ASIC; close() stops them and is idempotent', async () => {
    const { f } = make(1);
    const eps = await f.serveCgminer({ host: '127.0.0.1', basePort: 0 });
    expect(eps.map((e) => e.deviceId)).toEqual(f.asics.map((a) => a.id));
    expect(new Set(eps.map((e) => e.port)).size).toBe(3);
    for (const e of eps) expect(e.endpoint).toBe(`127.0.0.1:${e.port}`);
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(eps[1]!.port, '127.0.0.1', () => s.write('{"command":"stats"}'));
      let buf = '';
      s.on('data', (c) => (buf += c));
      s.on('end', () => resolve(buf));
      s.on('error', reject);
    });
    expect(JSON.parse(reply.slice(0, -1)).STATS[1].miner_id).toBe(f.asics[1]!.minerId);
    await f.close();
    await f.close();
    await expect(f.serveCgminer()).rejects.toThrow(/closed/);
  });
});
