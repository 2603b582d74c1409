// The control plane in-process on real PostgreSQL, with its real Aedes broker, real MQTT
// clients and real gRPC streams on random loopback ports.
import { readdirSync, readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { TelemetryBatch, type AsicSample, type GpuSample } from '../proto/gen/hcp/v1/telemetry.js';
import { asic, gpu } from './harness/samples.js';
import { encodeStatus, topics } from '../proto/topics.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';

const batch = (siteId: string, seq: number, session: string, gpus: GpuSample[], asics: AsicSample[]) =>
  Buffer.from(TelemetryBatch.encode({ siteId, seq, sentAtMs: Date.now(), agentSession: session, gpus, asics }).finish());

async function metric(cp: ControlPlane, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text(); // /metrics is open
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describePg('control plane on PostgreSQL', (pg) => {
  let cp: ControlPlane;
  let sql: postgres.Sql;
  let pub: MqttClient;
  let pub2: MqttClient;
  let agent: TestAgentStream;
  const api = (path: string) => fetch(`http://127.0.0.1:${cp.httpPort}${path}`, { headers: bearer() });
  const SESSION = 'session-a';
  const tokens: Record<string, string> = {};
  /** an MQTT client logged in as a site's agent */
  const siteClient = (site: string, suffix: string, extra: mqtt.IClientOptions = {}) =>
    mqtt.connectAsync(cp.mqttUrl, { clientId: `hcp-agent-${site}-${suffix}`, username: site, password: tokens[site], ...extra });

  beforeAll(async () => {
    const config = loadControlPlaneConfig({
      DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0',
      HCP_INGEST_FLUSH_MS: '50', HCP_HEARTBEAT_MS: '300', HCP_STALE_AFTER_MS: '3000', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
    });
    cp = await createControlPlane(config, pino({ level: process.env.TEST_LOG ?? 'silent' }));
    sql = postgres(pg.url, { onnotice: () => {} });
    for (const site of ['texas-1', 'texas-2']) tokens[site] = (await cp.keys.create({ role: 'agent', siteId: site }, 'test')).secret;
    pub = await siteClient('texas-1', 'pub');
    pub2 = await siteClient('texas-2', 'pub');
    agent = openAgentStream(`127.0.0.1:${cp.grpcPort}`, {
      siteId: 'texas-1',
      session: SESSION,
      token: tokens['texas-1']!,
      devices: [device('gpu-texas-1-0001', 'gpu'), device('gpu-texas-1-0002', 'gpu'), device('asic-texas-1-00001', 'asic', '127.0.0.1:4028'), device('asic-texas-1-00002', 'asic')],
    });
    await waitFor(() => agent.received.find((m) => m.body?.$case === 'helloAck'), { message: 'HelloAck' });
  });

  afterAll(async () => {
    agent?.close();
    await pub?.endAsync();
    await pub2?.endAsync();
    await sql?.end();
    await cp?.close();
  });

  it('migrates: seed rows, and the TimescaleDB migration is skipped on plain PostgreSQL', async () => {
    const migrations = await sql`SELECT name, status FROM hcp_migrations ORDER BY name`;
    // every migration applies on plain PostgreSQL except the one that needs TimescaleDB
    const files = readdirSync('migrations').filter((f) => f.endsWith('.sql')).sort();
    expect(files.slice(0, 3)).toEqual(['0001_schema.sql', '0002_timescale.sql', '0003_commands.sql']);
    const needsTimescale = (f: string) => readFileSync(`migrations/${f}`, 'utf8').startsWith('-- hcp:requires-extension timescaledb');
    expect(files.filter(needsTimescale)).toContain('0002_timescale.sql');
    expect(migrations.map((m) => `${m.name}:${m.status}`)).toEqual(files.map((f) => `${f}:${needsTimescale(f) ? 'skipped' : 'applied'}`));
    expect((await sql`SELECT id FROM facilities ORDER BY id`).map((r) => r.id)).toEqual(['canada-1', 'texas-1', 'texas-2']);
    expect((await sql`SELECT id FROM customers ORDER BY id`).map((r) => r.id)).toEqual(['cust-001', 'cust-002', 'cust-003']);
  });

  it('answers the hello with the heartbeat interval and registers the inventory', async () => {
    const ack = agent.received.find((m) => m.body?.$case === 'helloAck')!;
    expect(ack.body?.$case === 'helloAck' && ack.body.value).toMatchObject({ heartbeatIntervalMs: 300, devicesRegistered: 4 });
    const rows = await sql`SELECT id, kind, endpoint FROM resources WHERE facility_id = 'texas-1' ORDER BY id`;
    expect(rows.map((r) => [r.id, r.kind, r.endpoint])).toEqual([
      ['asic-texas-1-00001', 'asic', '127.0.0.1:4028'],
      ['asic-texas-1-00002', 'asic', null],
      ['gpu-texas-1-0001', 'gpu', null],
      ['gpu-texas-1-0002', 'gpu', null],
    ]);
  });

  it('writes a published batch as one wide row per device and shows it in status and devices', async () => {
    const t = Date.now();
    await pub.publishAsync(
      topics.telemetry('texas-1'),
      batch('texas-1', 1, SESSION, [gpu('gpu-texas-1-0001', t, 95, 650), gpu('gpu-texas-1-0002', t, 2, 105)], [asic('asic-texas-1-00001', t, 270, 3645), asic('asic-texas-1-00002', t, 265, 3600)]),
      { qos: 1 },
    );
    await waitFor(async () => (await sql`SELECT count(*)::int AS n FROM asic_telemetry`)[0]!.n === 2 && (await sql`SELECT count(*)::int AS n FROM gpu_telemetry`)[0]!.n === 2, {
      message: 'rows for all four devices',
    });
    const [a] = await sql`SELECT board_temperatures_c, max_chip_temperature_c, fan_rpm, mining_state FROM asic_telemetry WHERE device_id = 'asic-texas-1-00001'`;
    expect(a).toMatchObject({ board_temperatures_c: [60, 61, 62], max_chip_temperature_c: 75, fan_rpm: [4000, 4100, 4050, 4020], mining_state: 'mining' });

    const st = await waitFor(async () => {
      const s = (await (await api('/api/v1/status')).json()) as { sites: Array<Record<string, number | boolean | string>>; fleet: Record<string, number> };
      const site = s.sites.find((x) => x.id === 'texas-1')!;
      return site.online && site.asics_online === 2 ? s : null;
    }, { message: 'texas-1 online in /api/v1/status' });
    const site = st.sites.find((x) => x.id === 'texas-1')!;
    expect(site).toMatchObject({ gpus: 2, asics: 2, hashrate_ths: 535, power_w: 650 + 105 + 3645 + 3600 });
    expect(st.fleet).toMatchObject({ sites_online: 1, devices_online: 4, hashrate_ths: 535, gpu_utilization_pct: 48.5 });

    const dev = (await (await api('/api/v1/devices/gpu-texas-1-0001')).json()) as { latest: Record<string, unknown> };
    expect(dev.latest).toMatchObject({ utilization_pct: 95, power_w: 650, state: 'busy', workload_id: 'wl-1' });
    const list = (await (await api('/api/v1/devices?site=texas-1&kind=asic')).json()) as { devices: Array<{ id: string; endpoint?: string; latest: { hashrate_ths: number } }> };
    expect(list.devices.map((d) => [d.id, d.endpoint, d.latest.hashrate_ths])).toEqual([
      ['asic-texas-1-00001', '127.0.0.1:4028', 270],
      ['asic-texas-1-00002', undefined, 265],
    ]);
  });

  it('drops only the bad part of bad input, counts it by reason, and keeps ingesting', async () => {
    const before = {
      malformed: await metric(cp, 'hcp_ingest_rejected_total', '{reason="malformed"}'),
      unknownDevice: await metric(cp, 'hcp_ingest_rejected_total', '{reason="unknown_device"}'),
      duplicate: await metric(cp, 'hcp_ingest_rejected_total', '{reason="duplicate"}'),
      mismatch: await metric(cp, 'hcp_ingest_rejected_total', '{reason="site_mismatch"}'),
      invalid: await metric(cp, 'hcp_ingest_rejected_total', '{reason="invalid_value"}'),
      unknownTopic: await metric(cp, 'hcp_broker_rejected_publishes_total', '{reason="unknown_topic"}'),
    };
    const t = Date.now() + 1000;
    await pub.publishAsync(topics.telemetry('texas-1'), Buffer.from('definitely not protobuf \xff\xff'), { qos: 1 });
    await pub.publishAsync('hcp/v1/sites/texas-1/nonsense', 'x', { qos: 1 });
    await pub.publishAsync('somewhere/else', 'x', { qos: 1, retain: true });
    await pub2.publishAsync(topics.telemetry('texas-2'), batch('texas-1', 1, 'other', [gpu('gpu-texas-1-0001', t, 1, 1)], []), { qos: 1 });
    // one good GPU, one unknown device, one NaN reading: only the good one is written
    await pub.publishAsync(
      topics.telemetry('texas-1'),
      batch('texas-1', 2, SESSION, [gpu('gpu-texas-1-0001', t, 90, 600), gpu('gpu-nowhere-0001', t, 90, 600), gpu('gpu-texas-1-0002', t, Number.NaN, 100)], []),
      { qos: 1 },
    );
    // a replay of seq 2
    await pub.publishAsync(topics.telemetry('texas-1'), batch('texas-1', 2, SESSION, [gpu('gpu-texas-1-0002', t, 50, 300)], []), { qos: 1 });

    await waitFor(async () => (await metric(cp, 'hcp_ingest_rejected_total', '{reason="duplicate"}')) === before.duplicate + 1, { message: 'the replay counted' });
    expect(await metric(cp, 'hcp_ingest_rejected_total', '{reason="malformed"}')).toBe(before.malformed + 1);
    expect(await metric(cp, 'hcp_ingest_rejected_total', '{reason="unknown_device"}')).toBe(before.unknownDevice + 1);
    expect(await metric(cp, 'hcp_ingest_rejected_total', '{reason="site_mismatch"}')).toBe(before.mismatch + 1);
    expect(await metric(cp, 'hcp_ingest_rejected_total', '{reason="invalid_value"}')).toBe(before.invalid + 1);
    expect(await metric(cp, 'hcp_broker_rejected_publishes_total', '{reason="unknown_topic"}')).toBe(before.unknownTopic + 2);

    await waitFor(async () => (await sql`SELECT count(*)::int AS n FROM gpu_telemetry WHERE time = to_timestamp(${t} / 1000.0)`)[0]!.n === 1, { message: 'the good sample written' });
    const rows = await sql`SELECT device_id, utilization_pct FROM gpu_telemetry WHERE time = to_timestamp(${t} / 1000.0)`;
    expect(rows.map((r) => [r.device_id, r.utilization_pct])).toEqual([['gpu-texas-1-0001', 90]]);

    // the same connection, broker and ingest go on
    const t2 = t + 1000;
    await pub.publishAsync(topics.telemetry('texas-1'), batch('texas-1', 3, SESSION, [gpu('gpu-texas-1-0002', t2, 10, 150)], []), { qos: 1 });
    await waitFor(async () => (await sql`SELECT count(*)::int AS n FROM gpu_telemetry WHERE time = to_timestamp(${t2} / 1000.0)`)[0]!.n === 1, { message: 'a later batch written' });
    expect(pub.connected).toBe(true);
  });

  it('serves time-bucketed series for a device and a site', async () => {
    const from = new Date(Date.now() - 60_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const d = (await (await api(`/api/v1/telemetry?device=asic-texas-1-00001&from=${from}&to=${to}&bucket=1h`)).json()) as { points: Array<{ hashrate_ths: number; samples: number }>; bucket_s: number };
    expect(d.bucket_s).toBe(3600);
    expect(d.points.reduce((n, p) => n + p.samples, 0)).toBe(1);
    expect(d.points[0]!.hashrate_ths).toBe(270);
    const s = (await (await api(`/api/v1/telemetry?site=texas-1&from=${from}&to=${to}&bucket=1h`)).json()) as { points: Array<{ hashrate_ths: number; asics_reporting: number }> };
    expect(s.points.reduce((n, p) => n + p.asics_reporting, 0)).toBeGreaterThanOrEqual(2);
  });

  it('answers bad REST requests with 400/404 naming the field', async () => {
    const bad = await api('/api/v1/devices?kind=toaster');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { fields: Array<{ field: string }> } }).error.fields.map((f) => f.field)).toEqual(['kind']);
    const neither = await api('/api/v1/telemetry');
    expect(neither.status).toBe(400);
    const badTime = await api('/api/v1/telemetry?site=texas-1&from=yesterday&bucket=0x');
    expect(badTime.status).toBe(400);
    expect(((await badTime.json()) as { error: { fields: Array<{ field: string }> } }).error.fields.map((f) => f.field).sort()).toEqual(['bucket', 'from']);
    const tooMany = await api('/api/v1/telemetry?site=texas-1&from=2020-01-01T00:00:00Z&bucket=1s');
    expect(tooMany.status).toBe(400);
    expect((await api('/api/v1/sites/atlantis')).status).toBe(404);
    expect((await api('/api/v1/devices/gpu-atlantis-0001')).status).toBe(404);
    expect((await api('/api/v1/telemetry?device=gpu-atlantis-0001')).status).toBe(404);
    expect((await api('/api/v1/nothing-here')).status).toBe(404);
  });

  it('refuses an invalid hello and a second live agent for a site (another credential), with a reason code', async () => {
    const invalid = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'Not A Site!', session: 's', devices: [], token: tokens['texas-1']! });
    const e1 = await invalid.error;
    expect(e1.code).toBe(status.INVALID_ARGUMENT);
    expect(e1.metadata.get('hcp-reason')).toEqual(['invalid_hello']);
    invalid.close();
    agent.heartbeat(1);
    const other = (await cp.keys.create({ role: 'agent', siteId: 'texas-1', name: 'texas-1-spare' }, 'test')).secret;
    const second = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'texas-1', session: 'session-b', devices: [], token: other });
    const e2 = await second.error;
    expect(e2.code).toBe(status.ALREADY_EXISTS);
    expect(e2.metadata.get('hcp-reason')).toEqual(['site_in_use']);
    second.close();
  });

  it('takes a site offline when its agent vanishes (stream gone and last will) and back online on return', async () => {
    const site = async () => ((await (await api('/api/v1/sites/texas-2')).json()) as { online: boolean; gpus_online: number });
    const will = { topic: topics.status('texas-2'), payload: Buffer.from(encodeStatus({ site: 'texas-2', state: 'offline', session: 'x1', ts: new Date().toISOString() })), qos: 1 as const, retain: true };
    const siteAgent = await siteClient('texas-2', 'x1', { will });
    await siteAgent.publishAsync(topics.status('texas-2'), encodeStatus({ site: 'texas-2', state: 'online', session: 'x1', ts: new Date().toISOString() }), { qos: 1, retain: true });
    const stream = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'texas-2', session: 'x1', devices: [device('gpu-texas-2-0001', 'gpu')], token: tokens['texas-2']! });
    await pub2.publishAsync(topics.telemetry('texas-2'), batch('texas-2', 1, 'x1', [gpu('gpu-texas-2-0001', Date.now(), 0, 100)], []), { qos: 1 });
    await waitFor(async () => (await site()).gpus_online === 1, { message: 'texas-2 online' });

    stream.close();
    siteAgent.stream.destroy(); // no DISCONNECT: the broker publishes the will
    await waitFor(async () => (await site()).online === false, { message: 'texas-2 offline', timeoutMs: 5000 });
    await waitFor(async () => (await sql`SELECT online FROM facilities WHERE id = 'texas-2'`)[0]!.online === false, { message: 'offline persisted' });

    const back = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'texas-2', session: 'x2', devices: [device('gpu-texas-2-0001', 'gpu')], token: tokens['texas-2']! });
    await pub2.publishAsync(topics.telemetry('texas-2'), batch('texas-2', 1, 'x2', [gpu('gpu-texas-2-0001', Date.now(), 0, 100)], []), { qos: 1 });
    await waitFor(async () => (await site()).online === true, { message: 'texas-2 back online' });
    const actions = await waitFor(async () => {
      const a = (await sql`SELECT action FROM audit_log WHERE subject = 'texas-2' ORDER BY id`).map((r) => r.action as string);
      return a.filter((x) => x === 'site.online').length === 2 && a.filter((x) => x === 'agent.hello').length === 2 ? a : null;
    }, { message: 'audit of both transitions and both hellos' });
    // the retained status may bring the site online a moment before the hello is audited (in the
    // audit writer's batches, as the transitions are)
    expect(actions.filter((a) => a.startsWith('site.'))).toEqual(['site.online', 'site.offline', 'site.online']);
    expect(actions.filter((a) => a === 'agent.hello')).toHaveLength(2);
    const offline = await sql`SELECT count(*)::int AS n FROM resources WHERE id = 'gpu-texas-2-0001' AND last_seen_at IS NOT NULL`;
    expect(offline[0]!.n).toBe(1);
    back.close();
  });
});

