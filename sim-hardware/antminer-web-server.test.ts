import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { createAntminerWebServer, parseAuthParams } from './antminer-web-server.js';
import { s21WebMiner } from './antminer-web.js';
import { createManualClock } from './clock.js';
import { createSimFleet, type CgminerEndpoint } from './fleet.js';
import { lowPowerTargetW, S21_MODELS } from './s21-models.js';

const clock = createManualClock(1_750_000_000_000);
const fleet = createSimFleet({ site: 'texas-3', gpus: 0, asics: 2, asicModel: 's21', seed: 4, clock });
let eps: CgminerEndpoint[];
beforeAll(async () => {
  eps = await fleet.serveCgminer();
});
afterAll(() => fleet.close());

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const url = (e: CgminerEndpoint, path: string) => `http://${e.webEndpoint}${path}`;

/** a request with HTTP Digest as the test's own client: challenge, then answer it */
async function digest(e: CgminerEndpoint, method: 'GET' | 'POST', path: string, body?: string, password = 'root') {
  const first = await fetch(url(e, path), { method, body });
  await first.text();
  expect(first.status).toBe(401);
  const c = parseAuthParams(first.headers.get('www-authenticate')!.replace(/^Digest /, ''));
  const ha1 = md5(`root:${c.realm}:${password}`);
  const ha2 = md5(`${method}:${path}`);
  const response = md5(`${ha1}:${c.nonce}:00000001:abc:auth:${ha2}`);
  const auth = `Digest username="root", realm="${c.realm}", nonce="${c.nonce}", uri="${path}", qop=auth, nc=00000001, cnonce="abc", response="${response}"`;
  const res = await fetch(url(e, path), { method, body, headers: { authorization: auth } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}
const basic = (e: CgminerEndpoint, method: string, path: string, body?: string) =>
  fetch(url(e, path), { method, body, headers: { authorization: `Basic ${Buffer.from('root:root').toString('base64')}` } });

describe('simulated Antminer web control endpoint', () => {
  it('serveCgminer gives each miner a web port beside its cgminer port', () => {
    expect(eps).toHaveLength(2);
    for (const e of eps) {
      expect(e.webPort).toBeGreaterThan(0);
      expect(e.webPort).not.toBe(e.port);
      expect(e.webEndpoint).toBe(`127.0.0.1:${e.webPort}`);
    }
  });

  it('demands auth as stock firmware does (Digest challenge, realm "antMiner Configuration")', async () => {
    const res = await fetch(url(eps[0]!, '/cgi-bin/get_miner_conf.cgi'));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Digest realm="antMiner Configuration", nonce="[0-9a-f]{32}", qop="auth"/);
    expect(await res.json()).toMatchObject({ code: 'E401' });
    expect((await digest(eps[0]!, 'GET', '/cgi-bin/get_miner_conf.cgi', undefined, 'admin')).status).toBe(401);
  });

  it('get_miner_conf reports miner-mode; set_miner_conf 1 sleeps the miner, 3 runs it at low power, 0 at stock', async () => {
    const e = eps[0]!;
    const sim = fleet.asic(e.deviceId)!;
    clock.advance(60_000);
    const conf = await digest(e, 'GET', '/cgi-bin/get_miner_conf.cgi');
    expect(conf.status).toBe(200);
    expect(sim.reading(0).hashrate5sThs).toBeGreaterThan(190); // the GET stepped the fleet
    expect(conf.json).toMatchObject({ 'miner-mode': 0, pools: [{ url: 'stratum+tcp://pool.example:3333', user: `hcp.${e.deviceId}` }] });

    // Tools write back the whole conf with the mode changed; only the mode is acted on.
    const off = await digest(e, 'POST', '/cgi-bin/set_miner_conf.cgi', JSON.stringify({ ...conf.json, 'miner-mode': 1 }));
    expect(off).toEqual({ status: 200, json: { stats: 'success', code: 'M000', msg: 'OK!' } });
    expect(sim.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    expect((await digest(e, 'GET', '/cgi-bin/get_miner_conf.cgi')).json['miner-mode']).toBe(1);
    clock.advance(10_000);
    fleet.step();
    expect(sim.reading(0)).toMatchObject({ hashrate5sThs: 0 });
    expect(sim.reading(0).powerW).toBeLessThan(40);

    const low = await basic(e, 'POST', '/cgi-bin/set_miner_conf.cgi', '{"miner-mode":"3"}');
    expect(low.status).toBe(200);
    expect(sim.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    expect(sim.powerTargetW).toBe(lowPowerTargetW(S21_MODELS.s21));
    expect(await (await basic(e, 'GET', '/cgi-bin/get_miner_conf.cgi')).json()).toMatchObject({ 'miner-mode': 3 });

    expect((await basic(e, 'POST', '/cgi-bin/set_miner_conf.cgi', '{"miner-mode":0}')).status).toBe(200);
    expect(sim.powerTargetW).toBeNull();
    expect(sim.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    // the other miner was never touched
    expect(fleet.asic(eps[1]!.deviceId)!.miningState).toBe(MiningState.MINING_STATE_MINING);
  });

  it('bad JSON, an unknown or missing mode → 400 with a JSON error; the server keeps serving', async () => {
    const e = eps[1]!;
    const bad = async (body: string, msg: RegExp) => {
      const res = await basic(e, 'POST', '/cgi-bin/set_miner_conf.cgi', body);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/json');
      const j = (await res.json()) as { stats: string; code: string; msg: string };
      expect(j).toMatchObject({ stats: 'error', code: 'E400' });
      expect(j.msg).toMatch(msg);
    };
    await bad('{"miner-mode":', /not JSON/);
    await bad('{"miner-mode":2}', /miner-mode 2 is not one of/);
    await bad('{"miner-mode":"sleep"}', /not one of/);
    await bad('[1]', /JSON object/);
    await bad('{"pools":[]}', /missing/);
    expect((await basic(e, 'GET', '/cgi-bin/set_miner_conf.cgi')).status).toBe(405);
    expect((await basic(e, 'GET', '/cgi-bin/reboot.cgi')).status).toBe(404);
    expect(fleet.asic(e.deviceId)!.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(await (await basic(e, 'GET', '/cgi-bin/get_miner_conf.cgi')).json()).toMatchObject({ 'miner-mode': 0 });
  });

  it('takes a nonce again with a new count (a replayed count is refused), until the nonce expires: then stale=true', async () => {
    let wall = 1_750_000_000_000;
    const server = await createAntminerWebServer({ miner: s21WebMiner(fleet.asics[1]!), port: 0, nonceTtlMs: 60_000, now: () => wall });
    try {
      const path = '/cgi-bin/get_miner_conf.cgi';
      const u = `http://127.0.0.1:${server.port}${path}`;
      const first = await fetch(u);
      await first.text();
      const c = parseAuthParams(first.headers.get('www-authenticate')!.replace(/^Digest /, ''));
      const auth = (nc: string) => {
        const response = md5(`${md5(`root:${c.realm}:root`)}:${c.nonce}:${nc}:abc:auth:${md5(`GET:${path}`)}`);
        return `Digest username="root", realm="${c.realm}", nonce="${c.nonce}", uri="${path}", qop=auth, nc=${nc}, cnonce="abc", response="${response}"`;
      };
      const get = async (nc: string) => {
        const r = await fetch(u, { headers: { authorization: auth(nc) } });
        await r.text();
        return [r.status, r.headers.get('www-authenticate')?.includes('stale=true') ?? false];
      };
      expect(await get('00000001')).toEqual([200, false]);
      expect(await get('00000002')).toEqual([200, false]);
      expect(await get('00000002')).toEqual([401, false]); // a replay
      wall += 60_001;
      expect(await get('00000003')).toEqual([401, true]);
      expect(server.stats).toEqual({ requests: 5, challenged: 3 });
    } finally {
      await server.close();
    }
  });
});
