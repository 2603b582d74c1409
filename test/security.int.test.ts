// Who may do what, against a real control plane on real PostgreSQL with real gRPC: API keys and
// roles on REST and the Fleet API, site credentials bound to their site on the agent stream,
// revocation, grid-trip settings, and the request id in the audit log. These are the attacks the
// security issue lists, each of which must now fail safely.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { FleetClient } from '../proto/gen/hcp/v1/fleet.js';
import { apiClient, TEST_ADMIN_KEY } from './harness/auth.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describePg('security at every edge', (pg) => {
  let cp: ControlPlane;
  let sql: postgres.Sql;
  const streams: TestAgentStream[] = [];
  const base = () => `http://127.0.0.1:${cp.httpPort}`;
  const as = (key?: string) => apiClient(base(), key);
  const keys: Record<string, string> = {};
  const body = async (r: Response) => (await r.json()) as Json;
  const stream = (siteId: string, token: string, devices = [device(`asic-${siteId}-00001`, 'asic')], answer: 'apply' | 'none' = 'apply') => {
    const s = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId, session: `${siteId}-${Math.random().toString(36).slice(2)}`, devices, token }, answer);
    streams.push(s);
    return s;
  };
  const acked = (s: TestAgentStream) => waitFor(() => s.received.find((m) => m.body?.$case === 'helloAck'), { message: 'HelloAck' });

  beforeAll(async () => {
    cp = await createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_HEARTBEAT_MS: '60000', HCP_STALE_AFTER_MS: '600000',
        LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY, HCP_ECONOMICS: 'off',
      }),
      pino({ level: process.env.TEST_LOG ?? 'silent' }),
    );
    sql = postgres(pg.url, { onnotice: () => {} });
    const make = async (name: string, k: Json) => {
      const r = await as().post('/api/v1/keys', { name, ...k });
      expect(r.status, name).toBe(201);
      keys[name] = (await body(r)).secret;
    };
    await make('ops', { role: 'operator' });
    await make('watcher', { role: 'viewer' });
    await make('acme', { role: 'customer', customer_id: 'cust-001' });
    await make('globex', { role: 'customer', customer_id: 'cust-002' });
    await make('agent-texas-1', { role: 'agent', site: 'texas-1' });
    await make('agent-texas-2', { role: 'agent', site: 'texas-2' });
    // texas-2 announces a GPU, so workloads can be submitted and a device has an owner
    await acked(stream('texas-2', keys['agent-texas-2']!, [device('asic-texas-2-00001', 'asic'), device('gpu-texas-2-0001', 'gpu')]));
  });

  afterAll(async () => {
    for (const s of streams) s.close();
    await sql?.end();
    await cp?.close();
  });

  it('shows a secret once, keeps only its hash, lists keys without secrets, and refuses a taken name', async () => {
    const stored = await sql`SELECT secret_sha256 FROM api_keys WHERE name = 'ops'`;
    expect(stored[0]!.secret_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(await sql`SELECT * FROM api_keys`)).not.toContain(keys.ops);
    const list = await body(await as().get('/api/v1/keys'));
    expect(list.keys.map((k: Json) => k.name)).toEqual(expect.arrayContaining(['bootstrap-admin', 'ops', 'watcher', 'acme', 'agent-texas-1']));
    expect(JSON.stringify(list)).not.toMatch(/hcp_/);
    const taken = await as().post('/api/v1/keys', { name: 'ops', role: 'viewer' });
    expect(taken.status).toBe(409);
    expect((await body(taken)).error.reason).toBe('name_taken');
    const bad = await as().post('/api/v1/keys', { name: 'x', role: 'customer' });
    expect(bad.status).toBe(400);
    expect((await body(bad)).error.fields[0].field).toBe('customer_id');
    const whoami = await body(await as(keys.acme).get('/api/v1/whoami'));
    expect(whoami).toMatchObject({ name: 'acme', role: 'customer', customer_id: 'cust-001' });
  });

  it('an unauthenticated curtail is 401; an operator key curtails, audited as that key whatever header it sends', async () => {
    const none = await fetch(`${base()}/api/v1/curtail`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-hcp-actor': 'ceo' }, body: JSON.stringify({ all: true, reason: 'x' }) });
    expect(none.status).toBe(401);
    expect(await sql`SELECT 1 FROM commands`).toHaveLength(0);
    expect(await sql`SELECT 1 FROM claims`).toHaveLength(0);
    const r = await as(keys.ops).post('/api/v1/curtail', { sites: ['texas-1'], reason: 'ERCOT EEA' }, { 'x-hcp-actor': 'ceo' });
    expect(r.status).toBe(200);
    const [c] = (await body(r)).claims;
    expect(c).toMatchObject({ site: 'texas-1', source: 'operator', actor: 'key:ops', reason: 'ERCOT EEA' });
    const audit = await waitFor(async () => (await sql`SELECT actor FROM audit_log WHERE subject = ${c.id} AND action = 'claim.set'`)[0], { message: 'audited' });
    expect(audit.actor).toBe('key:ops');
    expect((await as(keys.ops).del(`/api/v1/claims/${c.id}`)).status).toBe(200);
    expect(await sql`SELECT 1 FROM audit_log WHERE actor LIKE '%ceo%'`).toHaveLength(0);
  });

  it('a viewer reads but cannot mutate; a customer cannot curtail', async () => {
    expect((await as(keys.watcher).get('/api/v1/status')).status).toBe(200);
    for (const [path, b] of [['/api/v1/curtail', { all: true, reason: 'x' }], ['/api/v1/sites/texas-1/mining', { enabled: false }], ['/api/v1/workloads', { workload_type: 'ai_inference_batch', priority: 5, requirements: { gpu_type: 'h100', gpu_count: 1 } }]] as const) {
      const r = await as(keys.watcher).post(path, b);
      expect(r.status, path).toBe(403);
      expect((await body(r)).error).toMatchObject({ code: 'permission_denied', reason: 'forbidden', role: 'viewer' });
    }
    expect((await as(keys.watcher).put('/api/v1/sites/texas-1/mode', { mode: 'manual' })).status).toBe(403);
    expect((await as(keys.acme).post('/api/v1/curtail', { all: true, reason: 'x' })).status).toBe(403);
    expect((await as(keys.acme).get('/api/v1/status')).status).toBe(403);
    expect((await as(keys['agent-texas-1']).get('/api/v1/status')).status).toBe(403);
  });

  it('a customer key sees and cancels only its own workloads: another customer\'s is 404', async () => {
    const submit = (key: string, b: Json = {}) => as(key).post('/api/v1/workloads', { workload_type: 'ai_inference_batch', priority: 5, requirements: { gpu_type: 'h100', gpu_count: 1 }, ...b });
    const mine = await submit(keys.acme!);
    expect(mine.status).toBe(201);
    const w1 = await body(mine);
    expect(w1.customer_id).toBe('cust-001');
    const theirs = await body(await submit(keys.globex!));
    expect(theirs.customer_id).toBe('cust-002');
    const spoof = await submit(keys.acme!, { customer_id: 'cust-002' });
    expect(spoof.status).toBe(403);
    expect((await body(spoof)).error).toMatchObject({ reason: 'customer_mismatch', fields: [{ field: 'customer_id' }] });

    expect((await as(keys.acme).get(`/api/v1/workloads/${w1.id}`)).status).toBe(200);
    expect((await as(keys.acme).get(`/api/v1/workloads/${theirs.id}`)).status).toBe(404);
    expect((await as(keys.acme).post(`/api/v1/workloads/${theirs.id}/cancel`)).status).toBe(404);
    expect((await body(await as(keys.globex).get(`/api/v1/workloads/${theirs.id}`))).state).not.toBe('cancelled');
    const listed = await body(await as(keys.acme).get('/api/v1/workloads'));
    expect(listed.workloads.map((w: Json) => w.id)).toEqual([w1.id]);
    expect((await as(keys.acme).get('/api/v1/workloads?customer_id=cust-002')).status).toBe(403);
    // an operator sees both
    const all = await body(await as(keys.ops).get('/api/v1/workloads'));
    expect(all.workloads.map((w: Json) => w.id).sort()).toEqual([w1.id, theirs.id].sort());
    expect((await as(keys.acme).post(`/api/v1/workloads/${w1.id}/cancel`)).status).toBe(200);
    const usage = await body(await as(keys.acme).get('/api/v1/usage'));
    expect(usage.customers.every((u: Json) => u.customer_id === 'cust-001')).toBe(true);
    expect((await as(keys.acme).get('/api/v1/usage?customer_id=cust-002')).status).toBe(403);
  });

  it('an agent stream needs a site credential: none is UNAUTHENTICATED, a person\'s key PERMISSION_DENIED', async () => {
    const none = stream('texas-1', '');
    expect((await none.error).code).toBe(status.UNAUTHENTICATED);
    expect((await none.error).metadata.get('hcp-reason')).toEqual(['missing_key']);
    const person = stream('texas-1', keys.ops!);
    expect((await person.error).code).toBe(status.PERMISSION_DENIED);
    expect((await person.error).metadata.get('hcp-reason')).toEqual(['not_an_agent_key']);
  });

  it('texas-1\'s credential cannot Hello as texas-2, nor claim texas-2\'s devices; a made-up site is refused', async () => {
    const t2 = stream('texas-2', keys['agent-texas-2']!, [device('asic-texas-2-00001', 'asic'), device('gpu-texas-2-0001', 'gpu')]);
    await acked(t2);
    const before = await (await fetch(`${base()}/metrics`)).text();
    const asTexas2 = stream('texas-2', keys['agent-texas-1']!);
    const e = await asTexas2.error;
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.metadata.get('hcp-reason')).toEqual(['site_mismatch']);
    expect(counter(await (await fetch(`${base()}/metrics`)).text(), 'site_mismatch')).toBe(counter(before, 'site_mismatch') + 1);
    // texas-2's stream is untouched
    expect(t2.received.some((m) => m.body?.$case === 'helloAck')).toBe(true);

    const claim = stream('texas-1', keys['agent-texas-1']!, [device('asic-texas-1-00001', 'asic'), device('gpu-texas-2-0001', 'gpu')]);
    const e2 = await claim.error;
    expect(e2.code).toBe(status.PERMISSION_DENIED);
    expect(e2.metadata.get('hcp-reason')).toEqual(['device_owned_elsewhere']);
    expect((await sql`SELECT facility_id FROM resources WHERE id = 'gpu-texas-2-0001'`)[0]!.facility_id).toBe('texas-2');
    expect(cp.registry.device('gpu-texas-2-0001')!.siteId).toBe('texas-2');

    const madeUp = stream('atlantis-1', keys['agent-texas-1']!);
    expect((await madeUp.error).metadata.get('hcp-reason')).toEqual(['site_mismatch']);
    expect(cp.registry.site('atlantis-1')).toBeUndefined();
  });

  it('the same credential replaces its own stream (a restarted agent); another credential for a live site is refused', async () => {
    const first = stream('texas-1', keys['agent-texas-1']!);
    await acked(first);
    const second = stream('texas-1', keys['agent-texas-1']!);
    await acked(second);
    expect((await first.error).metadata.get('hcp-reason')).toEqual(['superseded']);
    const [sent] = await cp.bus.submit([{ id: `cmd-${randomUUID()}`, siteId: 'texas-1', actor: 'test', deadlineMs: Date.now() + 30_000, payload: { type: 'set_mining', enabled: false, deviceIds: [], powerTargetW: null } }]);
    const [done] = await cp.bus.waitFinal([sent!.id], 10_000);
    expect(done!.state).toBe('succeeded');
    expect(second.commands().map((c) => c.commandId)).toContain(sent!.id);
    expect(first.commands().some((c) => c.action?.$case === 'setMining')).toBe(false);
  });

  it('the Fleet API takes the same keys and roles', async () => {
    const client = new FleetClient(`127.0.0.1:${cp.grpcPort}`, credentials.createInsecure());
    const md = (key: string) => {
      const m = new Metadata();
      m.set('authorization', `Bearer ${key}`);
      return m;
    };
    const call = (m: Metadata) => new Promise<ServiceError | null>((res) => client.setMining({ site: 'texas-1', enabled: true, deviceIds: [], powerTargetW: 0, actor: 'ceo', wait: false, deadlineS: 0, reason: '', durationS: 0 }, m, (e) => res(e)));
    const anon = await call(new Metadata());
    expect(anon!.code).toBe(status.UNAUTHENTICATED);
    const viewer = await call(md(keys.watcher!));
    expect(viewer!.code).toBe(status.PERMISSION_DENIED);
    expect(viewer!.metadata.get('hcp-reason')).toEqual(['forbidden']);
    expect(await call(md(keys.ops!))).toBeNull();
    const [c] = await sql`SELECT actor, source FROM claims ORDER BY created_at DESC LIMIT 1`;
    expect(c).toEqual({ actor: 'key:ops', source: 'operator' });
    const watch = client.watchCommands({ site: '' }, md(keys.acme!));
    const err = await new Promise<ServiceError>((res) => watch.on('error', res));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    client.close();
  });

  it('grid-trip settings are range-checked, admin-only, and a disarm needs a reason and is audited', async () => {
    const hot = await as().put('/api/v1/sites/texas-1/grid-trip', { enabled: true, threshold_hz: 65 });
    expect(hot.status).toBe(400);
    expect((await body(hot)).error.fields[0].field).toBe('threshold_hz');
    expect((await as().put('/api/v1/sites/texas-1/grid-trip', { enabled: true, threshold_hz: 56.9 })).status).toBe(400);
    expect((await as(keys.ops).put('/api/v1/sites/texas-1/grid-trip', { enabled: false, reason: 'x' })).status).toBe(403);
    const silent = await as().put('/api/v1/sites/texas-1/grid-trip', { enabled: false });
    expect(silent.status).toBe(400);
    expect((await body(silent)).error.fields[0].field).toBe('reason');
    // a blank reason is no reason
    const blank = await as().put('/api/v1/sites/texas-1/grid-trip', { enabled: false, reason: '   ' });
    expect(blank.status).toBe(400);
    expect((await body(blank)).error.fields[0].field).toBe('reason');
    const both = await as().put('/api/v1/sites/texas-1/grid-trip', { default: true, enabled: false });
    expect(both.status).toBe(400);
    expect((await body(both)).error.fields[0].field).toBe('enabled');
    const off = await as().put('/api/v1/sites/texas-1/grid-trip', { enabled: false, reason: 'planned maintenance of the relay' }, { 'x-request-id': 'disarm-1' });
    expect(off.status).toBe(202);
    const audit = await waitFor(async () => (await sql`SELECT actor, details FROM audit_log WHERE action = 'site.grid_trip_set'`)[0], { message: 'disarm audited' });
    expect(audit).toMatchObject({ actor: 'key:bootstrap-admin', details: { reason: 'planned maintenance of the relay', request_id: 'disarm-1' } });
  });

  it('a revoked key stops working at once, here, and its agent stream is closed', async () => {
    const made = await body(await as().post('/api/v1/keys', { name: 'temp', role: 'operator' }));
    expect((await as(made.secret).get('/api/v1/status')).status).toBe(200);
    expect((await as().del(`/api/v1/keys/${made.id}?reason=leaked`)).status).toBe(200);
    expect((await as(made.secret).get('/api/v1/status')).status).toBe(401);

    const t2 = stream('texas-2', keys['agent-texas-2']!);
    await acked(t2);
    const id = (await body(await as().get('/api/v1/keys'))).keys.find((k: Json) => k.name === 'agent-texas-2').id;
    await as().del(`/api/v1/keys/${id}`);
    const e = await t2.error;
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(e.metadata.get('hcp-reason')).toEqual(['key_revoked']);
    const again = stream('texas-2', keys['agent-texas-2']!);
    expect((await again.error).metadata.get('hcp-reason')).toEqual(['bad_key']);
  });

  it('a key revoked by another process (npm run keys on the database) stops working without a restart', async () => {
    const made = await body(await as().post('/api/v1/keys', { name: 'elsewhere', role: 'viewer' }));
    expect((await as(made.secret).get('/api/v1/status')).status).toBe(200);
    await sql`UPDATE api_keys SET revoked_at = now(), version = nextval('api_keys_version_seq') WHERE id = ${made.id}`;
    await waitFor(async () => (await as(made.secret).get('/api/v1/status')).status === 401, { message: 'the ring saw the revocation', timeoutMs: 5000, intervalMs: 50 });
  });

  it('sites exist only when an admin makes them or their credential', async () => {
    expect((await as(keys.ops).post('/api/v1/sites', { id: 'iowa-1', region: 'miso' })).status).toBe(403);
    const made = await as().post('/api/v1/sites', { id: 'iowa-1', region: 'miso', power_capacity_kw: 500, timezone: 'America/Chicago' });
    expect(made.status).toBe(201);
    expect((await as().post('/api/v1/sites', { id: 'iowa-1', region: 'miso' })).status).toBe(409);
    expect((await as().post('/api/v1/sites', { id: 'Iowa 2', region: 'miso', timezone: 'Mars/Olympus' })).status).toBe(400);
    expect((await body(await as(keys.ops).get('/api/v1/sites/iowa-1'))).region).toBe('miso');
    await as().post('/api/v1/keys', { role: 'agent', site: 'ohio-1' });
    expect(cp.registry.site('ohio-1')).toBeDefined();
  });
});

function counter(text: string, reason: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`hcp_agent_messages_rejected_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}
