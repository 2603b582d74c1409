import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManualClock } from '../../sim-hardware/clock.js';
import { createCgminerServer, type CgminerServer } from '../../sim-hardware/cgminer-server.js';
import { createRng } from '../../sim-hardware/rng.js';
import { createS21 } from '../../sim-hardware/s21.js';
import { freePort } from '../../test/harness/ports.js';
import { CgminerError, parseCgminerReply, queryCgminer, sanitizeCgminerJson } from './cgminer-client.js';

const miner = createS21({ id: 'asic-t-00001', model: 's21-xp', rng: createRng(1).fork('asic-t-00001') });
miner.step(30);
let sim: CgminerServer;
/** real TCP servers that misbehave the way broken firmware does */
const rogues: net.Server[] = [];

async function rogue(onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer(onConn);
  rogues.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

beforeAll(async () => {
  sim = await createCgminerServer({ miner, port: 0, clock: createManualClock(1_750_000_000_000) });
});
afterAll(async () => {
  await sim.close();
  for (const r of rogues) r.close();
});

const q = (port: number, command: string) => queryCgminer({ host: '127.0.0.1', port, command, timeoutMs: 1000 });

describe('queryCgminer', () => {
  it('reads a single and a joined reply from a real server', async () => {
    const s = await q(sim.port, 'summary');
    expect((s.SUMMARY as any[])[0].Elapsed).toBe(30);
    const j = await q(sim.port, 'stats+summary');
    expect((j.stats as any[])[0].STATS[1].miner_id).toBe(miner.minerId);
    expect((j.summary as any[])[0].SUMMARY[0]['GHS 5s']).toBeGreaterThan(260_000);
  });

  it("an error STATUS is an 'api_error' carrying the STATUS Code", async () => {
    await expect(q(sim.port, 'restart')).rejects.toMatchObject({ code: 'api_error', apiCode: 45 });
    await expect(q(sim.port, 'frobnicate')).rejects.toMatchObject({ code: 'api_error', apiCode: 14 });
    await expect(q(sim.port, 'summary+restart')).rejects.toMatchObject({ code: 'api_error', apiCode: 45 });
  });

  it("a closed port is 'refused'", async () => {
    const port = await freePort();
    const err = await q(port, 'summary').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CgminerError);
    expect(err).toMatchObject({ code: 'refused' });
  });

  it("a server that accepts and never answers is a 'timeout'", async () => {
    const port = await rogue(() => {});
    const t0 = Date.now();
    await expect(queryCgminer({ host: '127.0.0.1', port, command: 'summary', timeoutMs: 200 })).rejects.toMatchObject({ code: 'timeout' });
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("a reply that is not JSON is 'bad_reply'", async () => {
    const port = await rogue((s) => s.end('<html>login</html>\0'));
    await expect(q(port, 'summary')).rejects.toMatchObject({ code: 'bad_reply' });
  });

  it('repairs the bmminer `}{` quirk between joined sections and STATS entries', async () => {
    const broken =
      '{"stats":[{"STATUS":[{"STATUS":"S","Code":70}],"STATS":[{"Type":"Antminer S21"}{"GHS 5s":1.5,}],"id":1}],' +
      '"summary":[{"STATUS":[{"STATUS":"S","Code":11}],"SUMMARY":[{"Elapsed":5}],"id":1}],"id":1}\0';
    expect(() => JSON.parse(broken.slice(0, -1))).toThrow();
    expect(sanitizeCgminerJson('[{"a":1}{"b":2}]')).toBe('[{"a":1},{"b":2}]');
    const port = await rogue((s) => s.end(broken));
    const r = await q(port, 'stats+summary');
    expect((r.stats as any[])[0].STATS[1]['GHS 5s']).toBe(1.5);
    expect(parseCgminerReply(broken, 'stats+summary')).toEqual(r);
  });
});
