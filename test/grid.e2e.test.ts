// Grid under-frequency response end to end: the control plane as a process on real PostgreSQL,
// the embedded broker, and two sites running the hcp-agent binary — texas-1 in ERCOT, canada-1
// in IESO. A 59.6 Hz reading on hcp/v1/grid/ercot/frequency (published as mosquitto_pub would)
// sleeps every Texas ASIC — first by the agent's own trip, then by the control plane's curtail —
// and leaves canada-1 alone; a recovery brings them back in stages.
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_BINARY } from './harness/agent-binary.js';
import { describePg } from './harness/pg.js';
import { startBinary, startControlPlaneProcess, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';
import { bearer, makeKey } from './harness/auth.js';

interface DeviceView { id: string; site: string; latest: { mining_state: string; hashrate_ths: number } | null }
interface GridView { regions: Array<{ region: string; phase: string; last_hz: number | null; sites: string[] }>; events: Array<{ region: string; action: string }>; readings?: Record<string, Array<{ at: string; hz: number }>> }

describePg('grid under-frequency response: control plane and hcp-agent binaries', (pg) => {
  let cp: Proc;
  const agents: Proc[] = [];
  let http = '';
  let client: mqtt.MqttClient;

  const asics = async (site: string) => ((await (await fetch(`${http}/api/v1/devices?site=${site}&kind=asic`, { headers: bearer() })).json()) as { devices: DeviceView[] }).devices;
  const states = async (site: string) => (await asics(site)).map((a) => a.latest?.mining_state ?? 'none');
  const grid = async () => (await (await fetch(`${http}/api/v1/grid`, { headers: bearer() })).json()) as GridView;
  const publish = (region: string, hz: number | string) =>
    client.publishAsync(`hcp/v1/grid/${region}/frequency`, typeof hz === 'string' ? hz : JSON.stringify({ ts: new Date().toISOString(), hz }));

  beforeAll(async () => {
    const ready = await startControlPlaneProcess(pg.url, { HCP_GRID_RESTORE_HOLD_S: '1', HCP_GRID_RESTORE_STAGES: '2', HCP_GRID_RESTORE_STAGE_S: '1' });
    cp = ready.proc;
    http = ready.http;
    for (const site of ['texas-1', 'canada-1']) {
      agents.push(startBinary(`hcp-agent-${site}`, AGENT_BINARY, [
        '--site', site, '--control-plane', ready.grpc, '--mqtt', ready.mqtt,
        '--sim-gpus', '2', '--sim-asics', '4', '--sample-interval-ms', '250', '--sim-startup-s', '2',
      ], { PATH: '', HCP_AGENT_TOKEN: await makeKey(http, { role: 'agent', site }) }));
    }
    // prices and frequency come from a feed's login
    client = await mqtt.connectAsync(ready.mqtt, { username: 'feeds', password: await makeKey(http, { role: 'feed', name: 'feeds' }) });
    await waitFor(async () => {
      const [t, c] = await Promise.all([states('texas-1'), states('canada-1')]);
      return t.length === 4 && c.length === 4 && [...t, ...c].every((s) => s === 'mining');
    }, { timeoutMs: 30_000, message: 'both sites mining' });
    // texas-1's agent armed its trip at connect (ERCOT); canada-1's did not (IESO is not listed)
    await agents[0]!.waitForLog((l) => l.msg === 'under-frequency trip armed', 'texas-1 trip armed');
    expect(agents[1]!.lines.some((l) => l.msg === 'under-frequency trip armed')).toBe(false);
  });

  afterAll(async () => {
    await client?.endAsync();
    for (const a of agents) await a.kill('SIGKILL');
    await cp?.kill('SIGTERM');
  });

  it('a malformed reading is counted and changes nothing', async () => {
    await publish('ercot', '{"hz":"low"}');
    await waitFor(async () => /hcp_feed_rejected_total\{reason="malformed_frequency"\} 1/.test(await (await fetch(`${http}/metrics`)).text()), { message: 'drop counted' });
    expect(await states('texas-1')).toEqual(['mining', 'mining', 'mining', 'mining']);
  });

  it('59.6 Hz in ERCOT sleeps every Texas ASIC, by the agent\'s own trip and the control plane\'s curtail; canada-1 is untouched', async () => {
    await publish('ercot', 59.6);
    // the bound: every Texas ASIC asleep within 1 s
    await waitFor(async () => (await states('texas-1')).every((s) => s === 'sleeping'), { timeoutMs: 1_000, intervalMs: 20, message: 'texas-1 asleep within 1 s' });
    const fired = await agents[0]!.waitForLog((l) => l.msg === 'under-frequency trip fired: ASICs told to sleep', 'local trip');
    expect(fired).toMatchObject({ region: 'ercot', hz: 59.6, devices: 4, failed: 0 });
    const g = await waitFor(async () => {
      const v = await grid();
      return v.events.some((e) => e.action === 'curtail') && v.events.some((e) => e.action === 'agent_trip') ? v : null;
    }, { message: 'curtail and agent trip recorded' });
    expect(g.regions.find((r) => r.region === 'ercot')).toMatchObject({ phase: 'tripped', last_hz: 59.6, sites: expect.arrayContaining(['texas-1']) });
    // the agent's trip as the grid-events page shows it: its own time from reading to sleep, the ASICs, the power they drew
    const trip = g.events.find((e) => e.action === 'agent_trip') as unknown as { sites: string[]; hz: number; trip_ms: number; devices: number; shed_w: number };
    expect(trip).toMatchObject({ sites: ['texas-1'], hz: 59.6, devices: 4 });
    expect(trip.trip_ms).toBeGreaterThanOrEqual(0);
    expect(trip.trip_ms).toBeLessThan(1_000);
    expect(trip.shed_w).toBeGreaterThan(0);
    expect(g.readings?.ercot?.at(-1)).toMatchObject({ hz: 59.6 });
    expect(await states('canada-1')).toEqual(['mining', 'mining', 'mining', 'mining']);
    // the control plane's side is a grid claim on every Texas ASIC, outranking the rest; the
    // agent's trip got there first, so the reconciler has nothing left to send
    const desired = await (await fetch(`${http}/api/v1/sites/texas-1/desired`, { headers: bearer() })).json() as {
      claims: Array<{ source: string; reason: string }>; desired: { asleep: number; groups: Array<{ rule: string; mining: boolean; devices: number }> };
    };
    expect(desired.claims).toEqual([expect.objectContaining({ source: 'grid', reason: 'under-frequency 59.6 Hz in ercot' })]);
    expect(desired.desired.groups).toEqual([expect.objectContaining({ rule: 'grid', mining: false, devices: 4 })]);
    const canada = await (await fetch(`${http}/api/v1/sites/canada-1/desired`, { headers: bearer() })).json() as { claims: unknown[] };
    expect(canada.claims).toEqual([]);
  });

  it('after the frequency recovers and holds, the ASICs come back in stages', async () => {
    await publish('ercot', 60.0);
    await waitFor(async () => (await states('texas-1')).every((s) => s === 'mining' || s === 'ramping'), { timeoutMs: 15_000, message: 'texas-1 restored' });
    const g = await waitFor(async () => {
      const v = await grid();
      return v.events.some((e) => e.action === 'restored') ? v : null;
    }, { timeoutMs: 10_000, message: 'restore finished' });
    expect(g.events.filter((e) => e.action === 'restore')).toHaveLength(2);
    expect(g.regions.find((r) => r.region === 'ercot')!.phase).toBe('normal');
    // the grid claim is gone, and the reconciler brought the ASICs back for the default rule
    const desired = await (await fetch(`${http}/api/v1/sites/texas-1/desired`, { headers: bearer() })).json() as { claims: unknown[] };
    expect(desired.claims).toEqual([]);
    const cmds = await (await fetch(`${http}/api/v1/commands?site=texas-1`, { headers: bearer() })).json() as { commands: Array<{ type: string; actor: string; params: { enabled?: boolean }; details: { source: string } | null }> };
    expect(cmds.commands.some((c) => c.type === 'set_mining' && c.actor === 'system:reconciler' && c.params.enabled === true)).toBe(true);
  });

  it('an operator sets canada-1\'s trip to two ASICs at 59.8 Hz: the agent trips just those, the control plane does not curtail', async () => {
    const bad = await fetch(`${http}/api/v1/sites/canada-1/grid-trip`, { method: 'PUT', headers: { 'content-type': 'application/json', ...bearer() }, body: JSON.stringify({ enabled: true }) });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toContain('threshold_hz');
    const foreign = await fetch(`${http}/api/v1/sites/canada-1/grid-trip`, { method: 'PUT', headers: { 'content-type': 'application/json', ...bearer() }, body: JSON.stringify({ enabled: true, threshold_hz: 59.8, device_ids: ['asic-texas-1-00001'] }) });
    expect(foreign.status).toBe(404);

    const covered = ['asic-canada-1-00001', 'asic-canada-1-00002'];
    const r = await fetch(`${http}/api/v1/sites/canada-1/grid-trip`, {
      method: 'PUT', headers: { 'content-type': 'application/json', ...bearer() }, body: JSON.stringify({ enabled: true, threshold_hz: 59.8, device_ids: covered }),
    });
    expect(r.status).toBe(202);
    const body = (await r.json()) as { grid_trip: { region: string; threshold_hz: number }; command: { id: string } };
    expect(body.grid_trip).toMatchObject({ region: 'ieso', threshold_hz: 59.8 });
    await waitFor(async () => ((await (await fetch(`${http}/api/v1/commands/${body.command.id}`, { headers: bearer() })).json()) as { state: string }).state === 'succeeded', { message: 'ArmGridTrip applied' });
    await agents[1]!.waitForLog((l) => l.msg === 'under-frequency trip armed' && l.thresholdHz === 59.8, 'canada-1 trip armed');

    await publish('ieso', 59.75);
    await waitFor(async () => {
      const a = await asics('canada-1');
      const asleep = a.filter((d) => d.latest?.mining_state === 'sleeping').map((d) => d.id).sort();
      return asleep.join() === covered.join() ? asleep : null;
    }, { timeoutMs: 2_000, message: 'exactly the two covered ASICs asleep' });
    // 59.75 Hz is above the control plane's own 59.7 Hz trip: no curtail for ieso
    const g = await grid();
    expect(g.regions.find((x) => x.region === 'ieso')!.phase).toBe('normal');
    expect(g.events.some((e) => e.region === 'ieso' && e.action === 'curtail')).toBe(false);
    expect(g.events.some((e) => e.region === 'ieso' && e.action === 'agent_trip')).toBe(true);
  });
});
