// Chaos: two control-plane processes on one real PostgreSQL database and a kill -9 of the leader
// while commands are in flight (docs/reliability.md, "Several control planes").
//
// Scenario 3, a fleet curtail: real agent processes on real Mosquitto, each given both replicas'
// addresses (half dial the standby first), simulated S21s slow to take a command
// (HCP_AGENT_CHAOS_APPLY_DELAY_MS). The curtail is asked of the standby; the leader's reconciler
// sends the commands; the leader is killed while every site's command is acked and applying. The
// standby takes the lease (timed), the agents on the dead replica dial the survivor, and every
// command ends succeeded, applied once by its agent (its `command applied` lines), audited once,
// and every ASIC asleep.
//
// Light gRPC agents, commands from the standby: the commands are issued on the standby (PUT …/grid-trip: one ArmGridTrip per site,
// straight through the command bus), delivered by the leader that holds the agents' streams,
// applied by the agents, whose answers die with the leader. The standby takes the lease, the
// agents reconnect to it, it sends the commands again, and the agents answer from their journals
// (as agent/commands/handler.ts does): every command ends succeeded once and was applied once.
import { afterAll, expect, it } from 'vitest';
import { device, openAgentStream, type TestAgentStream } from '../harness/grpc-agent.js';
import { describePg } from '../harness/pg.js';
import { startControlPlaneProcess, type ControlPlaneProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { apiClient, makeKey } from '../harness/auth.js';
import postgres from 'postgres';
import { startMosquitto, type Mosquitto } from '../harness/mosquitto.js';
import { chaosScale, chaosSites, reportChaos, siteCredential, startAgent, startChaosControlPlane, type AgentHandle, type ControlPlaneHandle } from './harness.js';

const scale = chaosScale();

const SITES = ['texas-1', 'texas-2', 'canada-1'];

/** a light agent: a journal of applied command ids, answered from it when a command comes again */
interface LightAgent {
  site: string;
  stream: TestAgentStream | null;
  applied: Map<string, number>;
  received: Map<string, number>;
  answering: boolean;
}

describePg('leader failover under load', (pg) => {
  const procs: ControlPlaneProcess[] = [];
  const agents: LightAgent[] = [];
  const timers: NodeJS.Timeout[] = [];
  let sql: postgres.Sql | undefined;

  afterAll(async () => {
    for (const t of timers) clearInterval(t);
    for (const a of agents) a.stream?.close();
    for (const p of procs) await p.proc.kill('SIGTERM');
    await sql?.end();
  });

  const status = async (cp: ControlPlaneProcess) => {
    const r = await apiClient(cp.http).get('/api/v1/status').catch(() => null);
    return r?.ok ? ((await r.json()) as { replica: { id: string; leader: boolean } }).replica : null;
  };

  const connect = (a: LightAgent, grpc: string, token: string) => {
    const s = openAgentStream(grpc, { siteId: a.site, session: `light-${a.site}-${Date.now()}`, token, devices: [device(`gpu-${a.site}-0001`, 'gpu')] });
    a.stream = s;
    let seen = 0;
    let beat = 0;
    const answered = new Set<string>();
    const t = setInterval(() => {
      if (a.stream !== s) return clearInterval(t);
      s.heartbeat(++beat);
      const cmds = s.commands();
      for (; seen < cmds.length; seen++) {
        const c = cmds[seen]!;
        a.received.set(c.commandId, (a.received.get(c.commandId) ?? 0) + 1);
        // applied once, by id (the journal); a command that comes again is answered from it
        if (!a.applied.has(c.commandId)) a.applied.set(c.commandId, 1);
      }
      if (!a.answering) return;
      for (const c of cmds) {
        if (answered.has(c.commandId)) continue;
        answered.add(c.commandId);
        s.ack(c.commandId);
        s.result(c.commandId, true);
      }
    }, 50);
    timers.push(t);
    return s;
  };

  it('kill -9 of the leader while commands are in flight: the standby leads, and every command succeeds once', async () => {
    const env = { HCP_ECONOMICS: 'off', LOG_LEVEL: 'info' };
    const one = await startControlPlaneProcess(pg.url, { ...env, HCP_REPLICA_ID: 'cp-1' });
    procs.push(one);
    await waitFor(async () => (await status(one))?.leader, { message: 'cp-1 leads' });
    const two = await startControlPlaneProcess(pg.url, { ...env, HCP_REPLICA_ID: 'cp-2' });
    procs.push(two);
    expect((await status(two))?.leader).toBe(false);
    sql = postgres(pg.url, { onnotice: () => {} });

    const tokens: Record<string, string> = {};
    for (const site of SITES) tokens[site] = await makeKey(one.http, { role: 'agent', site });
    for (const site of SITES) {
      const a: LightAgent = { site, stream: null, applied: new Map(), received: new Map(), answering: false };
      agents.push(a);
      connect(a, one.grpc, tokens[site]!);
    }
    await waitFor(() => agents.every((a) => a.stream!.received.some((m) => m.body?.$case === 'helloAck')), { message: 'every agent connected to cp-1' });

    // issued on the standby, delivered by the leader, applied, answers lost with the leader
    const ids: string[] = [];
    for (const site of SITES) {
      const r = await apiClient(two.http).put(`/api/v1/sites/${site}/grid-trip`, { enabled: true, threshold_hz: 59.5 });
      expect(r.status).toBe(202);
      ids.push(((await r.json()) as { command: { id: string } }).command.id);
    }
    await waitFor(() => agents.every((a, i) => a.applied.has(ids[i]!)), { timeoutMs: 15_000, message: 'every agent applied its command from cp-1' });

    const t0 = performance.now();
    await one.proc.kill('SIGKILL');
    await waitFor(async () => (await status(two))?.leader, { timeoutMs: 10_000, intervalMs: 100, message: 'cp-2 took the lease' });
    const failoverS = (performance.now() - t0) / 1000;

    // the agents reconnect to the survivor and answer from their journals
    for (const a of agents) {
      a.stream?.close();
      a.answering = true;
      connect(a, two.grpc, tokens[a.site]!);
    }
    await waitFor(async () => {
      const rows = await sql!`SELECT state FROM commands WHERE id = ANY(${ids})`;
      return rows.length === ids.length && rows.every((r) => r.state === 'succeeded');
    }, { timeoutMs: 20_000, message: 'every command succeeded' });
    const reconnectS = (performance.now() - t0) / 1000;

    const rows = await sql`SELECT id, state, attempts FROM commands WHERE id = ANY(${ids}) ORDER BY id`;
    expect(rows.every((r) => r.state === 'succeeded')).toBe(true);
    agents.forEach((a, i) => expect(a.applied.get(ids[i]!)).toBe(1));
    await waitFor(async () => (await sql!`SELECT count(*)::int AS n FROM audit_log WHERE action = 'command.succeeded' AND subject = ANY(${ids})`)[0]!.n >= ids.length, { message: 'each success audited' });
    const audit = await sql`SELECT subject, count(*)::int AS n FROM audit_log WHERE action = 'command.succeeded' AND subject = ANY(${ids}) GROUP BY subject`;
    expect(audit.map((r) => r.n)).toEqual(ids.map(() => 1));
    const lost = rows.filter((r) => r.state !== 'succeeded').length + (ids.length - rows.length);
    const duplicated = agents.reduce((n, a, i) => n + Math.max(0, (a.applied.get(ids[i]!) ?? 0) - 1), 0);
    reportChaos('leader-failover', {
      rows_expected: 0, rows_present: 0, rows_duplicated: 0, commands_lost: lost, commands_duplicated: duplicated, failover_s: Number(failoverS.toFixed(2)),
      sites: SITES.length, commands: ids.length, all_succeeded_s: Number(reconnectS.toFixed(2)),
      sent_per_command: agents.map((a, i) => a.received.get(ids[i]!) ?? 0), applied_per_command: agents.map((a, i) => a.applied.get(ids[i]!) ?? 0),
      attempts: rows.map((r) => r.attempts),
    });
  }, 90_000);
});

describePg('chaos: kill -9 of the leader during a fleet curtail', (pg) => {
  const sites = chaosSites(scale.agents * 2);
  const asics = scale.name === 'full' ? 100 : 20;
  /** long enough that every command is acked and none answered when the leader dies */
  const applyDelayMs = 3000;
  let broker: Mosquitto;
  const cps: ControlPlaneHandle[] = [];
  const agents: AgentHandle[] = [];
  let sql: postgres.Sql;

  afterAll(async () => {
    for (const a of agents) await a.close();
    for (const cp of cps) await cp.kill9();
    await broker?.close();
    await sql?.end();
  });

  const replica = async (cp: ControlPlaneHandle) => {
    const r = await apiClient(cp.http).get('/api/v1/status').catch(() => null);
    return r?.ok ? ((await r.json()) as { replica: { id: string; leader: boolean } }).replica : null;
  };
  interface DesiredView { observed: { mining: number; asleep: number; offline: number }; divergent: unknown[] }
  const desired = async (cp: ControlPlaneHandle, site: string) => {
    const r = await apiClient(cp.http).get(`/api/v1/sites/${site}/desired`);
    return r.ok ? ((await r.json()) as DesiredView) : null;
  };

  it('the standby leads, the agents dial it, every command succeeds and is applied once, every ASIC asleep', async () => {
    broker = await startMosquitto();
    sql = postgres(pg.url, { max: 2, onnotice: () => {} });
    const one = await startChaosControlPlane({ databaseUrl: pg.url, broker, name: 'cp-1', env: { HCP_REPLICA_ID: 'cp-1' } });
    cps.push(one);
    await waitFor(async () => (await replica(one))?.leader === true, { message: 'cp-1 leads', timeoutMs: 20_000 });
    const two = await startChaosControlPlane({ databaseUrl: pg.url, broker, name: 'cp-2', env: { HCP_REPLICA_ID: 'cp-2' } });
    cps.push(two);
    expect((await replica(two))?.leader).toBe(false);

    for (const [i, site] of sites.entries()) {
      const token = await siteCredential(one.http, broker, site);
      // half the fleet dials the standby first: its commands go from the leader through LISTEN/NOTIFY
      const order = i % 2 === 0 ? [one.grpc, two.grpc] : [two.grpc, one.grpc];
      agents.push(await startAgent({
        site, token, grpc: order.join(','), broker, gpus: 1, asics, sampleIntervalMs: 1000, env: { HCP_AGENT_CHAOS_APPLY_DELAY_MS: String(applyDelayMs) },
      }));
    }
    // every ASIC seen mining by the leader's reconciler (its registry hears the shared subscription's share)
    const seen: Record<string, unknown> = {};
    await waitFor(async () => {
      for (const site of sites) seen[site] = (await desired(one, site))?.observed ?? null;
      return sites.every((site) => (seen[site] as DesiredView['observed'] | null)?.mining === asics);
    }, { timeoutMs: 60_000, intervalMs: 500, message: 'every ASIC mining, as the leader sees it' }).catch((err: Error) => {
      throw new Error(`${err.message}; the leader saw ${JSON.stringify(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, { ...(v as object), devices: undefined }])))}`);
    });

    const since = new Date();
    const curtail = await apiClient(two.http).post('/api/v1/curtail', { sites, reason: 'chaos: leader killed mid-curtail' });
    expect(curtail.status, await curtail.clone().text()).toBeLessThan(300);
    type Row = { id: string; site_id: string; state: string; attempts: number };
    const commands = () => sql<Row[]>`SELECT id, site_id, state, attempts FROM commands WHERE actor = 'system:reconciler' AND type = 'set_mining' AND created_at >= ${since} ORDER BY id`;
    // in flight: every site's command acked by its agent, none answered yet (the devices are slow)
    let atKill: Row[] = [];
    await waitFor(async () => {
      atKill = await commands();
      return sites.every((s) => atKill.some((c) => c.site_id === s && c.state === 'acked'));
    }, { timeoutMs: 15_000, intervalMs: 25, message: 'every site’s curtail command acked' });
    const t0 = performance.now();
    await one.kill9();
    const inFlight = atKill.filter((c) => c.state !== 'succeeded').length;

    await waitFor(async () => (await replica(two))?.leader === true, { timeoutMs: 10_000, intervalMs: 100, message: 'cp-2 took the lease' });
    const failoverS = (performance.now() - t0) / 1000;

    // every command final and succeeded, every ASIC asleep as the new leader sees it
    await waitFor(async () => {
      const rows = await commands();
      return rows.length > 0 && rows.every((c) => c.state === 'succeeded');
    }, { timeoutMs: 45_000, intervalMs: 200, message: 'every curtail command succeeded' });
    const allSucceededS = (performance.now() - t0) / 1000;
    await waitFor(async () => {
      for (const site of sites) {
        const d = await desired(two, site);
        if (!d || d.observed.asleep !== asics || d.divergent.length) return false;
      }
      return true;
    }, { timeoutMs: 30_000, intervalMs: 500, message: 'every ASIC asleep, none divergent, as cp-2 sees it' });
    const asleepS = (performance.now() - t0) / 1000;

    const rows = await commands();
    expect(rows.every((c) => c.state === 'succeeded')).toBe(true);
    // applied once: each command's `command applied` line, over every process its site's agent has been
    const applied = new Map<string, number>();
    for (const a of agents) {
      for (const p of a.procs) for (const l of p.lines) if (l.msg === 'command applied' && typeof l.command === 'string') applied.set(l.command, (applied.get(l.command) ?? 0) + 1);
    }
    for (const c of rows) expect(applied.get(c.id), `command ${c.id} (${c.site_id}) applied once`).toBe(1);
    const ids = rows.map((c) => c.id);
    await waitFor(async () => (await sql`SELECT count(*)::int AS n FROM audit_log WHERE action = 'command.succeeded' AND subject = ANY(${ids})`)[0]!.n >= ids.length, { message: 'each success audited' });
    const audit = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM audit_log WHERE action = 'command.succeeded' AND subject = ANY(${ids}) GROUP BY subject`;
    expect(audit.map((r) => r.n)).toEqual(ids.map(() => 1));

    reportChaos('leader-failover-curtail', {
      rows_expected: 0, rows_present: 0, rows_duplicated: 0,
      commands_lost: rows.filter((c) => c.state !== 'succeeded').length,
      commands_duplicated: [...applied.values()].reduce((n, k) => n + Math.max(0, k - 1), 0),
      failover_s: Number(failoverS.toFixed(2)),
      sites: sites.length, asics: sites.length * asics, commands: rows.length, in_flight_at_kill: inFlight,
      all_succeeded_s: Number(allSucceededS.toFixed(2)), all_asleep_s: Number(asleepS.toFixed(2)), attempts: rows.map((c) => c.attempts),
    });
  }, scale.testTimeoutMs);
});
