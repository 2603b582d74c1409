// hcp.v1.Fleet/WatchCommands against a real control plane on real PostgreSQL over real gRPC: a
// watcher hears every command's states through to the final one, a watcher of one site hears
// only that site, and a watcher that stops reading is ended with RESOURCE_EXHAUSTED (slow_client)
// once its queue is full, counted, while the others go on hearing everything.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { CommandState, FleetClient, type CommandView } from '../proto/gen/hcp/v1/fleet.js';
import { apiClient, TEST_ADMIN_KEY } from './harness/auth.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

const QUEUE = 30;

describePg('WatchCommands', (pg) => {
  let cp: ControlPlane;
  const streams: TestAgentStream[] = [];
  const clients: FleetClient[] = [];
  const md = new Metadata();
  md.set('authorization', `Bearer ${TEST_ADMIN_KEY}`);

  beforeAll(async () => {
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_HEARTBEAT_MS: '60000', HCP_STALE_AFTER_MS: '600000',
        LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY, HCP_ECONOMICS: 'off', HCP_WATCH_QUEUE: String(QUEUE), HCP_WATCH_GRACE_MS: '1500',
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
    const as = apiClient(`http://127.0.0.1:${cp.httpPort}`);
    for (const site of ['texas-1', 'texas-2']) {
      const r = await as.post('/api/v1/keys', { name: `agent-${site}`, role: 'agent', site });
      expect(r.status).toBe(201);
      const { secret } = (await r.json()) as { secret: string };
      const s = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: site, session: `${site}-${randomUUID()}`, devices: [device(`asic-${site}-00001`, 'asic')], token: secret }, 'apply');
      streams.push(s);
      await waitFor(() => s.received.find((m) => m.body?.$case === 'helloAck'), { message: `${site} HelloAck` });
    }
  });

  afterAll(async () => {
    for (const s of streams) s.close();
    for (const c of clients) c.close();
    await cp?.close();
  });

  /** a watch on its own connection, with the states it has read */
  const watch = (site: string, options: Record<string, number> = {}) => {
    const client = new FleetClient(`127.0.0.1:${cp.grpcPort}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, ...options });
    clients.push(client);
    const call = client.watchCommands({ site }, md);
    const seen: CommandView[] = [];
    call.on('data', (v: CommandView) => seen.push(v));
    const ended = new Promise<ServiceError>((res) => call.on('error', res));
    return { call, seen, ended };
  };
  /** `n` set_mining commands for a site, submitted together, awaited to their final state */
  const commands = async (site: string, n: number) => {
    const recs = await cp.bus.submit(Array.from({ length: n }, () => ({
      id: `cmd-${randomUUID()}`, siteId: site, actor: 'test', deadlineMs: Date.now() + 30_000,
      payload: { type: 'set_mining' as const, enabled: false, deviceIds: [], powerTargetW: null },
    })));
    const done = await cp.bus.waitFinal(recs.map((r) => r.id), 20_000);
    expect(done.map((r) => r.state)).toEqual(recs.map(() => 'succeeded'));
    return recs.map((r) => r.id);
  };
  /** a metric's value, read from GET /metrics */
  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };

  it('a watcher hears each command through to its final state; a watcher of one site hears only that site', async () => {
    const all = watch('');
    const one = watch('texas-2');
    await waitFor(async () => (await metric('hcp_command_watch_streams')) >= 2 || undefined, { message: 'both watches open' });
    const ids = [...(await commands('texas-1', 3)), ...(await commands('texas-2', 2))];
    await waitFor(() => ids.every((id) => all.seen.some((v) => v.id === id && v.state === CommandState.COMMAND_STATE_SUCCEEDED)), { message: 'every final state heard' });
    // each command's states in the order they happened, from pending to succeeded
    const states = all.seen.filter((v) => v.id === ids[0]).map((v) => v.state);
    expect(states[0]).toBe(CommandState.COMMAND_STATE_PENDING);
    expect(states.at(-1)).toBe(CommandState.COMMAND_STATE_SUCCEEDED);
    await waitFor(() => ids.slice(3).every((id) => one.seen.some((v) => v.id === id && v.state === CommandState.COMMAND_STATE_SUCCEEDED)), { message: 'texas-2 finals heard' });
    expect(new Set(one.seen.map((v) => v.site))).toEqual(new Set(['texas-2']));
    all.call.cancel();
    one.call.cancel();
    await waitFor(async () => (await metric('hcp_command_watch_streams')) === 0 || undefined, { message: 'both watches closed' });
  });

  it('ends a watcher that stops reading once more than HCP_WATCH_QUEUE states wait for it; the others hear every state', async () => {
    // a window of 512 bytes: HTTP/2 flow control holds the rest in the control plane's queue
    const slow = watch('', { 'grpc-node.flow_control_window': 512 });
    // a window of 0: nothing reaches it, not even its status, until its stream is reset
    const stuck = watch('', { 'grpc-node.flow_control_window': 0 });
    const fast = watch('');
    slow.call.pause();
    stuck.call.pause();
    await waitFor(async () => (await metric('hcp_command_watch_streams')) >= 3 || undefined, { message: 'the watches open' });
    const ids: string[] = [];
    // a few at a time, so a reading watcher's queue never holds QUEUE states at once
    for (let i = 0; i < 40 && (await metric('hcp_command_watch_dropped_total')) < 2; i++) ids.push(...(await commands('texas-1', 5)));
    expect(await metric('hcp_command_watch_dropped_total')).toBe(2);
    // a client that reads again hears what was queued, then why the stream ended
    slow.call.resume();
    const err = await slow.ended;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.metadata.get('hcp-reason')).toEqual(['slow_client']);
    expect(slow.seen.length).toBeGreaterThanOrEqual(QUEUE);
    // one that does not is reset after HCP_WATCH_GRACE_MS, and its place given back
    const reset = await stuck.ended;
    expect(reset.code).toBe(status.CANCELLED);
    await waitFor(async () => (await metric('hcp_command_watch_streams')) === 1 || undefined, { message: 'only the reading watch is open' });
    ids.push(...(await commands('texas-2', 5)));
    await waitFor(() => ids.every((id) => fast.seen.some((v) => v.id === id && v.state === CommandState.COMMAND_STATE_SUCCEEDED)), { message: 'the reading watcher heard every final state' });
    fast.call.cancel();
  });
});
