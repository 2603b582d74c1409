import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCgminerServer, type CgminerServer } from './cgminer-server.js';
import { createManualClock } from './clock.js';
import { createRng } from './rng.js';
import { createS21 } from './s21.js';

const clock = createManualClock(1_750_000_000_000);
const miner = createS21({ id: 'asic-t-00001', model: 's21', rng: createRng(1).fork('asic-t-00001') });
miner.step(60);
let server: CgminerServer;

beforeAll(async () => {
  server = await createCgminerServer({ miner, host: '127.0.0.1', port: 0, clock });
});
afterAll(() => server.close());

/** Sends `payload`, optionally half-closes, and collects everything until the server closes. */
function exchange(payload: string, halfClose: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.host, port: server.port });
    const chunks: Buffer[] = [];
    sock.on('connect', () => (halfClose ? sock.end(payload) : sock.write(payload)));
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', () => {
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    sock.on('error', reject);
  });
}

describe('cgminer server over TCP', () => {
  it('listens on a random port and answers summary, then closes the connection', async () => {
    expect(server.port).toBeGreaterThan(0);
    const reply = await exchange('{"command":"summary"}', true);
    expect(reply.endsWith('\0')).toBe(true);
    const r = JSON.parse(reply.slice(0, -1));
    expect(r.STATUS[0]).toMatchObject({ Code: 11, When: 1_750_000_000 });
    expect(r.SUMMARY[0].Elapsed).toBe(60);
  });

  it('answers a client that writes the request and does not half-close', async () => {
    const reply = await exchange('{"command":"stats+summary"}', false);
    const r = JSON.parse(reply.slice(0, -1));
    expect(r.stats[0].STATS[1].chain_acn1).toBe(108);
    expect(r.summary[0].STATUS[0].Code).toBe(11);
  });

  it('answers the text form, including without a terminator and without half-close', async () => {
    expect(await exchange('summary|', false)).toMatch(/^STATUS=S,When=\d+,Code=11,Msg=Summary,.*\|\0$/s);
    expect(await exchange('version', false)).toMatch(/Code=22/);
  });

  it('garbage gets 23 / 14 and the server keeps serving', async () => {
    const bad = await exchange('{"command": nope', true);
    expect(JSON.parse(bad.slice(0, -1)).STATUS[0].Code).toBe(23);
    const binary = await exchange('\x01\x02\xff\xfe garbage', true);
    expect(binary).toMatch(/Code=14/);
    const big = await exchange('{' + 'x'.repeat(10_000), false); // over the 4 KB read limit
    expect(JSON.parse(big.slice(0, -1)).STATUS[0].Code).toBe(23);
    const ok = await exchange('{"command":"version"}', true);
    expect(JSON.parse(ok.slice(0, -1)).VERSION[0].Type).toBe('Antminer S21');
  });

  it('serves many concurrent connections', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => exchange('{"command":"devs"}', false)));
    for (const r of replies) expect(JSON.parse(r.slice(0, -1)).STATUS[0].Code).toBe(9);
  });

  it('close() is idempotent and the port stops accepting', async () => {
    const s = await createCgminerServer({ miner, port: 0, clock });
    await Promise.all([s.close(), s.close()]);
    await s.close();
    await expect(
      new Promise((resolve, reject) => {
        const c = net.connect({ host: s.host, port: s.port }, () => resolve('connected'));
        c.on('error', (e: NodeJS.ErrnoException) => reject(e));
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
