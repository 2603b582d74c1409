// The economic engine end to end: the control plane as a process on real PostgreSQL deciding
// every second, texas-1 and texas-2 running the hcp-agent binary, prices published on MQTT as
// any feed would. A $5/kWh price for texas-1 sleeps its ASICs within two intervals and leaves
// its GPUs and texas-2 alone; /api/v1/economics says why. An operator's manual command puts the
// site in manual mode, and the engine does not undo it until the site is back in auto.
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_BINARY } from './harness/agent-binary.js';
import { describePg } from './harness/pg.js';
import { startBinary, startControlPlaneProcess, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';
import { bearer, makeKey } from './harness/auth.js';

interface DeviceView { id: string; online: boolean; latest: { mining_state?: string; state?: string } | null }
interface SiteEconomics {
  id: string;
  mode: string;
  decision: { rule: string; summary: string; expected_usd_h: { margin: number } | null; explanation: { inputs: { powerUsdKwh: number } }; claims: string[] } | null;
  profitability: Array<{ device_class: string; breakeven_usd_kwh: number | null }>;
}

const INTERVAL_MS = 1000;

describePg('economic engine end to end', (pg) => {
  let cp: Proc;
  const agents: Proc[] = [];
  let http = '';
  let client: mqtt.MqttClient;
  let operator = '';

  const states = async (site: string, kind: 'asic' | 'gpu') =>
    ((await (await fetch(`${http}/api/v1/devices?site=${site}&kind=${kind}`, { headers: bearer() })).json()) as { devices: DeviceView[] }).devices;
  const mining = async (site: string) => (await states(site, 'asic')).map((a) => a.latest?.mining_state);
  const econ = async (site: string) =>
    ((await (await fetch(`${http}/api/v1/economics?site=${site}`, { headers: bearer() })).json()) as { sites: SiteEconomics[] }).sites[0]!;
  const price = (topic: string, p: number) => client.publishAsync(`hcp/v1/market/${topic}`, JSON.stringify({ ts: new Date().toISOString(), price: p }));
  const prices = async (texas1: number) => {
    await price('btc_usd', 100_000);
    await price('gpu_spot', 3.5);
    await price('power/texas-1', texas1);
    await price('power/texas-2', 0.04);
  };

  beforeAll(async () => {
    const ready = await startControlPlaneProcess(pg.url, {
      HCP_ECONOMICS_INTERVAL_MS: String(INTERVAL_MS), HCP_ECONOMICS_STARTUP_S: '2', HCP_ECONOMICS_MIN_ON_S: '0', HCP_ECONOMICS_MIN_OFF_S: '0',
    });
    cp = ready.proc;
    http = ready.http;
    operator = await makeKey(http, { role: 'operator', name: 'alice' });
    for (const site of ['texas-1', 'texas-2']) {
      agents.push(startBinary(`hcp-agent-${site}`, AGENT_BINARY, [
        '--site', site, '--control-plane', ready.grpc, '--mqtt', ready.mqtt,
        '--sim-gpus', '2', '--sim-asics', '4', '--sample-interval-ms', '250', '--sim-startup-s', '2',
      ], { PATH: '', HCP_AGENT_TOKEN: await makeKey(http, { role: 'agent', site }) }));
    }
    // prices and frequency come from a feed's login
    client = await mqtt.connectAsync(ready.mqtt, { username: 'feeds', password: await makeKey(http, { role: 'feed', name: 'feeds' }) });
    await waitFor(async () => [...(await mining('texas-1')), ...(await mining('texas-2'))].filter((s) => s === 'mining').length === 8, { timeoutMs: 30_000, message: 'both sites mining' });
  });

  afterAll(async () => {
    await client?.endAsync();
    for (const a of agents) await a.kill('SIGKILL');
    await cp?.kill('SIGTERM');
  });

  it('with no price yet it leaves the sites as they are, and says so', async () => {
    // (a decision made before the ASICs' first samples arrived has no ASICs to name a rule by)
    const e = await waitFor(async () => {
      const x = await econ('texas-1');
      return x.decision && x.decision.explanation.inputs && x.decision.rule === 'no_power_price' ? x : null;
    }, { message: 'a decision that leaves texas-1 alone for want of a price' });
    expect(e.decision!.claims).toEqual([]);
    // and the decision is in the stored history
    await waitFor(async () => {
      const h = ((await (await fetch(`${http}/api/v1/economics?site=texas-1`, { headers: bearer() })).json()) as { history: Array<{ rule: string; commands: string[] }> }).history;
      return h.some((d) => d.rule === 'no_power_price' && d.commands.length === 0);
    }, { message: 'decision history stored' });
    expect(await mining('texas-1')).toEqual(['mining', 'mining', 'mining', 'mining']);
  });

  it('a cheap price keeps mining; $5/kWh sleeps texas-1 within two intervals, GPUs and texas-2 untouched, and explains it', async () => {
    await prices(0.04);
    const cheap = await waitFor(async () => {
      const e = await econ('texas-1');
      return e.decision && e.decision.explanation.inputs.powerUsdKwh === 0.04 ? e : null;
    }, { timeoutMs: 5_000, message: 'a decision on the cheap price' });
    expect(cheap.decision!.expected_usd_h!.margin).toBeGreaterThan(0);
    expect(await mining('texas-1')).toEqual(['mining', 'mining', 'mining', 'mining']);

    await prices(5);
    // two decision intervals, plus the agent's next sample
    await waitFor(async () => (await mining('texas-1')).every((s) => s === 'sleeping'), { timeoutMs: 2 * INTERVAL_MS + 1_500, intervalMs: 50, message: 'texas-1 asleep within two intervals' });
    const e = await econ('texas-1');
    expect(e.decision!.rule).toBe('price_curtail');
    expect(e.decision!.summary).toMatch(/\$?5/);
    const xp = e.profitability.find((p) => p.device_class.startsWith('asic:'));
    expect(xp?.breakeven_usd_kwh).toBeLessThan(5);
    // and the profitability history holds both prices' intervals for the S21 XP
    const hist = ((await (await fetch(`${http}/api/v1/economics?site=texas-1`, { headers: bearer() })).json()) as { profitability_history: Array<{ device_class: string; power_cost_usd_h: number; margin_usd_h: number }> }).profitability_history;
    const xpRows = hist.filter((r) => r.device_class === 'asic:s21-xp');
    expect(xpRows.some((r) => r.margin_usd_h < 0)).toBe(true);
    expect(xpRows.some((r) => r.margin_usd_h > 0)).toBe(true);
    expect((await states('texas-1', 'gpu')).every((g) => g.online && g.latest?.state !== undefined)).toBe(true);
    expect(await mining('texas-2')).toEqual(['mining', 'mining', 'mining', 'mining']);
    // economics stated a claim; the site's reconciler sent the commands for it
    const desired = await (await fetch(`${http}/api/v1/sites/texas-1/desired`, { headers: bearer() })).json() as { claims: Array<{ id: string; source: string; want: { enabled: boolean } }> };
    expect(desired.claims).toEqual([expect.objectContaining({ source: 'economics', want: expect.objectContaining({ enabled: false }) })]);
    expect(e.decision!.claims).toEqual([desired.claims[0]!.id]);
    const sent = await (await fetch(`${http}/api/v1/commands?site=texas-1`, { headers: bearer() })).json() as { commands: Array<{ actor: string; type: string; details: { source: string; claim_id: string } | null }> };
    expect(sent.commands.some((c) => c.actor === 'system:reconciler' && c.type === 'set_mining' && c.details?.source === 'economics' && c.details.claim_id === desired.claims[0]!.id)).toBe(true);
  });

  it('an operator\'s mining claim beats the engine, which goes on deciding underneath it, until the site is back in auto', async () => {
    const r = await fetch(`${http}/api/v1/sites/texas-1/mining?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(operator) }, body: JSON.stringify({ enabled: true, reason: 'customer demo' }) });
    expect(r.status).toBe(200);
    const body = await r.json() as { claim: { source: string; actor: string; reason: string }; commands: Array<{ state: string }> };
    expect(body.claim).toMatchObject({ source: 'operator', actor: 'key:alice', reason: 'customer demo' });
    expect(body.commands.length).toBeGreaterThan(0);
    expect(body.commands.every((c) => c.state === 'succeeded')).toBe(true);
    await waitFor(async () => (await econ('texas-1')).mode === 'manual', { message: 'manual mode' });
    await waitFor(async () => (await mining('texas-1')).every((s) => s === 'mining' || s === 'ramping'), { timeoutMs: 5_000, message: 'mining again' });
    // more intervals at $5/kWh: still mining; the engine still wants them off, and loses
    await prices(5);
    const before = (await econ('texas-1')).decision;
    await waitFor(async () => {
      const e = await econ('texas-1');
      // economics still wants every ASIC asleep at $5/kWh
      return e.decision && before && JSON.stringify(e.decision) !== JSON.stringify(before) && /^\w+: 0\/4 ASICs mining/.test(e.decision.summary) ? e : null;
    }, { timeoutMs: 5_000, message: 'a new decision under the operator claim' });
    const desired = await (await fetch(`${http}/api/v1/sites/texas-1/desired`, { headers: bearer() })).json() as { desired: { groups: Array<{ rule: string; mining: boolean }> } };
    expect(desired.desired.groups).toEqual([expect.objectContaining({ rule: 'operator', mining: true })]);
    expect((await mining('texas-1')).every((s) => s === 'mining' || s === 'ramping')).toBe(true);

    const auto = await fetch(`${http}/api/v1/sites/texas-1/mode`, { method: 'PUT', headers: { 'content-type': 'application/json', ...bearer(operator) }, body: JSON.stringify({ mode: 'auto' }) });
    expect(auto.status).toBe(200);
    await waitFor(async () => (await mining('texas-1')).every((s) => s === 'sleeping'), { timeoutMs: 2 * INTERVAL_MS + 1_500, message: 'back in auto, asleep again' });
  });

  it('refuses bad controls, naming the field', async () => {
    const bad = await fetch(`${http}/api/v1/sites/texas-1/mode`, { method: 'PUT', headers: { 'content-type': 'application/json', ...bearer() }, body: JSON.stringify({ mode: 'sometimes' }) });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain('mode');
    const nowhere = await fetch(`${http}/api/v1/sites/nowhere-1/mode`, { method: 'PUT', headers: { 'content-type': 'application/json', ...bearer() }, body: JSON.stringify({ mode: 'auto' }) });
    expect(nowhere.status).toBe(404);
  });
});
