// HCP_BROKER=external against a real Mosquitto (test/harness/mosquitto.ts): ingest logs in with
// its own credential, keeps a persistent session that survives its absence and a broker restart,
// and two control planes on one database share the telemetry through the MQTT 5 shared
// subscription $share/hcp-ingest/hcp/v1/sites/+/telemetry — each batch handled by exactly one
// replica, every row stored once — while both see every site's status.
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, ingestClientIdOf, loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { createSubscriber, sharedFilter, subscriptionsOf, type Subscriber } from '../control-plane/mqtt/subscriber.js';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { encodeStatus, topics } from '../proto/topics.js';
import { TEST_ADMIN_KEY } from './harness/auth.js';
import { device, openAgentStream, type TestAgentStream } from './harness/grpc-agent.js';
import { INGEST_USER, startMosquitto, type Mosquitto } from './harness/mosquitto.js';
import { describePg } from './harness/pg.js';
import { asic, gpu } from './harness/samples.js';
import { waitFor } from './harness/wait-for.js';

const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const SITES = ['texas-1', 'texas-2', 'canada-1'] as const;

async function metric(cp: ControlPlane, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('external broker configuration', () => {
  it('needs a broker login for ingest, given one way, and never prints it', () => {
    expect(() => loadControlPlaneConfig({ HCP_BROKER: 'external' })).toThrow(/HCP_MQTT_PASSWORD_FILE: HCP_BROKER=external needs/);
    expect(() => loadControlPlaneConfig({ HCP_BROKER: 'external', HCP_MQTT_PASSWORD: 'pw', HCP_MQTT_PASSWORD_FILE: '/x' })).toThrow(/one way/);
    const c = loadControlPlaneConfig({ HCP_BROKER: 'external', HCP_MQTT_PASSWORD_FILE: '/run/secrets/mqtt' });
    expect(c).toMatchObject({ HCP_MQTT_USERNAME: 'hcp_ingest', HCP_MQTT_SHARE_GROUP: 'hcp-ingest' });
    try {
      loadControlPlaneConfig({ HCP_BROKER: 'external', HCP_MQTT_PASSWORD: 'hunter2', HCP_MQTT_SHARE_GROUP: 'a/b' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/HCP_MQTT_SHARE_GROUP/);
      expect((err as Error).message).not.toContain('hunter2');
    }
  });

  it('takes telemetry through the shared group and status and feeds plainly', () => {
    expect(Object.keys(subscriptionsOf('hcp-ingest'))).toEqual([
      '$share/hcp-ingest/hcp/v1/sites/+/telemetry', 'hcp/v1/sites/+/status', 'hcp/v1/market/#', 'hcp/v1/grid/+/frequency',
    ]);
    expect(Object.keys(subscriptionsOf())[0]).toBe('hcp/v1/sites/+/telemetry');
    expect(() => sharedFilter('a+b', 'x')).toThrow(/group/);
  });

  it('gives each replica its own client id, stable across restarts unless its port is random', () => {
    const at = (env: Record<string, string>) => loadControlPlaneConfig({ HCP_BROKER: 'external', HCP_MQTT_PASSWORD: 'pw', ...env });
    expect(ingestClientIdOf(at({ HCP_GRPC_PORT: '50051' }), 'cp-a', () => 'r')).toBe('hcp-ingest-cp-a-50051');
    expect(ingestClientIdOf(at({ HCP_GRPC_PORT: '50051' }), 'cp-b', () => 'r')).toBe('hcp-ingest-cp-b-50051');
    expect(ingestClientIdOf(at({ HCP_GRPC_PORT: '0' }), 'cp-a', () => 'r1')).toBe('hcp-ingest-cp-a-0-r1');
    expect(ingestClientIdOf(at({ HCP_MQTT_CLIENT_ID: 'replica-1' }), 'cp-a', () => 'r')).toBe('replica-1');
  });
});

describe('ingest on Mosquitto', () => {
  let broker: Mosquitto;
  const PUBLISHER = { user: 'texas-1', password: 'hcp_publisher_secret_of_texas_1_0123' };
  beforeAll(async () => {
    broker = await startMosquitto({ users: { [PUBLISHER.user]: PUBLISHER.password } });
  });
  afterAll(async () => {
    await broker?.close();
  });

  // each test its own group: members of one group share its messages
  const subscribe = (clientId: string, got: string[], password = broker.ingestPassword) =>
    createSubscriber({
      transport: { url: broker.url, username: INGEST_USER, password, shareGroup: `g-${clientId}`, sessionExpiryS: 600 },
      clientId, log, onMessage: (topic, payload) => got.push(`${topic} ${payload.toString()}`),
    });
  const publish = async (payloads: string[]) => {
    const c = await mqtt.connectAsync(broker.url, { clientId: `pub-${Math.random()}`, username: PUBLISHER.user, password: PUBLISHER.password, reconnectPeriod: 0 });
    for (const p of payloads) await c.publishAsync(topics.telemetry('texas-1'), p, { qos: 1 });
    await c.endAsync();
  };

  it('refuses to start at once with a wrong password, naming the setting', async () => {
    const t0 = Date.now();
    await expect(subscribe('ingest-wrong', [], 'not-the-password')).rejects.toThrow(/refused ingest's login as "hcp_ingest".*HCP_MQTT_PASSWORD_FILE/);
    console.log(JSON.stringify({ login_refused_after_ms: Date.now() - t0 }));
  });

  // What is queued for an absent member survives a broker restart. (Mosquitto 2.0.11 gives a
  // shared subscription restored from its persistence file nothing published after the restart
  // until the member is back: the agent's spool re-sends whatever is not committed, so nothing
  // rests on the broker's queue — docs/scaling.md.)
  it('keeps QoS 1 telemetry for a subscriber that is away, across a broker restart', async () => {
    const got: string[] = [];
    let sub: Subscriber = await subscribe('ingest-persistent', got);
    await sub.close();
    await publish(['while-away-1', 'while-away-2']);
    await broker.stop();
    await broker.start();
    sub = await subscribe('ingest-persistent', got);
    await publish(['after-restart']);
    await waitFor(() => got.length >= 3, { timeoutMs: 10_000, message: `queued telemetry delivered (${got.join(", ")}); broker:\n${broker.output()}` });
    expect(got.map((g) => g.split(' ')[1])).toEqual(['while-away-1', 'while-away-2', 'after-restart']);
    await sub.close();
  });

  it('refuses an agent that publishes another site\'s telemetry', async () => {
    const got: string[] = [];
    const sub = await subscribe('ingest-acl', got);
    const c = await mqtt.connectAsync(broker.url, { clientId: 'pub-acl', username: PUBLISHER.user, password: PUBLISHER.password, reconnectPeriod: 0, protocolVersion: 5 });
    // MQTT 5: the broker answers a refused QoS 1 publish with PUBACK 0x87 (not authorized)
    await c.publishAsync(topics.telemetry('texas-2'), 'forged', { qos: 1 }).catch(() => undefined);
    await c.publishAsync(topics.telemetry('texas-1'), 'own', { qos: 1 });
    await waitFor(() => got.length >= 1, { message: `own telemetry delivered; broker:\n${broker.output()}` });
    expect(got).toEqual([`${topics.telemetry('texas-1')} own`]);
    await c.endAsync();
    await sub.close();
  });

  it('starts while the broker is away, not connected, and subscribes once it is back', async () => {
    await broker.stop();
    const got: string[] = [];
    const sub = await subscribe('ingest-outage', got);
    expect(sub.connected()).toBe(false);
    await broker.start();
    await waitFor(() => sub.connected(), { timeoutMs: 10_000, message: 'subscriber connected after the outage' });
    await waitFor(async () => {
      await publish(['after-outage']);
      return got.length > 0;
    }, { timeoutMs: 10_000, intervalMs: 500, message: 'telemetry after the outage' });
    await sub.close();
  });
});

describePg('two control planes on one Mosquitto and one database', (pg) => {
  let broker: Mosquitto;
  const cps: ControlPlane[] = [];
  const agents: TestAgentStream[] = [];
  const pubs: MqttClient[] = [];
  let sql: postgres.Sql;
  const tokens: Record<string, string> = {};
  const devicesOf = (site: string) => [device(`gpu-${site}-0001`, 'gpu'), device(`asic-${site}-00001`, 'asic'), device(`asic-${site}-00002`, 'asic')];

  const startReplica = (name: string) =>
    createControlPlane(
      loadControlPlaneConfig({
        DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_BROKER: 'external', HCP_MQTT_URL: broker.url,
        HCP_MQTT_PASSWORD_FILE: broker.ingestPasswordFile, HCP_MQTT_CLIENT_ID: `hcp-ingest-${name}`,
        HCP_INGEST_FLUSH_MS: '50', HCP_HEARTBEAT_MS: '300', HCP_STALE_AFTER_MS: '3000', HCP_ECONOMICS: 'off', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
      }),
      log.child({ replica: name }),
    );

  beforeAll(async () => {
    broker = await startMosquitto();
    sql = postgres(pg.url, { onnotice: () => {} });
    const a = await startReplica('a');
    cps.push(a);
    for (const site of SITES) {
      tokens[site] = (await a.keys.create({ role: 'agent', siteId: site }, 'test')).secret;
      // Mosquitto has its own password file: an agent logs in with its site id and credential
      await broker.addUser(site, tokens[site]!);
      const agent = openAgentStream(`127.0.0.1:${a.grpcPort}`, { siteId: site, session: `s-${site}`, token: tokens[site]!, devices: devicesOf(site) });
      agents.push(agent);
      await waitFor(() => agent.received.find((m) => m.body?.$case === 'helloAck'), { message: `${site} HelloAck` });
    }
    // the second replica starts after the hellos, so it loads the devices from the database
    cps.push(await startReplica('b'));
    for (const site of SITES) {
      pubs.push(await mqtt.connectAsync(broker.url, { clientId: `hcp-agent-${site}-test`, username: site, password: tokens[site], reconnectPeriod: 0 }));
    }
  });

  afterAll(async () => {
    for (const a of agents) a.close();
    for (const p of pubs) await p.endAsync();
    for (const cp of cps) await cp.close();
    await sql?.end();
    await broker?.close();
  });

  it('splits the telemetry between the replicas, each batch to exactly one, every row stored once', async () => {
    const BATCHES = 40;
    const t0 = Date.now() - 60_000;
    let published = 0;
    for (let seq = 1; seq <= BATCHES; seq++) {
      await Promise.all(SITES.map((site, i) => {
        const t = t0 + seq * 100;
        const payload = TelemetryBatch.encode({
          siteId: site, seq, sentAtMs: t, agentSession: `s-${site}`,
          gpus: [gpu(`gpu-${site}-0001`, t, 90, 600)], asics: [asic(`asic-${site}-00001`, t, 270, 3645), asic(`asic-${site}-00002`, t, 260, 3600)],
        }).finish();
        published++;
        return pubs[i]!.publishAsync(topics.telemetry(site), Buffer.from(payload), { qos: 1 });
      }));
    }
    const rows = async () => {
      const [g] = await sql`SELECT count(*)::int AS n, count(DISTINCT (device_id, time))::int AS d FROM gpu_telemetry`;
      const [a] = await sql`SELECT count(*)::int AS n, count(DISTINCT (device_id, time))::int AS d FROM asic_telemetry`;
      return { n: g!.n + a!.n, distinct: g!.d + a!.d };
    };
    const expected = published * 3;
    await waitFor(async () => (await rows()).n >= expected, { timeoutMs: 20_000, message: `${expected} rows` });
    const perReplica = await Promise.all(cps.map((cp) => metric(cp, 'hcp_ingest_batches_total')));
    const duplicates = await Promise.all(cps.map((cp) => metric(cp, 'hcp_ingest_rejected_total', '{reason="duplicate"}')));
    console.log(JSON.stringify({ published, per_replica: perReplica, rows: await rows() }));
    // both replicas took part, and together they handled every batch exactly once
    expect(perReplica.every((n) => n > 0)).toBe(true);
    expect(perReplica.reduce((s, n) => s + n, 0)).toBe(published);
    expect(duplicates).toEqual([0, 0]);
    expect(await rows()).toEqual({ n: expected, distinct: expected });
  });

  it('shows every site\'s status on every replica (a plain subscription)', async () => {
    for (const [i, site] of SITES.entries()) {
      await pubs[i]!.publishAsync(topics.status(site), encodeStatus({ site, state: 'online', session: `mqtt-${site}`, ts: new Date().toISOString() }), { qos: 1, retain: true });
    }
    for (const [i, cp] of cps.entries()) {
      await waitFor(() => SITES.every((s) => cp.registry.site(s)?.mqttOnlineSession === `mqtt-${s}`), {
        timeoutMs: 10_000, message: `replica ${i} sees every site's status`,
      });
    }
  });
});
