// Chaos: two control-plane processes on one real PostgreSQL database, light gRPC agents, and a
// kill -9 of the leader while commands are in flight (docs/reliability.md, "Several control
// planes"). The commands are issued on the standby (PUT …/grid-trip: one ArmGridTrip per site,
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
import { reportChaos } from './harness.js';

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
