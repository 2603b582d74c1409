// The embedded broker with HCP_MQTT_USERS_FILE: real control plane on real PostgreSQL, real MQTT
// clients over loopback. Logins are checked, and prices, frequency and a site's telemetry reach
// ingest only from the users allowed to publish them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { newMqttUser, parseMqttUsers } from '../control-plane/mqtt/acl.js';
import { encodeFrequency } from '../proto/market-topics.js';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

describe('mqtt users file', () => {
  it('names every problem in a bad file', () => {
    expect(() => parseMqttUsers({ users: [{ username: 'a', token_sha256: 'xyz', role: 'agent', site: 'Texas 1' }, { username: 'b', token_sha256: '0'.repeat(64), role: 'admin' }] }))
      .toThrow(/users\.0\.token_sha256 must be 64 hex digits; users\.0\.site is not a site id; users\.1\.role/);
    const u = newMqttUser({ username: 'x', role: 'feed' }).line;
    expect(() => parseMqttUsers({ users: [u, u] })).toThrow(/username x is listed twice/);
  });
});

describePg('embedded broker with users', (pg) => {
  let cp: ControlPlane;
  let dir: string;
  const agent = newMqttUser({ username: 'texas-1', role: 'agent', site: 'texas-1' });
  const feed = newMqttUser({ username: 'feeds', role: 'feed' });
  const reader = newMqttUser({ username: 'grafana', role: 'reader' });
  const clients: MqttClient[] = [];
  const connect = async (username?: string, password?: string) => {
    const c = await mqtt.connectAsync(cp.mqttUrl, { username, password, reconnectPeriod: 0, connectTimeout: 3000 });
    clients.push(c);
    return c;
  };
  const metric = async (name: string, labels: string) => {
    const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hcp-mqtt-users-'));
    writeFileSync(join(dir, 'users.json'), JSON.stringify({ users: [agent.line, feed.line, reader.line] }));
    const config = loadControlPlaneConfig({
      DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', LOG_LEVEL: 'silent',
      HCP_MQTT_USERS_FILE: join(dir, 'users.json'),
    });
    cp = await createControlPlane(config, pino({ level: process.env.TEST_LOG ?? 'silent' }));
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a login without credentials or with a wrong token, and counts it', async () => {
    await expect(connect()).rejects.toThrow(/bad user ?name or password/i);
    await expect(connect('texas-1', feed.token)).rejects.toThrow(/bad user ?name or password/i);
    expect(await metric('hcp_broker_rejected_publishes_total', '{reason="bad_credentials"}')).toBe(2);
  });

  it('takes prices and frequency only from a feed, and a site\'s telemetry only from that site\'s agent', async () => {
    const a = await connect('texas-1', agent.token);
    const f = await connect('feeds', feed.token);
    const r = await connect('grafana', reader.token);
    const ts = new Date().toISOString();
    const batch = (siteId: string) => Buffer.from(TelemetryBatch.encode({ siteId, seq: 1, sentAtMs: Date.now(), agentSession: 's', gpus: [], asics: [] }).finish());

    await a.publishAsync('hcp/v1/market/power/texas-1', JSON.stringify({ ts, price: 9.99 }), { qos: 1 });
    await a.publishAsync('hcp/v1/grid/ercot/frequency', encodeFrequency({ ts, hz: 59.0 }), { qos: 1 });
    await a.publishAsync('hcp/v1/sites/texas-2/telemetry', batch('texas-2'), { qos: 1 });
    await r.publishAsync('hcp/v1/market/btc_usd', JSON.stringify({ ts, price: 1 }), { qos: 1 });
    // each refused publish is acked (the client keeps its connection) and delivered to no one
    expect(await metric('hcp_broker_rejected_publishes_total', '{reason="forbidden"}')).toBe(4);
    expect(a.connected && r.connected).toBe(true);

    await f.publishAsync('hcp/v1/market/power/texas-1', JSON.stringify({ ts, price: 0.05 }), { qos: 1 });
    await a.publishAsync('hcp/v1/sites/texas-1/telemetry', batch('texas-1'), { qos: 1 });
    const prices = await waitFor(async () => {
      const body = (await (await fetch(`http://127.0.0.1:${cp.httpPort}/api/v1/prices?feed=power`)).json()) as { ticks: Array<{ price: number }> };
      return body.ticks.length ? body.ticks : null;
    }, { message: 'the feed\'s price stored' });
    expect(prices.map((p) => p.price)).toEqual([0.05]);
    expect(await metric('hcp_feed_messages_total', '{feed="grid_frequency"}')).toBe(0);
    // the agent's own site's batch reached ingest; the other site's never did
    await waitFor(async () => (await metric('hcp_ingest_batches_total', '')) >= 1, { message: 'own telemetry ingested' });
    expect(await metric('hcp_ingest_batches_total', '')).toBe(1);
    expect(await metric('hcp_broker_rejected_publishes_total', '{reason="forbidden"}')).toBe(4);
  });
});
