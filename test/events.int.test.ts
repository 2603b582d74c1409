// The console's live stream (GET /api/v1/events) against a real control plane on real
// PostgreSQL with a real agent stream: a key is required, each event reaches only the roles that
// may see it (a customer: only its own workloads, no fleet events), events of real actions arrive,
// heartbeats flow, and the connection cap answers 503.
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { apiClient, makeKey, TEST_ADMIN_KEY } from './harness/auth.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { openSse, type SseClient } from './harness/sse.js';
import { waitFor } from './harness/wait-for.js';

describePg('the console live stream', (pg) => {
  let cp: ControlPlane;
  let agent: TestAgentStream;
  const opened: SseClient[] = [];
  const keys = {} as { viewer: string; acme: string; globex: string };
  const base = () => `http://127.0.0.1:${cp.httpPort}`;
  const sse = async (key?: string, q = '') => {
    const c = await openSse(`${base()}/api/v1/events${q}`, key);
    opened.push(c);
    return c;
  };
  const names = (c: SseClient) => c.events.map((e) => e.name);

  beforeAll(async () => {
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_HEARTBEAT_MS: '500', HCP_STALE_AFTER_MS: '600000',
        LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY, HCP_ECONOMICS: 'off',
        HCP_EVENTS_MAX_STREAMS: '8', HCP_EVENTS_HEARTBEAT_MS: '300',
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
    keys.viewer = await makeKey(base(), { role: 'viewer', name: 'watcher' });
    keys.acme = await makeKey(base(), { role: 'customer', name: 'acme', customer_id: 'cust-001' });
    keys.globex = await makeKey(base(), { role: 'customer', name: 'globex', customer_id: 'cust-002' });
    const token = await makeKey(base(), { role: 'agent', name: 'agent-texas-1', site: 'texas-1' });
    agent = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'texas-1', session: 'events-test', devices: [device('asic-texas-1-00001', 'asic'), device('gpu-texas-1-0001', 'gpu')], token }, 'apply');
    await waitFor(() => agent.received.find((m) => m.body?.$case === 'helloAck'), { message: 'HelloAck' });
  });

  afterAll(async () => {
    for (const c of opened) c.close();
    agent?.close();
    await cp?.close();
  });

  it('refuses a stream without a key or with a wrong one (401)', async () => {
    expect((await sse()).status).toBe(401);
    expect((await sse('hcp_not-a-key-of-this-control-plane-000')).status).toBe(401);
  });

  it('says hello and the fleet summary at once, then heartbeats, to a fleet reader', async () => {
    const c = await sse(keys.viewer);
    expect(c.status).toBe(200);
    await waitFor(() => c.events.find((e) => e.name === 'fleet'), { message: 'a fleet summary' });
    expect(c.events[0]).toMatchObject({ name: 'hello', data: { role: 'viewer', key: 'watcher' } });
    const fleet = c.events.find((e) => e.name === 'fleet')!.data;
    expect(fleet.sites.map((s: { id: string }) => s.id)).toContain('texas-1');
    expect(fleet.sites[0]).toHaveProperty('asic_power_w');
    // the grid's state, not its 10 minutes of readings (GET /api/v1/grid has those), every second
    expect(fleet.grid).toHaveProperty('regions');
    expect(fleet.grid).not.toHaveProperty('readings');
    await waitFor(() => c.comments >= 2, { message: 'two heartbeats' });
  });

  it('carries an operator’s mining off as it happens (its claim), to fleet readers only', async () => {
    const admin = await sse(TEST_ADMIN_KEY);
    const viewer = await sse(keys.viewer);
    const customer = await sse(keys.acme);
    await waitFor(() => names(admin).includes('fleet') && names(viewer).includes('fleet') && names(customer).includes('hello'), { message: 'streams open' });
    const r = await apiClient(base()).post('/api/v1/sites/texas-1/mining', { enabled: false, reason: 'events test' });
    expect(r.status).toBeLessThan(300);
    for (const c of [admin, viewer]) {
      await waitFor(() => c.events.find((e) => e.name === 'claim' && e.data.claim.site === 'texas-1' && e.data.claim.reason === 'events test'), { message: 'the claim event' });
    }
    // the customer was open all along and heard none of it
    expect(names(customer).filter((n) => n !== 'hello' && n !== 'workload')).toEqual([]);
  });

  it('tells a customer of its own workloads only, and refuses it the devices of a site', async () => {
    const acme = await sse(keys.acme);
    const globex = await sse(keys.globex);
    const viewer = await sse(keys.viewer);
    await waitFor(() => names(acme).includes('hello') && names(globex).includes('hello') && names(viewer).includes('hello'), { message: 'streams open' });
    const submit = async (key: string) => {
      const r = await apiClient(base(), key).post('/api/v1/workloads', { workload_type: 'ai_inference_batch', priority: 5, requirements: { gpu_type: 'h100', gpu_count: 1 } });
      expect(r.status, await r.clone().text()).toBe(201);
      return ((await r.json()) as { id: string }).id;
    };
    const mine = await submit(keys.acme);
    const theirs = await submit(keys.globex);
    await waitFor(() => acme.events.find((e) => e.name === 'workload' && e.data.id === mine), { message: 'acme hears its workload' });
    await waitFor(() => globex.events.find((e) => e.name === 'workload' && e.data.id === theirs), { message: 'globex hears its workload' });
    await waitFor(() => viewer.events.find((e) => e.name === 'workload' && e.data.id === mine) && viewer.events.find((e) => e.name === 'workload' && e.data.id === theirs), { message: 'a viewer hears both' });
    expect(acme.events.filter((e) => e.name === 'workload').map((e) => e.data.customer_id)).toEqual(expect.arrayContaining(['cust-001']));
    expect(acme.events.some((e) => e.name === 'workload' && e.data.id === theirs)).toBe(false);
    expect(globex.events.some((e) => e.name === 'workload' && e.data.id === mine)).toBe(false);
    expect(acme.events.some((e) => e.name === 'fleet' || e.name === 'devices')).toBe(false);
  });

  it('sends the devices of the site asked for, and 404s an unknown site', async () => {
    const c = await sse(keys.viewer, '?site=texas-1');
    await waitFor(() => c.events.find((e) => e.name === 'devices'), { message: 'devices' });
    const d = c.events.find((e) => e.name === 'devices')!.data;
    expect(d.site).toBe('texas-1');
    expect(d.devices.map((x: { id: string }) => x.id).sort()).toEqual(['asic-texas-1-00001', 'gpu-texas-1-0001']);
    expect((await sse(keys.viewer, '?site=nowhere')).status).toBe(404);
  });

  it('answers 503 past the connection cap, and takes a stream again once one closes', async () => {
    for (const c of opened.splice(0)) c.close();
    await waitFor(async () => (await (await fetch(`${base()}/metrics`)).text()).includes('hcp_console_streams 0'), { message: 'streams closed' });
    const held: SseClient[] = [];
    for (let i = 0; i < 8; i++) held.push(await sse(keys.viewer));
    expect(held.every((c) => c.status === 200)).toBe(true);
    const over = await sse(keys.viewer);
    expect(over.status).toBe(503);
    const metrics = await (await fetch(`${base()}/metrics`)).text();
    expect(metrics).toMatch(/hcp_console_stream_dropped_total\{reason="over_cap"\} [1-9]/);
    held[0]!.close();
    await waitFor(async () => (await sse(keys.viewer)).status === 200, { message: 'a stream after one closed' });
  });
});