describe('control plane on embedded PGlite', () => {
  it('migrates, ingests and serves with no DATABASE_URL', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/hcp-pglite-');
    const cp = await createControlPlane(
      loadControlPlaneConfig({ HCP_DATA_DIR: dir, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_INGEST_FLUSH_MS: '50', LOG_LEVEL: 'silent' }),
      pino({ level: 'silent' }),
    );
    // no HCP_ADMIN_KEY and no admin key yet: one is made and written to the data directory
    const { readFileSync, statSync } = await import('node:fs');
    const adminKey = readFileSync(`${dir}/admin.key`, 'utf8').trim();
    expect(statSync(`${dir}/admin.key`).mode & 0o777).toBe(0o600);
    expect((await fetch(`http://127.0.0.1:${cp.httpPort}/api/v1/status`, { headers: bearer(adminKey) })).status).toBe(200);
    const token = (await cp.keys.create({ role: 'agent', siteId: 'canada-1' }, 'test')).secret;
    const agent = openAgentStream(`127.0.0.1:${cp.grpcPort}`, { siteId: 'canada-1', session: 's', devices: [device('asic-canada-1-00001', 'asic')], token });
    const pub = await mqtt.connectAsync(cp.mqttUrl, { clientId: 'hcp-agent-canada-1-s', username: 'canada-1', password: token });
    try {
      await waitFor(() => agent.received.length > 0, { message: 'HelloAck' });
      await pub.publishAsync(topics.telemetry('canada-1'), batch('canada-1', 1, 's', [], [asic('asic-canada-1-00001', Date.now(), 200, 3500)]), { qos: 1 });
      await waitFor(async () => (await cp.db.query<{ n: number }>('SELECT count(*)::int AS n FROM asic_telemetry'))[0]!.n === 1, { message: 'row in PGlite' });
      const rows = await cp.db.query<{ chip: number[] }>('SELECT chip_temperatures_c AS chip FROM asic_telemetry');
      expect(rows[0]!.chip).toEqual([70, 71, 75]);
    } finally {
      agent.close();
      await pub.endAsync();
      await cp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
