// Several control planes on one real PostgreSQL database, in one test process, each with its own
// HTTP, gRPC and broker ports (docs/reliability.md, "Several control planes"): one leads (the
// lease), commands reach the replica holding the site's agent stream and their results come back
// to the issuer's waiters, a deposed leader's writes are refused, and a stream that moves to
// another replica gets its pending command there once.
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { FencedError, withFence } from '../control-plane/ha/fence.js';
import mqtt from 'mqtt';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { encodeStatus, topics } from '../proto/topics.js';
import { asic } from './harness/samples.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';
import { apiClient, bearer, TEST_ADMIN_KEY } from './harness/auth.js';

const DEVICES = [device('gpu-texas-1-0001', 'gpu'), device('asic-texas-1-00001', 'asic')];

describePg('several control planes on one database', (pg) => {
  const cps: Record<string, ControlPlane> = {};
  const open: ControlPlane[] = [];
  const agents: TestAgentStream[] = [];
  let sql: postgres.Sql;
  let token = '';
  let n = 0;

  const start = async (name: string) => {
    const config = loadControlPlaneConfig({
      DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_ECONOMICS: 'off',
      HCP_HEARTBEAT_MS: '300', HCP_STALE_AFTER_MS: '3000', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY, HCP_REPLICA_ID: `replica-${name}`,
    });
    const cp = await createControlPlane(config, pino({ level: process.env.TEST_LOG ?? 'silent' }).child({ replica: name }));
    cps[name] = cp;
    open.push(cp);
    return cp;
  };
  const agentOn = (cp: ControlPlane) => {
    const a = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'texas-1', session: `s-${++n}`, token, devices: DEVICES });
    agents.push(a);
    return a;
  };
  const curtail = (id: string) => ({ id, siteId: 'texas-1', payload: { type: 'curtail' as const, reason: 'test' }, actor: 'test', deadlineMs: Date.now() + 60_000 });
  const got = (a: TestAgentStream, id: string) => a.commands().filter((c) => c.commandId === id).length;
  const status = async (cp: ControlPlane) => (await (await fetch(`http://127.0.0.1:${cp.httpPort}/api/v1/status`, { headers: bearer() })).json()) as { replica: { id: string; leader: boolean; leader_id: string } };
  const leaderMetric = async (cp: ControlPlane) => {
    const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text();
    return Number(text.split('\n').find((l) => l.startsWith('hcp_leader{'))?.split(' ').pop());
  };

  beforeAll(async () => {
    sql = postgres(pg.url, { onnotice: () => {} });
    await start('a');
    await start('b');
    token = (await cps.a!.keys.create({ role: 'agent', siteId: 'texas-1' }, 'test')).secret;
    // made on a; b's key ring learns it at its next poll (key-ring.ts, every 250 ms)
    await waitFor(async () => (await fetch(`http://127.0.0.1:${cps.b!.httpPort}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })).status === 200, { message: 'b knows the agent key' });
  });

  afterAll(async () => {
    for (const a of agents) a.close();
    for (const cp of open) await cp.close();
    await sql?.end();
  });

  it('one replica leads, the other stands by, and both say so', async () => {
    expect(cps.a!.leadership.leading()).toBe(true);
    expect(cps.b!.leadership.leading()).toBe(false);
    const [sa, sb] = [await status(cps.a!), await status(cps.b!)];
    expect(sa.replica).toMatchObject({ id: 'replica-a', leader: true, leader_id: 'replica-a' });
    await waitFor(async () => (await status(cps.b!)).replica.leader_id === 'replica-a', { message: 'b sees a lead' });
    expect(sb.replica).toMatchObject({ id: 'replica-b', leader: false });
    expect(await leaderMetric(cps.a!)).toBe(1);
    expect(await leaderMetric(cps.b!)).toBe(0);
    const [row] = await sql`SELECT holder, token::text AS token FROM leases WHERE name = 'leader'`;
    expect(row!.holder).toBe('replica-a');
  });

  it('a command issued on one replica reaches the agent on another, and the issuer hears the result', async () => {
    const agent = agentOn(cps.b!);
    await waitFor(() => agent.received.find((m) => m.body?.$case === 'helloAck'), { message: 'HelloAck from b' });
    const [rec] = await cps.a!.bus.submit([curtail('cmd-ha-across')]);
    expect(rec!.state).toBe('pending'); // a holds no stream for texas-1
    await waitFor(() => got(agent, 'cmd-ha-across') === 1, { message: 'the agent on b got the command issued on a' });
    const waiting = cps.a!.bus.waitFinal(['cmd-ha-across'], 10_000);
    agent.ack('cmd-ha-across');
    agent.result('cmd-ha-across', true);
    const [done] = await waiting;
    expect(done!.state).toBe('succeeded');
    const [row] = await sql`SELECT state, attempts FROM commands WHERE id = 'cmd-ha-across'`;
    expect(row).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(got(agent, 'cmd-ha-across')).toBe(1);
  });

  it('keeps delivering after the listening connection was dropped', async () => {
    const agent = agents.at(-1)!;
    const killed = await sql`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name LIKE 'hcp-listen-replica-b%'`;
    expect(killed.length).toBeGreaterThan(0);
    await cps.a!.bus.submit([curtail('cmd-ha-after-drop')]);
    await waitFor(() => got(agent, 'cmd-ha-after-drop') === 1, { timeoutMs: 15_000, message: 'delivered after the LISTEN connection came back' });
    const waiting = cps.a!.bus.waitFinal(['cmd-ha-after-drop'], 15_000);
    agent.result('cmd-ha-after-drop', true);
    expect((await waiting)[0]!.state).toBe('succeeded');
    await waitFor(async () => (await sql`SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'hcp-listen-replica-b%'`).length === 1, { timeoutMs: 10_000, message: 'b listens again' });
  });

  it('a stream that moves to another replica gets its pending command there, once', async () => {
    const c = await start('c');
    const onB = agents.at(-1)!;
    // the agent goes away before it answers; the command waits in the table
    onB.close();
    await waitFor(() => !cps.b!.registry.site('texas-1')?.streamSession, { message: 'b saw the stream go' });
    await cps.a!.bus.submit([curtail('cmd-ha-moved')]);
    const onC = agentOn(c);
    await waitFor(() => got(onC, 'cmd-ha-moved') === 1, { timeoutMs: 10_000, message: 'c delivered the pending command' });
    const waiting = cps.a!.bus.waitFinal(['cmd-ha-moved'], 10_000);
    onC.result('cmd-ha-moved', true);
    expect((await waiting)[0]!.state).toBe('succeeded');
    expect(got(onC, 'cmd-ha-moved')).toBe(1);
    expect(got(onB, 'cmd-ha-moved')).toBe(0);
    const [row] = await sql`SELECT state, attempts FROM commands WHERE id = 'cmd-ha-moved'`;
    expect(row).toMatchObject({ state: 'succeeded', attempts: 1 });
  });

  it('an operator’s curtail on a replica that does not lead is carried out by the leader and waited for there', async () => {
    const [a, c] = [cps.a!, cps.c!];
    expect(a.leadership.leading()).toBe(true);
    const onC = agents.at(-1)!;
    // the leader learns the inventory of the Hello c took, and its telemetry (its own broker here)
    await waitFor(() => a.registry.device('asic-texas-1-00001'), { message: 'a learnt the devices of the hello on c' });
    const pub = await mqtt.connectAsync(a.mqttUrl, { clientId: 'hcp-agent-texas-1-ha', username: 'texas-1', password: token });
    try {
      const session = a.registry.site('texas-1')?.agentSession ?? 's-2';
      // the site says it is online over MQTT, as an agent does on the shared broker
      await pub.publishAsync(topics.status('texas-1'), encodeStatus({ site: 'texas-1', state: 'online', session, ts: new Date().toISOString() }), { qos: 1, retain: true });
      let seq = 0;
      await waitFor(async () => {
        await pub.publishAsync(topics.telemetry('texas-1'), Buffer.from(TelemetryBatch.encode({ siteId: 'texas-1', seq: ++seq, sentAtMs: Date.now(), agentSession: session, gpus: [], asics: [asic('asic-texas-1-00001', Date.now(), 270, 3645)] }).finish()), { qos: 1 });
        return a.registry.device('asic-texas-1-00001')?.online === true;
      }, { message: 'the leader sees the ASIC online and mining' });
      // the agent on c answers the set_mining the leader's reconciler sends
      const answered = new Set<string>();
      const answer = setInterval(() => {
        for (const cmd of onC.commands()) {
          if (cmd.action?.$case !== 'setMining' || answered.has(cmd.commandId)) continue;
          answered.add(cmd.commandId);
          onC.result(cmd.commandId, true);
        }
      }, 20);
      try {
        const r = await apiClient(`http://127.0.0.1:${c.httpPort}`).post('/api/v1/curtail?wait=true&timeout_s=20', { sites: ['texas-1'], reason: 'ha: curtail on a standby' });
        const body = (await r.json()) as { claims: unknown[]; commands: Array<{ id: string; state: string; type: string }> };
        expect(r.status).toBe(200);
        expect(body.claims).toHaveLength(1);
        expect(body.commands.length).toBeGreaterThan(0);
        expect(body.commands.every((x) => x.state === 'succeeded')).toBe(true);
        const ids = body.commands.map((x) => x.id);
        await waitFor(async () => (await sql`SELECT actor, state FROM commands WHERE id = ANY(${ids})`).every((x) => x.actor === 'system:reconciler' && x.state === 'succeeded'), { message: 'the leader’s commands stored as succeeded' });
        // the claim is the leader's to resolve: it knows it
        expect(a.claims.list('texas-1').some((x) => x.reason === 'ha: curtail on a standby')).toBe(true);
      } finally {
        clearInterval(answer);
      }
    } finally {
      await pub.endAsync();
    }
  });

  it('refuses a deposed leader’s writes, and the loops stop at once', async () => {
    const a = cps.a!;
    const fence = a.leadership.fence()!;
    expect(fence).not.toBeNull();
    // another holder takes the lease behind a's back
    await sql`UPDATE leases SET token = token + 1, holder = 'thief', expires_at = now() + interval '3 seconds' WHERE name = 'leader'`;
    const err = await withFence(fence, () => a.bus.submit([curtail('cmd-ha-fenced')])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FencedError);
    expect(a.leadership.leading()).toBe(false);
    expect((await sql`SELECT 1 FROM commands WHERE id = 'cmd-ha-fenced'`).length).toBe(0);
    // a claim and a workload move under the old fence are refused too
    const claimErr = await withFence(fence, () => a.claims.set({
      siteId: 'texas-1', source: 'grid', deviceIds: [], want: { kind: 'mining', enabled: false, powerTargetW: null }, reason: 'late', actor: 'test', expiresAtMs: null,
    })).catch((e: unknown) => e);
    expect(claimErr).toBeInstanceOf(FencedError);
    expect((await sql`SELECT 1 FROM claims WHERE reason = 'late'`).length).toBe(0);
    const w = await a.workloads.submit({ customerId: 'cust-001', workloadType: 'ai_inference_batch', priority: 5, gpuType: 'NVIDIA H100 80GB HBM3', gpuCount: 99, requirements: {}, durationS: 60 }, 'test');
    const wid = 'row' in w ? w.row.id : '';
    const cancelErr = await withFence(fence, () => a.workloads.cancel(wid, 'test')).catch((e: unknown) => e);
    expect(cancelErr).toBeInstanceOf(FencedError);
    // the thief's term runs out; a replica takes the lease with a newer token
    const t0 = performance.now();
    await waitFor(() => Object.values(cps).some((cp) => cp.leadership.leading()), { timeoutMs: 10_000, message: 'a new leader after the thief' });
    const next = Object.values(cps).find((cp) => cp.leadership.leading())!;
    expect(BigInt(next.leadership.fence()!.token)).toBeGreaterThan(BigInt(fence.token) + 1n);
    console.log(JSON.stringify({ test: 'ha.fenced', new_leader: next.leadership.status().holder, seconds: Number(((performance.now() - t0) / 1000).toFixed(2)) }));
  });

  it('when the leader closes, another replica leads within seconds', async () => {
    const leader = Object.entries(cps).find(([, cp]) => cp.leadership.leading())!;
    const t0 = performance.now();
    await leader[1].close();
    delete cps[leader[0]];
    const next = await waitFor(() => Object.values(cps).find((cp) => cp.leadership.leading()), { timeoutMs: 10_000, message: 'a standby took over' });
    const seconds = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ test: 'ha.failover.close', from: `replica-${leader[0]}`, to: next.leadership.status().holder, seconds: Number(seconds.toFixed(2)) }));
    expect(Object.values(cps).filter((cp) => cp.leadership.leading()).length).toBe(1);
  });
});
