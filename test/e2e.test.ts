// End to end with real processes: the control plane on real PostgreSQL and two site agents,
// one reading its ASICs over the cgminer TCP API. Rows arrive for every device; killing an agent
// takes its site offline; starting it again brings the site back.
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describePg } from './harness/pg.js';
import { startControlPlaneProcess, startTs, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';
import { bearer, makeKey } from './harness/auth.js';

interface SiteView { id: string; online: boolean; gpus_online: number; asics_online: number; hashrate_ths: number }

describePg('end to end: control plane and two agents as processes', (pg) => {
  let cp: Proc;
  let sql: postgres.Sql;
  const agents: Proc[] = [];
  let http = '';
  let grpc = '';
  let mqtt = '';
  const tokens = new Map<string, string>();

  const startAgent = (site: string, extra: string[] = []) => {
    const p = startTs(`agent-${site}`, 'agent/main.ts', [
      '--site', site, '--control-plane', grpc, '--mqtt', mqtt, '--sim-gpus', '3', '--sim-asics', '4',
      '--sample-interval-ms', '500', '--sim-startup-s', '5', ...extra,
    ], { HCP_AGENT_TOKEN: tokens.get(site) });
    agents.push(p);
    return p;
  };
  const site = async (id: string) => ((await (await fetch(`${http}/api/v1/sites/${id}`, { headers: bearer() })).json()) as SiteView);

  beforeAll(async () => {
    sql = postgres(pg.url, { onnotice: () => {} });
    ({ proc: cp, http, grpc, mqtt } = await startControlPlaneProcess(pg.url));
    for (const s of ['texas-1', 'texas-2']) tokens.set(s, await makeKey(http, { role: 'agent', site: s }));
  });

  afterAll(async () => {
    for (const a of agents) await a.kill('SIGKILL');
    const exit = await cp?.kill('SIGTERM');
    await sql?.end();
    // the control plane shuts down cleanly on SIGTERM
    expect(exit?.code).toBe(0);
  });

  it('stores rows for every device of both sites, with cgminer endpoints for texas-1', async () => {
    startAgent('texas-1', ['--asic-driver', 'cgminer']);
    startAgent('texas-2');
    const expected = ['texas-1', 'texas-2'].flatMap((s) => [
      ...[1, 2, 3].map((n) => `gpu-${s}-000${n}`),
      ...[1, 2, 3, 4].map((n) => `asic-${s}-0000${n}`),
    ]);
    const seen = await waitFor(
      async () => {
        const rows = await sql`SELECT device_id FROM gpu_telemetry UNION SELECT device_id FROM asic_telemetry`;
        const ids = rows.map((r) => r.device_id as string).sort();
        return ids.length === expected.length ? ids : null;
      },
      { timeoutMs: 30_000, message: 'rows for all 14 devices' },
    );
    expect(seen).toEqual([...expected].sort());

    const devices = (await (await fetch(`${http}/api/v1/devices?site=texas-1&kind=asic`, { headers: bearer() })).json()) as { devices: Array<{ endpoint?: string; driver: string; latest: { hashrate_ths: number } | null }> };
    expect(devices.devices).toHaveLength(4);
    for (const d of devices.devices) {
      expect(d.driver).toBe('cgminer');
      expect(d.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    }
    const s1 = await waitFor(async () => {
      const s = await site('texas-1');
      return s.online && s.asics_online === 4 && s.gpus_online === 3 ? s : null;
    }, { timeoutMs: 10_000, message: 'texas-1 fully online' });
    // four S21 XPs at ~270 TH/s each
    expect(s1.hashrate_ths).toBeGreaterThan(4 * 250);
    expect(s1.hashrate_ths).toBeLessThan(4 * 290);
  });

  it('takes a killed agent’s site offline and brings it back when the agent returns', async () => {
    const texas2 = agents.find((a) => a.name === 'agent-texas-2')!;
    await waitFor(async () => (await site('texas-2')).online, { timeoutMs: 10_000, message: 'texas-2 online' });
    await texas2.kill('SIGKILL');
    await waitFor(async () => (await site('texas-2')).online === false, { timeoutMs: 8_000, message: 'texas-2 offline after kill -9' });
    expect((await site('texas-1')).online).toBe(true);

    startAgent('texas-2');
    const back = await waitFor(async () => {
      const s = await site('texas-2');
      return s.online && s.gpus_online === 3 ? s : null;
    }, { timeoutMs: 15_000, message: 'texas-2 back online' });
    expect(back.asics_online).toBe(4);
  });

  it('stops an agent cleanly on SIGTERM, publishing offline at once', async () => {
    const texas1 = agents.find((a) => a.name === 'agent-texas-1')!;
    const exit = await texas1.kill('SIGTERM');
    expect(exit.code).toBe(0);
    await waitFor(async () => (await site('texas-1')).online === false, { timeoutMs: 5_000, message: 'texas-1 offline after SIGTERM' });
  });
});
