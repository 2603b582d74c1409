// The scheduler on real PostgreSQL with real gRPC agent streams and a real MQTT broker: queued
// workloads placed by priority, realtime evicting batch that then runs again, requeue from a lost
// site, cancel, pagination and bad input.
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { asic, gpu } from './harness/samples.js';
import { waitFor } from './harness/wait-for.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describePg('scheduler', (pg) => {
  let cp: ControlPlane;
  let sql: postgres.Sql;
  const pubs = new Map<string, MqttClient>();
  const tokens = new Map<string, string>();
  let texas1: TestAgentStream;
  let texas2: TestAgentStream;
  const base = () => `http://127.0.0.1:${cp.httpPort}`;
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${base()}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer() }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Json };
  };
  const get = async (path: string) => (await (await fetch(`${base()}${path}`, { headers: bearer() })).json()) as Json;
  const submit = async (o: Json) => {
    const r = await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'ai_inference_batch', priority: 5, requirements: { gpu_type: 'H100', gpu_count: 1 }, ...o });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.id as string;
  };
  const inState = (id: string, state: string, message = `${id} ${state}`) =>
    waitFor(async () => {
      const w = await get(`/api/v1/workloads/${id}`);
      return w.state === state ? w : null;
    }, { message, timeoutMs: 10_000 });
  const metric = async (name: string) => {
    const text = await (await fetch(`${base()}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : NaN;
  };
  const online = async (site: string, gpus: string[]) => {
    const t = Date.now();
    await pubs.get(site)!.publishAsync(topics.telemetry(site), Buffer.from(TelemetryBatch.encode({
      siteId: site, seq: t, sentAtMs: t, agentSession: 's', gpus: gpus.map((g) => gpu(g, t, 0, 100)), asics: [asic(`asic-${site}-00001`, t, 270, 3645)],
    }).finish()), { qos: 1 });
    await waitFor(() => gpus.every((g) => cp.registry.device(g)?.online), { message: `${site} GPUs online` });
  };

  beforeAll(async () => {
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_INGEST_FLUSH_MS: '50',
        HCP_HEARTBEAT_MS: '60000', HCP_STALE_AFTER_MS: '600000', HCP_SCHED_SITE_GRACE_S: '1', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
    sql = postgres(pg.url, { onnotice: () => {} });
    for (const site of ['texas-1', 'texas-2']) {
      tokens.set(site, (await cp.keys.create({ role: 'agent', siteId: site }, 'test')).secret);
      pubs.set(site, await mqtt.connectAsync(cp.mqttUrl, { clientId: `hcp-agent-${site}-pub`, username: site, password: tokens.get(site) }));
    }
    const addr = `127.0.0.1:${cp.grpcPort}`;
    texas1 = openAgentStream(addr, { siteId: 'texas-1', session: 't1', devices: [device('gpu-texas-1-0001', 'gpu'), device('gpu-texas-1-0002', 'gpu'), device('asic-texas-1-00001', 'asic')], token: tokens.get('texas-1')! }, 'apply');
    texas2 = openAgentStream(addr, { siteId: 'texas-2', session: 't2', devices: [device('gpu-texas-2-0001', 'gpu'), device('asic-texas-2-00001', 'asic')], token: tokens.get('texas-2')! }, 'apply');
    await waitFor(() => texas1.received.length > 0 && texas2.received.length > 0, { message: 'hello acks' });
    await online('texas-1', ['gpu-texas-1-0001', 'gpu-texas-1-0002']);
    await online('texas-2', ['gpu-texas-2-0001']);
  });

  afterAll(async () => {
    texas1?.close();
    texas2?.close();
    for (const p of pubs.values()) await p.endAsync();
    await sql?.end();
    await cp?.close();
  });

  it('refuses what can never run, with the reason; a repeated submit returns the first workload', async () => {
    const unknownCustomer = await post('/api/v1/workloads', { customer_id: 'cust-999', workload_type: 'ai_training', priority: 5, requirements: { gpu_type: 'H100', gpu_count: 1 } });
    expect(unknownCustomer.status).toBe(404);
    expect(unknownCustomer.body.error.reason).toBe('unknown_customer');
    const tpu = await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'ai_training', priority: 5, requirements: { gpu_type: 'TPU', gpu_count: 1 } });
    expect(tpu.status).toBe(400);
    expect(tpu.body.error.reason).toBe('unknown_gpu_type');
    const huge = await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'ai_training', priority: 5, requirements: { gpu_type: 'H100', gpu_count: 3 } });
    expect(huge.status).toBe(400);
    expect(huge.body.error).toMatchObject({ reason: 'exceeds_site_capacity', fields: [{ field: 'requirements.gpu_count' }] });
    expect(huge.body.error.message).toContain('the largest, texas-1, has 2');
    const quota = await post('/api/v1/workloads', { customer_id: 'cust-003', workload_type: 'ai_training', priority: 5, requirements: { gpu_type: 'H100', gpu_count: 9 } });
    expect(quota.body.error.reason).toBe('over_quota');
    const bigMem = await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'ai_training', priority: 5, min_gpu_memory_mib: 200_000, requirements: { gpu_type: 'H100', gpu_count: 1 } });
    expect(bigMem.body.error.reason).toBe('exceeds_site_capacity');

    const first = await post('/api/v1/workloads', { customer_id: 'cust-002', workload_type: 'ai_training', priority: 9, idempotency_key: 'job-42', requirements: { gpu_type: 'H100', gpu_count: 1 } });
    expect(first.status).toBe(201);
    const again = await post('/api/v1/workloads', { customer_id: 'cust-002', workload_type: 'ai_training', priority: 9, idempotency_key: 'job-42', requirements: { gpu_type: 'H100', gpu_count: 1 } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const cancelled = await post(`/api/v1/workloads/${first.body.id}/cancel`, {});
    expect(cancelled.body.state).toBe('cancelled');
    expect((await post(`/api/v1/workloads/${first.body.id}/cancel`, {})).status).toBe(409);
    expect((await post('/api/v1/workloads/wl-nope/cancel', {})).status).toBe(404);
  });

  it('places by best fit, requeues the work of a site lost past the grace period, cancels a running workload', async () => {
    const x = await submit({ workload_type: 'ai_training' });
    const running = await inState(x, 'running');
    // best fit: texas-2 has exactly one free GPU
    expect(running.allocations).toEqual([expect.objectContaining({ device_id: 'gpu-texas-2-0001', site: 'texas-2', live: true })]);

    texas2.close();
    const moved = await waitFor(async () => {
      const w = await get(`/api/v1/workloads/${x}`);
      return w.state === 'running' && w.site === 'texas-1' ? w : null;
    }, { message: 'requeued to texas-1', timeoutMs: 15_000 });
    expect(moved.history.map((h: Json) => `${h.from}->${h.to}`)).toEqual([
      'pending->scheduled', 'scheduled->running', 'running->preempted', 'preempted->pending', 'pending->scheduled', 'scheduled->running',
    ]);
    expect(moved.history[2].reason).toContain('site texas-2 offline');
    expect(moved.preempted_count).toBe(1);

    const c = await post(`/api/v1/workloads/${x}/cancel`, {});
    expect(c.body.state).toBe('cancelled');
    const rel = await waitFor(() => texas1.commands().find((k) => k.action?.$case === 'release' && k.action.value.workloadId === x), { message: 'release sent' });
    expect(rel.action?.$case === 'release' && rel.action.value.deviceIds).toHaveLength(1);
    expect((await get(`/api/v1/workloads/${x}`)).allocations.every((a: Json) => !a.live)).toBe(true);
  });

  it('realtime evicts batch at once when the GPUs are full; the evicted batch waits, then runs again', async () => {
    const b1 = await submit({ priority: 6 });
    const b2 = await submit({ priority: 7 });
    await inState(b1, 'running');
    await inState(b2, 'running');
    expect(await metric('orchestrator_active_workloads')).toBe(2);

    const rt = await submit({ workload_type: 'ai_inference_realtime', priority: 1, duration_s: 2 });
    const r = await inState(rt, 'running', 'realtime running');
    // the lowest priority was evicted, only one
    const evicted = await get(`/api/v1/workloads/${b2}`);
    expect(['preempted', 'pending']).toContain(evicted.state);
    expect(evicted.preempted_count).toBe(1);
    expect((await get(`/api/v1/workloads/${b1}`)).state).toBe('running');
    expect(r.allocations[0].device_id).toBe(evicted.allocations[0].device_id);
    // the agent was told to release the batch before it was told to allocate the realtime work
    const order = texas1.commands().map((k) => `${k.action?.$case}:${k.action && 'workloadId' in k.action.value ? k.action.value.workloadId : ''}`);
    expect(order.indexOf(`release:${b2}`)).toBeGreaterThanOrEqual(0);
    expect(order.indexOf(`release:${b2}`)).toBeLessThan(order.indexOf(`allocate:${rt}`));
    await inState(b2, 'pending', 'evicted batch waiting');

    // duration_s elapses: the realtime run completes and the evicted batch runs again
    await inState(rt, 'completed', 'realtime completed');
    const back = await inState(b2, 'running', 'evicted batch running again');
    expect(back.history.map((h: Json) => h.to)).toEqual(['scheduled', 'running', 'preempted', 'pending', 'scheduled', 'running']);
    const hist = await sql`SELECT to_state, reason FROM allocation_history WHERE workload_id = ${b2} AND to_state = 'preempted'`;
    expect(hist[0]!.reason).toContain(rt);
    await waitFor(async () => (await metric('orchestrator_active_workloads')) === 2, { message: 'two running' });
  });

  it('lists workloads newest first, a page at a time, filtered by state and customer', async () => {
    const all = await get('/api/v1/workloads?customer_id=cust-001&limit=1000');
    expect(all.workloads.length).toBeGreaterThanOrEqual(4);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = await get(`/api/v1/workloads?customer_id=cust-001&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.workloads.length).toBeLessThanOrEqual(2);
      seen.push(...page.workloads.map((w: Json) => w.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual(all.workloads.map((w: Json) => w.id));
    const runningOnly = await get('/api/v1/workloads?state=running');
    expect(runningOnly.workloads.length).toBe(2);
    expect(runningOnly.workloads.every((w: Json) => w.state === 'running')).toBe(true);
    const bad = await fetch(`${base()}/api/v1/workloads?cursor=abc`, { headers: bearer() });
    expect(bad.status).toBe(400);
  });

  it('respects a demand-response commitment: a site that promised its megawatts gets no new load', async () => {
    // texas-2 was lost in an earlier test: its agent comes back
    texas2 = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'texas-2', session: 't2-back', devices: [device('gpu-texas-2-0001', 'gpu'), device('asic-texas-2-00001', 'asic')], token: tokens.get('texas-2')! }, 'apply');
    await waitFor(() => texas2.received.length > 0, { message: 'texas-2 hello ack' });
    await online('texas-2', ['gpu-texas-2-0001']);
    // free every GPU first
    for (const w of (await get('/api/v1/workloads?state=running&limit=100')).workloads as Json[]) {
      expect((await post(`/api/v1/workloads/${w.id}/cancel`, {})).status).toBe(200);
    }
    await waitFor(async () => Number((await sql`SELECT count(*) AS n FROM allocations WHERE released_at IS NULL`)[0]!.n) === 0, { message: 'no live allocations' });

    // best fit puts a 1-GPU run on texas-2 (one GPU, nothing left over) ...
    const before = await submit({ requirements: { gpu_type: 'H100', gpu_count: 1 } });
    expect((await inState(before, 'running')).allocations.map((a: Json) => a.site)).toEqual(['texas-2']);
    expect((await post(`/api/v1/workloads/${before}/cancel`, {})).status).toBe(200);
    await waitFor(async () => Number((await sql`SELECT count(*) AS n FROM allocations WHERE released_at IS NULL`)[0]!.n) === 0, { message: 'released' });

    // ... until texas-2 commits its whole 250 kW to a grid program: then it goes to texas-1
    const now = Date.now();
    const dr = await post('/api/v1/sites/texas-2/demand-response', { mw: 0.25, from: new Date(now - 60_000).toISOString(), to: new Date(now + 3600_000).toISOString(), program: 'ERS-10' });
    expect(dr.status).toBe(201);
    const after = await submit({ requirements: { gpu_type: 'H100', gpu_count: 1 } });
    expect((await inState(after, 'running')).allocations.map((a: Json) => a.site)).toEqual(['texas-1']);
  });
});

