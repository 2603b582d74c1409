// The workload service (control-plane/workloads/service.ts) on real PostgreSQL, with real gRPC
// agent streams answered by hand and a real MQTT broker: every stored transition is one the
// service said; an illegal move is refused as a conflict; across a control-plane restart, the
// answer to an eviction's Release and to an operator's Release are told apart by what the
// command was for (its details), never by its actor; a late Allocate of an older placement
// changes nothing.
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { HcpError } from '../control-plane/errors.js';
import { EventStream, type ControlPlaneEvents } from '../control-plane/events.js';
import { assertTransition } from '../control-plane/scheduler/workload-state.js';
import type { Command } from '../proto/gen/hcp/v1/commands.js';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { gpu } from './harness/samples.js';
import { waitFor } from './harness/wait-for.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SITES = { 'texas-1': 'gpu-texas-1-0001', 'texas-2': 'gpu-texas-2-0001' } as const;
type Site = keyof typeof SITES;

describePg('workload service', (pg) => {
  let cp: ControlPlane;
  let sql: postgres.Sql;
  const tokens = new Map<Site, string>();
  const agents = new Map<Site, TestAgentStream>();
  const pubs: MqttClient[] = [];
  /** every workload.changed said, by any control plane of this file */
  const said: Array<ControlPlaneEvents['workload.changed']> = [];
  /** built before each control plane, so what it says while it starts is heard too */
  let heard: EventStream;

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
  const inState = (id: string, state: string) =>
    waitFor(async () => {
      const w = await get(`/api/v1/workloads/${id}`);
      return w.state === state ? w : null;
    }, { message: `${id} ${state}`, timeoutMs: 10_000 });
  /** the command of this type for this workload the site's agent received (the n-th, from 0) */
  const command = (site: Site, type: 'allocate' | 'release', workloadId: string, n = 0) =>
    waitFor(() => agents.get(site)!.commands().filter((k: Command) => k.action?.$case === type && k.action.value.workloadId === workloadId)[n], { message: `${type} ${workloadId} at ${site}` });
  /** answers a command and waits until the control plane has followed it up */
  const answer = async (site: Site, commandId: string, ok = true) => {
    const final = cp.bus.waitFinal([commandId], 10_000);
    agents.get(site)!.ack(commandId);
    agents.get(site)!.result(commandId, ok);
    const [r] = await final;
    expect(r?.state).toBe(ok ? 'succeeded' : 'failed');
  };
  const detailsOf = async (id: string) => (await sql`SELECT details FROM commands WHERE id = ${id}`)[0]?.details;

  async function start(): Promise<void> {
    heard = new EventStream();
    heard.on('workload.changed', (e) => said.push(e));
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_INGEST_FLUSH_MS: '50',
        HCP_HEARTBEAT_MS: '60000', HCP_STALE_AFTER_MS: '600000', HCP_SCHED_SITE_GRACE_S: '3600', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
      { events: heard },
    );
    for (const site of Object.keys(SITES) as Site[]) {
      if (!tokens.has(site)) tokens.set(site, (await cp.keys.create({ role: 'agent', siteId: site }, 'test')).secret);
      const agent = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: site, session: `s-${Date.now()}`, devices: [device(SITES[site], 'gpu')], token: tokens.get(site)! }, 'none');
      agents.set(site, agent);
      await waitFor(() => agent.received.length > 0, { message: `${site} hello ack` });
      const pub = await mqtt.connectAsync(cp.mqttUrl, { clientId: `hcp-agent-${site}-pub-${Date.now()}`, username: site, password: tokens.get(site) });
      pubs.push(pub);
      const t = Date.now();
      await pub.publishAsync(topics.telemetry(site), Buffer.from(TelemetryBatch.encode({ siteId: site, seq: t, sentAtMs: t, agentSession: 's', gpus: [gpu(SITES[site], t, 0, 100)], asics: [] }).finish()), { qos: 1 });
    }
    await waitFor(() => Object.values(SITES).every((g) => cp.registry.device(g)?.online), { message: 'GPUs online' });
  }

  async function stop(): Promise<void> {
    for (const a of agents.values()) a.close();
    agents.clear();
    for (const p of pubs.splice(0)) await p.endAsync();
    await cp.close();
  }

  beforeAll(async () => {
    sql = postgres(pg.url, { onnotice: () => {} });
    await start();
  });

  afterAll(async () => {
    await stop().catch(() => {});
    await sql?.end();
  });

  let operatorRun = '';
  let evicted = '';
  let realtime = '';

  it('tells an eviction’s Release from an operator’s after a restart by what it was for; a late Allocate of an older placement changes nothing', async () => {
    // O runs on texas-2, B on texas-1
    operatorRun = await submit({ site: 'texas-2' });
    await answer('texas-2', (await command('texas-2', 'allocate', operatorRun)).commandId);
    await inState(operatorRun, 'running');
    evicted = await submit({ site: 'texas-1', priority: 7 });
    await answer('texas-1', (await command('texas-1', 'allocate', evicted)).commandId);
    await inState(evicted, 'running');

    // realtime R needs texas-1's only GPU: B is evicted (its Release goes first), R's Allocate follows
    realtime = await submit({ site: 'texas-1', workload_type: 'ai_inference_realtime', priority: 1 });
    const evictRelease = await command('texas-1', 'release', evicted);
    const staleAllocate = await command('texas-1', 'allocate', realtime);
    await inState(evicted, 'preempted');
    // an operator releases O; nobody answers yet
    const rel = await post('/api/v1/release', { workload_id: operatorRun });
    expect(rel.status, JSON.stringify(rel.body)).toBe(202);
    const operatorRelease = await command('texas-2', 'release', operatorRun);
    // R is cancelled before its Allocate is answered: that Allocate is now of an older placement
    expect((await post(`/api/v1/workloads/${realtime}/cancel`, {})).body.state).toBe('cancelled');

    // what each command was for is stored with it; the actor says only who
    await cp.bus.flush();
    expect(await detailsOf(evictRelease.commandId)).toEqual({ workload: 'eviction' });
    expect(await detailsOf(operatorRelease.commandId)).toEqual({ workload: 'operator_release' });
    expect(await detailsOf(staleAllocate.commandId)).toEqual({ workload: 'placement' });

    await stop();
    await start();

    // after the restart B is queued again and placed on the GPU R let go; the answers come in late
    const replaced = await command('texas-1', 'allocate', evicted);
    await inState(evicted, 'scheduled');
    await command('texas-1', 'release', evicted); // redelivered
    await answer('texas-1', evictRelease.commandId);
    // an eviction's Release answered: B, placed again, is not ended (an operator's would have)
    expect((await get(`/api/v1/workloads/${evicted}`)).state).toBe('scheduled');

    // the late Allocate of R's cancelled placement: R stays cancelled and holds nothing
    await command('texas-1', 'allocate', realtime); // redelivered
    await answer('texas-1', staleAllocate.commandId);
    const r = await get(`/api/v1/workloads/${realtime}`);
    expect(r.state).toBe('cancelled');
    expect(r.allocations.every((a: Json) => !a.live)).toBe(true);

    await answer('texas-1', replaced.commandId);
    const back = await inState(evicted, 'running');
    expect(back.history.map((h: Json) => h.to)).toEqual(['scheduled', 'running', 'preempted', 'pending', 'scheduled', 'running']);

    // the operator's Release, answered after the restart, ends O's run
    await command('texas-2', 'release', operatorRun); // redelivered
    await answer('texas-2', operatorRelease.commandId);
    const o = await get(`/api/v1/workloads/${operatorRun}`);
    expect(o.state).toBe('completed');
    expect(o.allocations.every((a: Json) => !a.live)).toBe(true);
  });

  it('refuses an illegal move as a conflict: a completed workload is not cancelled, a cancelled one not completed', async () => {
    const err = await cp.workloads.cancel(operatorRun, 'test').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(HcpError);
    expect((err as HcpError).code).toBe('conflict');
    const rest = await post(`/api/v1/workloads/${operatorRun}/cancel`, {});
    expect(rest.status).toBe(409);
    expect(rest.body.error.reason).toBe('workload_finished');
    const release = await post('/api/v1/release', { workload_id: realtime });
    expect(release.status).toBe(409);
    expect(release.body.error.reason).toBe('workload_not_running');
    // the rule the service checks every move against
    let illegal: unknown = null;
    try {
      assertTransition('cancelled', 'completed');
    } catch (e) {
      illegal = e;
    }
    expect(illegal).toBeInstanceOf(HcpError);
    expect(illegal).toMatchObject({ code: 'conflict', reason: 'illegal_transition' });
    expect((await get(`/api/v1/workloads/${realtime}`)).state).toBe('cancelled');
  });

  it('stores no transition the service did not say: allocation_history matches workload.changed, move for move', async () => {
    // a submit and a cancel of a queued workload too
    const queued = await submit({ site: 'texas-1', priority: 9 });
    expect((await post(`/api/v1/workloads/${queued}/cancel`, {})).body.state).toBe('cancelled');
    // a run whose duration elapses: completed, and its GPU released for the completion
    const timed = await submit({ site: 'texas-2', duration_s: 1 });
    await answer('texas-2', (await command('texas-2', 'allocate', timed)).commandId);
    await inState(timed, 'completed');
    const done = await command('texas-2', 'release', timed);
    await cp.bus.flush();
    expect(await detailsOf(done.commandId)).toEqual({ workload: 'completion' });
    await answer('texas-2', done.commandId);
    expect((await get(`/api/v1/workloads/${timed}`)).state).toBe('completed');
    // an Allocate the agent fails: back to the queue, one attempt counted
    const failing = await submit({ site: 'texas-2' });
    await answer('texas-2', (await command('texas-2', 'allocate', failing)).commandId, false);
    const back = await inState(failing, 'pending');
    expect(back.allocate_attempts).toBe(1);
    expect((await post(`/api/v1/workloads/${failing}/cancel`, {})).body.state).toBe('cancelled');
    const ids = [operatorRun, evicted, realtime, queued, timed, failing];
    const stored = await sql<{ workload_id: string; from_state: string | null; to_state: string }[]>`
      SELECT workload_id, from_state, to_state FROM allocation_history WHERE workload_id = ANY(${ids})`;
    const moves = (rows: Array<{ id: string; from: string | null; to: string }>) => rows.map((m) => `${m.id}:${m.from ?? 'new'}->${m.to}`).sort();
    const told = said.filter((e) => ids.includes(e.workloadId) && e.from !== null);
    expect(moves(told.map((e) => ({ id: e.workloadId, from: e.from, to: e.to })))).toEqual(moves(stored.map((h) => ({ id: h.workload_id, from: h.from_state, to: h.to_state }))));
    // and every workload's submit was said once
    expect(said.filter((e) => ids.includes(e.workloadId) && e.from === null).map((e) => e.workloadId).sort()).toEqual([...ids].sort());
  });

  it('is wired as a one-way graph: no late-bound part in control-plane.ts', () => {
    const src = readFileSync(new URL('../control-plane/control-plane.ts', import.meta.url), 'utf8');
    expect(src).not.toMatch(/\bneed\(/);
    expect(src).not.toMatch(/:\s*\(\)\s*=>\s*(ops|bus|sched|scheduler|grid)\b/);
    expect(src).not.toMatch(/let (bus|grid|scheduler|ops)\b/);
  });
});
