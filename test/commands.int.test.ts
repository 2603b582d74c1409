// The command path on real PostgreSQL with real gRPC: REST and Fleet API in (an operator's
// mining and curtail are claims, carried out by the site's reconciler), agent streams out; the
// bus's own guarantees (held for a site that is away, deadlines, redelivery, restarts) with
// commands submitted to it directly.
import { credentials, loadPackageDefinition, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { CommandState, FleetClient, type CommandsReply } from '../proto/gen/hcp/v1/fleet.js';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { asic, gpu } from './harness/samples.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';
import { lockHolder } from './harness/lock-holder.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';
import { Metadata } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describePg('commands', (pg) => {
  let cp: ControlPlane;
  let sql: postgres.Sql;
  let pub: MqttClient;
  let texas1: TestAgentStream;
  const streams: TestAgentStream[] = [];
  const base = () => `http://127.0.0.1:${cp.httpPort}`;
  const tokens = new Map<string, string>();
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const r = await fetch(`${base()}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(), ...headers }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Json };
  };
  const get = async (path: string) => {
    const r = await fetch(`${base()}${path}`, { headers: bearer() });
    return { status: r.status, body: (await r.json()) as Json };
  };
  const start = async () => {
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_INGEST_FLUSH_MS: '50',
        HCP_HEARTBEAT_MS: '60000', HCP_STALE_AFTER_MS: '600000', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
    for (const site of ['texas-1', 'texas-2', 'canada-1']) {
      if (!tokens.has(site)) tokens.set(site, (await cp.keys.create({ role: 'agent', siteId: site }, 'test')).secret);
    }
  };
  /** a set_mining command straight onto the bus (the reconciler's way in) */
  const submit = async (site: string, enabled: boolean, o: { deadlineS?: number; powerTargetW?: number } = {}) => {
    const [r] = await cp.bus.submit([{
      id: `cmd-${randomUUID()}`, siteId: site, actor: 'test', deadlineMs: Date.now() + (o.deadlineS ?? 300) * 1000,
      payload: { type: 'set_mining', enabled, deviceIds: [], powerTargetW: o.powerTargetW ?? null },
    }]);
    return r!.id;
  };
  const release = async (claimId: string) => {
    const r = await fetch(`${base()}/api/v1/claims/${claimId}`, { method: 'DELETE', headers: bearer() });
    expect(r.status).toBe(200);
  };
  const open = (site: string, answer: 'apply' | 'ack' | 'none', devices = [device(`gpu-${site}-0001`, 'gpu'), device(`asic-${site}-00001`, 'asic')]) => {
    const s = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: site, session: `${site}-${Math.random()}`, devices, token: tokens.get(site)! }, answer);
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    await start();
    sql = postgres(pg.url, { onnotice: () => {} });
    texas1 = open('texas-1', 'apply', [device('gpu-texas-1-0001', 'gpu'), device('gpu-texas-1-0002', 'gpu'), device('asic-texas-1-00001', 'asic'), device('asic-texas-1-00002', 'asic')]);
    await waitFor(() => texas1.received.length > 0, { message: 'HelloAck' });
    pub = await mqtt.connectAsync(cp.mqttUrl, { clientId: 'hcp-agent-texas-1-pub', username: 'texas-1', password: tokens.get('texas-1') });
    const t = Date.now();
    await pub.publishAsync(topics.telemetry('texas-1'), Buffer.from(TelemetryBatch.encode({
      siteId: 'texas-1', seq: 1, sentAtMs: t, agentSession: 's',
      gpus: [gpu('gpu-texas-1-0001', t, 0, 100), gpu('gpu-texas-1-0002', t, 0, 100)], asics: [asic('asic-texas-1-00001', t, 270, 3645), asic('asic-texas-1-00002', t, 270, 3645)],
    }).finish()), { qos: 1 });
    await waitFor(() => cp.registry.device('gpu-texas-1-0002')?.online, { message: 'texas-1 devices online' });
  });

  afterAll(async () => {
    for (const s of streams) s.close();
    await pub?.endAsync();
    await sql?.end();
    await cp?.close();
  });

  it('switches a site’s mining off and waits for the agent’s result, audited as the key that asked (never a header)', async () => {
    const alice = (await cp.keys.create({ role: 'operator', name: 'alice' }, 'test')).secret;
    const r = await post('/api/v1/sites/texas-1/mining?wait=true', { enabled: false }, { ...bearer(alice), 'x-hcp-actor': 'ceo', 'x-request-id': 'req-alice-1' });
    expect(r.status).toBe(200);
    const claim = r.body.claim;
    expect(claim).toMatchObject({ site: 'texas-1', source: 'operator', actor: 'key:alice', want: { kind: 'mining', enabled: false, power_target_w: null }, devices: 'all' });
    const [c] = r.body.commands;
    expect(c).toMatchObject({
      site: 'texas-1', type: 'set_mining', state: 'succeeded', actor: 'system:reconciler',
      params: { enabled: false, device_ids: ['asic-texas-1-00001', 'asic-texas-1-00002'], power_target_w: null },
      details: { source: 'operator', claim_id: claim.id },
    });
    const sent = texas1.commands().find((x) => x.commandId === c.id)!;
    expect(sent.action).toEqual({ $case: 'setMining', value: { enabled: false, deviceIds: ['asic-texas-1-00001', 'asic-texas-1-00002'], powerTargetW: 0 } });
    await waitFor(async () => (await sql`SELECT state FROM commands WHERE id = ${c.id}`)[0]?.state === 'succeeded', { message: 'state persisted' });
    const audit = await waitFor(async () => {
      const rows = await sql`SELECT actor, action FROM audit_log WHERE subject = ${c.id} ORDER BY id`;
      return rows.length === 2 ? rows : null;
    }, { message: 'audit rows' });
    expect(audit.map((a) => [a.actor, a.action])).toEqual([['system:reconciler', 'command.submitted'], ['agent:texas-1', 'command.succeeded']]);
    // the claim is the key's, and both it and the command it caused carry the request's id
    const [stated] = await sql`SELECT actor, details FROM audit_log WHERE subject = ${claim.id} AND action = 'claim.set'`;
    expect(stated!.actor).toBe('key:alice');
    expect(stated!.details.request_id).toBe('req-alice-1');
    const [submitted] = await sql`SELECT details FROM audit_log WHERE subject = ${c.id} AND action = 'command.submitted'`;
    expect(submitted!.details.request_id).toBe('req-alice-1');
    await release(claim.id);
    const got = await get(`/api/v1/commands/${c.id}`);
    expect(got.body).toMatchObject({ id: c.id, state: 'succeeded', attempts: 1 });
    expect(got.body.acked_at).not.toBeNull();
  });

  it('plans while the claim is written, but stores and sends nothing until it is in; a claim that cannot be written sends nothing', async () => {
    // another session holds the claims table: the claim's INSERT waits on its lock
    const holder = lockHolder(pg.url);
    const inFlight = async () => ((await get('/api/v1/sites/texas-1/desired')).body.in_flight as Json[]);
    const claimInsertWaiting = () => waitFor(async () => (await sql`SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO claims%'`)[0]?.pid as number | undefined, { message: 'the claim INSERT waiting on the lock' });
    const before = texas1.commands().length;
    try {
      await holder.lock('LOCK TABLE claims IN EXCLUSIVE MODE');
      const asked = post('/api/v1/sites/texas-1/mining', { enabled: false, reason: 'held by a lock' });
      await claimInsertWaiting();
      // the reconciler has planned the command from the claim in memory ...
      const [planned] = await waitFor(async () => {
        const f = await inFlight();
        return f.length ? f : null;
      }, { message: 'the command planned' });
      // ... and it is neither stored nor on the agent's stream while the claim is not durable
      expect(await sql`SELECT id FROM commands WHERE id = ${planned!.command_id}`).toHaveLength(0);
      expect(texas1.commands()).toHaveLength(before);
      await holder.commit();
      const r = await asked;
      expect(r.status).toBe(202);
      expect(r.body.commands.map((c: Json) => c.id)).toEqual([planned!.command_id]);
      await waitFor(() => texas1.commands().some((c) => c.commandId === planned!.command_id), { message: 'sent once the claim is in' });
      await release(r.body.claim.id);
      await waitFor(async () => (await inFlight()).length === 0, { message: 'texas-1 mining again' });

      // the claim's INSERT ends with its session: nothing of what it caused is stored or sent
      const sentBefore = texas1.commands().length;
      await holder.lock('LOCK TABLE claims IN EXCLUSIVE MODE');
      const failing = post('/api/v1/sites/texas-1/mining', { enabled: false, reason: 'never written' });
      const pid = await claimInsertWaiting();
      const [doomed] = await waitFor(async () => {
        const f = await inFlight();
        return f.length ? f : null;
      }, { message: 'the command planned' });
      await sql`SELECT pg_terminate_backend(${pid})`;
      const refused = await failing;
      expect(refused.status).toBe(503);
      expect(refused.body.error).toMatchObject({ code: 'unavailable', reason: 'database_unavailable' });
      await holder.commit();
      // the claim is taken out of memory again, and the planned command never reaches a table or a stream
      expect((await get('/api/v1/claims?site=texas-1')).body.claims.filter((c: Json) => c.reason === 'never written')).toEqual([]);
      await waitFor(async () => (await inFlight()).length === 0, { message: 'the planned command dropped' });
      expect(await sql`SELECT id FROM commands WHERE id = ${doomed!.command_id}`).toHaveLength(0);
      expect(await sql`SELECT id FROM claims WHERE reason = 'never written'`).toHaveLength(0);
      expect(texas1.commands()).toHaveLength(sentBefore);
      expect((await get('/api/v1/sites/texas-1/desired')).body.desired.asleep).toBe(0);
    } finally {
      await holder.end();
    }
  });

  it('refuses bad mining and curtail requests, naming the field', async () => {
    expect((await post('/api/v1/sites/atlantis/mining', { enabled: true })).status).toBe(404);
    const noEnabled = await post('/api/v1/sites/texas-1/mining', { power_target_w: -5 });
    expect(noEnabled.status).toBe(400);
    expect(noEnabled.body.error.fields.map((f: Json) => f.field).sort()).toEqual(['enabled', 'power_target_w']);
    const gpuAsAsic = await post('/api/v1/sites/texas-1/mining', { enabled: true, device_ids: ['gpu-texas-1-0001'] });
    expect(gpuAsAsic.status).toBe(400);
    expect(gpuAsAsic.body.error.fields[0].field).toBe('device_ids.0');
    const elsewhere = await post('/api/v1/sites/texas-1/mining', { enabled: true, device_ids: ['asic-texas-1-00001', 'asic-texas-2-00009'] });
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body.error.fields[0].field).toBe('device_ids.1');
    const tooMuch = await post('/api/v1/sites/texas-1/mining', { enabled: true, power_target_w: 5000 });
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.body.error).toMatchObject({ reason: 'power_target_out_of_range', fields: [{ field: 'power_target_w' }] });
    const past = await post('/api/v1/sites/texas-1/mining', { enabled: false, expires_at: '2020-01-01T00:00:00Z' });
    expect(past.status).toBe(400);
    expect(past.body.error.fields[0].field).toBe('expires_at');
    expect(cp.claims.list('texas-1')).toEqual([]);
    const both = await post('/api/v1/curtail', { all: true, sites: ['texas-1'], reason: 'x' });
    expect(both.status).toBe(400);
    expect((await post('/api/v1/curtail', { sites: ['mars-1'], reason: 'x' })).status).toBe(404);
    const noReason = await post('/api/v1/curtail', { all: true });
    expect(noReason.status).toBe(400);
    expect(noReason.body.error.fields[0].field).toBe('reason');
    const malformed = await fetch(`${base()}/api/v1/curtail`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer() }, body: '{"all": tru' });
    expect(malformed.status).toBe(400);
    expect((await get('/api/v1/commands/cmd-nope')).status).toBe(404);
  });

  it('holds a command for a disconnected site and delivers it when the agent connects', async () => {
    const id = await submit('texas-2', false);
    expect((await get(`/api/v1/commands/${id}`)).body.state).toBe('pending');
    const texas2 = open('texas-2', 'apply');
    await waitFor(async () => (await get(`/api/v1/commands/${id}`)).body.state === 'succeeded', { message: 'delivered on connect' });
    expect(texas2.commands().map((c) => c.commandId)).toContain(id);
  });

  it('expires a command that reaches no agent before its deadline', async () => {
    const id = await submit('canada-1', false, { deadlineS: 1 });
    const c = await waitFor(async () => {
      const x = (await get(`/api/v1/commands/${id}`)).body;
      return x.state === 'expired' ? x : null;
    }, { message: 'expired', timeoutMs: 5000 });
    expect(c.reason_code).toBe('expired');
  });

  it('redelivers a command whose agent vanished after the ack, and refuses results from the wrong site', async () => {
    const silent = open('canada-1', 'ack');
    await waitFor(() => silent.received.length > 0, { message: 'hello ack' });
    const id = await submit('canada-1', false);
    await waitFor(async () => (await get(`/api/v1/commands/${id}`)).body.state === 'acked', { message: 'acked' });

    const before = await metric('hcp_command_results_rejected_total{reason="wrong_site"}');
    texas1.result(id, true);
    await waitFor(async () => (await metric('hcp_command_results_rejected_total{reason="wrong_site"}')) === before + 1, { message: 'wrong-site result counted' });
    expect((await get(`/api/v1/commands/${id}`)).body.state).toBe('acked');

    silent.close();
    await waitFor(async () => (await get(`/api/v1/commands/${id}`)).body.state === 'pending', { message: 'back to pending' });
    open('canada-1', 'apply');
    const done = await waitFor(async () => {
      const x = (await get(`/api/v1/commands/${id}`)).body;
      return x.state === 'succeeded' ? x : null;
    }, { message: 'redelivered' });
    expect(done.attempts).toBe(2);
  });

  it('runs a workload through allocate and release, refusing busy GPUs and double allocation', async () => {
    const bad = await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'mining', priority: 11, requirements: { gpu_count: 0 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields.map((f: Json) => f.field).sort()).toEqual(['priority', 'requirements.gpu_count', 'requirements.gpu_type', 'workload_type']);
    expect((await post('/api/v1/workloads', { customer_id: 'cust-999', workload_type: 'ai_training', priority: 5, requirements: { gpu_type: 'H100', gpu_count: 1 } })).status).toBe(404);
    expect((await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'ai_training', priority: 5, requirements: { gpu_type: 'TPU', gpu_count: 1 } })).status).toBe(400);

    // Pinned to canada-1, whose GPU never reports here, so the scheduler leaves them queued and
    // the operator places them explicitly.
    const w1 = (await post('/api/v1/workloads', { customer_id: 'cust-001', workload_type: 'ai_inference_batch', priority: 5, site: 'canada-1', requirements: { gpu_type: 'H100', gpu_count: 1 } })).body;
    const w2 = (await post('/api/v1/workloads', { customer_id: 'cust-002', workload_type: 'ai_inference_batch', priority: 5, site: 'canada-1', requirements: { gpu_type: 'H100', gpu_count: 1 } })).body;
    expect(w1.state).toBe('pending');

    const a = await post('/api/v1/allocate?wait=true', { workload_id: w1.id, device_ids: ['gpu-texas-1-0001'] });
    expect(a.status).toBe(200);
    expect(a.body.commands[0]).toMatchObject({ type: 'allocate', state: 'succeeded', workload_id: w1.id });
    const running = await waitFor(async () => {
      const x = (await get(`/api/v1/workloads/${w1.id}`)).body;
      return x.state === 'running' ? x : null;
    }, { message: 'workload running' });
    expect(running.allocations).toEqual([expect.objectContaining({ device_id: 'gpu-texas-1-0001', site: 'texas-1', live: true })]);

    const busy = await post('/api/v1/allocate', { workload_id: w2.id, device_ids: ['gpu-texas-1-0001'] });
    expect(busy.status).toBe(409);
    expect(busy.body.error.reason).toBe('device_busy');
    expect((await post('/api/v1/allocate', { workload_id: w1.id })).status).toBe(409);
    expect((await post('/api/v1/allocate', { workload_id: 'wl-nope' })).status).toBe(404);
    expect((await post('/api/v1/allocate', { workload_id: w2.id, device_ids: ['gpu-mars-0001'] })).status).toBe(404);

    // without device ids the control plane picks the idle GPU
    const auto = await post('/api/v1/allocate?wait=true', { workload_id: w2.id });
    expect(auto.body.commands[0].params.device_ids).toEqual(['gpu-texas-1-0002']);

    const rel = await post('/api/v1/release?wait=true', { workload_id: w1.id });
    expect(rel.status).toBe(200);
    expect(rel.body.commands[0]).toMatchObject({ type: 'release', state: 'succeeded', params: { device_ids: ['gpu-texas-1-0001'] } });
    const done = await waitFor(async () => {
      const x = (await get(`/api/v1/workloads/${w1.id}`)).body;
      return x.state === 'completed' ? x : null;
    }, { message: 'completed' });
    expect(done.allocations[0].live).toBe(false);
    expect((await post('/api/v1/release', { workload_id: w1.id })).status).toBe(409);
    expect(await metric('orchestrator_allocations_total{type="allocate",status="succeeded"}')).toBe(2);
    expect(await metric('orchestrator_active_workloads')).toBe(1);
    const list = (await get('/api/v1/workloads?state=running')).body;
    expect(list.workloads.map((w: Json) => w.id)).toEqual([w2.id]);
    const history = await sql`SELECT from_state, to_state FROM allocation_history WHERE workload_id = ${w1.id} ORDER BY time`;
    expect(history.map((h) => `${h.from_state}->${h.to_state}`)).toEqual(['pending->scheduled', 'scheduled->running', 'running->completed']);
  });

  it('serves hcp.v1.Fleet with reflection on', async () => {
    const client = new FleetClient(`127.0.0.1:${cp.grpcPort}`, credentials.createInsecure());
    const bob = new Metadata();
    bob.set('authorization', `Bearer ${(await cp.keys.create({ role: 'operator', name: 'bob' }, 'test')).secret}`);
    const anonymous = await new Promise<ServiceError>((res) => client.getStatus({}, (e) => res(e!)));
    expect(anonymous.code).toBe(status.UNAUTHENTICATED);
    const st = await new Promise<Json>((res, rej) => client.getStatus({}, bob, (e, r) => (e ? rej(e) : res(r as Json))));
    expect(st.sites.find((s: Json) => s.id === 'texas-1')).toMatchObject({ online: true, gpus: 2, asics: 2 });
    const reply = await new Promise<CommandsReply>((res, rej) =>
      client.curtail({ sites: ['texas-1'], all: false, reason: 'ERCOT EEA', actor: 'ceo', wait: true, deadlineS: 0, durationS: 0 }, bob, (e, r) => (e ? rej(e) : res(r))),
    );
    expect(reply.claimIds).toHaveLength(1);
    expect(cp.claims.get(reply.claimIds[0]!)).toMatchObject({ source: 'operator', actor: 'key:bob', reason: 'ERCOT EEA' });
    expect(reply.commands[0]).toMatchObject({ site: 'texas-1', type: 'set_mining', state: CommandState.COMMAND_STATE_SUCCEEDED, actor: 'system:reconciler' });
    await release(reply.claimIds[0]!);
    const err = await new Promise<ServiceError>((res) => client.setMining({ site: 'mars-1', enabled: true, deviceIds: [], powerTargetW: 0, actor: '', wait: false, deadlineS: 0, reason: '', durationS: 0 }, bob, (e) => res(e!)));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.metadata.get('hcp-reason')).toEqual(['unknown_site']);
    client.close();

    const def = loadSync('grpc/reflection/v1alpha/reflection.proto', { includeDirs: ['node_modules/@grpc/reflection/build/proto'], keepCase: true });
    const pkg = loadPackageDefinition(def) as Json;
    const refl = new pkg.grpc.reflection.v1alpha.ServerReflection(`127.0.0.1:${cp.grpcPort}`, credentials.createInsecure());
    const services = await new Promise<string[]>((res, rej) => {
      const call = refl.ServerReflectionInfo();
      call.on('data', (m: Json) => {
        res(m.list_services_response.service.map((s: Json) => s.name));
        call.end();
      });
      call.on('error', rej);
      call.write({ list_services: '' });
    });
    expect(services).toEqual(expect.arrayContaining(['hcp.v1.Fleet', 'hcp.v1.AgentGateway']));
    refl.close();
  });

  it('loses no pending command across a control-plane restart', async () => {
    const id = await submit('texas-2', true);
    for (const s of streams.filter((x) => x !== texas1)) s.close();
    // texas-2's stream was open: let the command go out; then pull the control plane away
    const pendingId = await submit('canada-1', true, { powerTargetW: 3000 });
    texas1.close();
    await cp.close();
    await start();
    const back = open('canada-1', 'apply');
    await waitFor(async () => (await get(`/api/v1/commands/${pendingId}`)).body.state === 'succeeded', { message: 'pending command delivered after restart' });
    expect(back.commands().find((c) => c.commandId === pendingId)?.action).toEqual({ $case: 'setMining', value: { enabled: true, deviceIds: [], powerTargetW: 3000 } });
    expect(['succeeded', 'pending']).toContain((await get(`/api/v1/commands/${id}`)).body.state);
  });

  async function metric(series: string): Promise<number> {
    const text = await (await fetch(`${base()}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.split(' ').pop()) : 0;
  }
});
