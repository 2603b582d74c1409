// The embedded broker's logins and ACL, on a real broker with real mqtt.js clients (and the
// mosquitto clients) over loopback. The key table is the injected authenticate dependency.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { collect, KEYS, startBroker, suback, type TestBroker } from './harness/mqtt-broker.js';
import { waitFor } from './harness/wait-for.js';

const run = promisify(execFile);
const freq = (hz: number) => JSON.stringify({ ts: new Date().toISOString(), hz });

describe('embedded broker: logins', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it('refuses a bad login with CONNACK 4, and counts it', async () => {
    b = await startBroker();
    expect(await b.connackCode({ ...KEYS.viewer, secret: 'wrong' })).toBe(4);
    // a real secret under another key's user name is a bad login too
    expect(await b.connackCode({ ...KEYS.viewer, username: KEYS.admin.username })).toBe(4);
    expect(await b.connackCode(KEYS.viewer)).toBe(0);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'bad_credentials' })).toBe(2);
    // and from mosquitto_sub: exit code 5 is its "connection refused" for a bad user or password
    const sub = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.broker.port), '-u', 'grafana', '-P', 'nope', '-t', 'hcp/v1/#', '-C', '1', '-W', '5']).catch((e: { code: number; stderr: string }) => e);
    expect('stderr' in sub && sub.stderr).toMatch(/bad user name or password/i);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'bad_credentials' })).toBe(3);
  });

  it('refuses anonymous clients with CONNACK 5 unless allowed, and customer keys always', async () => {
    b = await startBroker({ anonymous: false });
    expect(await b.connackCode(null)).toBe(5);
    expect(await b.connackCode(KEYS.customer)).toBe(5);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'anonymous' })).toBe(1);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'not_authorized' })).toBe(1);
    await b.close();
    b = await startBroker({ anonymous: true });
    expect(await b.connackCode(null)).toBe(0);
  });
});

describe('embedded broker: publish ACL', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it('delivers no anonymous telemetry, and an anonymous grid reading when anonymous clients are allowed', async () => {
    b = await startBroker({ anonymous: true });
    const reader = await b.connect(KEYS.viewer);
    const { got } = await collect(reader, 'hcp/v1/#');
    const anon = await b.connect(null);
    await anon.publishAsync('hcp/v1/sites/texas-1/telemetry', 'fake batch', { qos: 1 });
    await anon.publishAsync('hcp/v1/sites/texas-1/status', 'fake status', { qos: 1, retain: true });
    await anon.publishAsync('hcp/v1/grid/ercot/frequency', freq(59.6), { qos: 1 });
    await waitFor(() => got.some((m) => m.topic === 'hcp/v1/grid/ercot/frequency'), { message: 'the anonymous grid reading' });
    expect(got.map((m) => m.topic)).toEqual(['hcp/v1/grid/ercot/frequency']);
    expect(await b.counter('hcp_broker_rejected_publishes_total', { reason: 'forbidden' })).toBe(2);
    // the forbidden retained status was not kept: a new subscriber gets no retained message
    // (it would come before anything published after the subscription)
    const late = await b.connect(KEYS.viewer);
    const lateGot = await collect(late, 'hcp/v1/#');
    await anon.publishAsync('hcp/v1/grid/ercot/frequency', freq(60), { qos: 1 });
    await waitFor(() => lateGot.got.length > 0);
    expect(lateGot.got.map((m) => m.topic)).toEqual(['hcp/v1/grid/ercot/frequency']);
    expect(anon.connected).toBe(true);
  });

  it('lets texas-1 publish only its own telemetry, and no grid reading', async () => {
    b = await startBroker();
    const reader = await b.connect(KEYS.admin);
    const { got } = await collect(reader, 'hcp/v1/#');
    const texas1 = await b.connect(KEYS.texas1, { clientId: 'hcp-agent-texas-1-0a1b2c3d' });
    await texas1.publishAsync('hcp/v1/sites/texas-2/telemetry', 'not mine', { qos: 1 });
    await texas1.publishAsync('hcp/v1/grid/ercot/frequency', freq(59.5), { qos: 1 });
    await texas1.publishAsync('hcp/v1/market/power/texas-1', JSON.stringify({ ts: new Date().toISOString(), price: 9 }), { qos: 1 });
    await texas1.publishAsync('hcp/v1/sites/texas-1/telemetry', 'mine', { qos: 1 });
    await waitFor(() => got.length > 0);
    expect(got).toEqual([{ topic: 'hcp/v1/sites/texas-1/telemetry', payload: 'mine' }]);
    expect(await b.counter('hcp_broker_rejected_publishes_total', { reason: 'forbidden' })).toBe(3);
    // the refused publishes were acknowledged: the agent is still connected
    expect(texas1.connected).toBe(true);
  });

  it('lets a feed key publish prices and frequency, also from mosquitto_pub', async () => {
    b = await startBroker();
    const reader = await b.connect(KEYS.viewer);
    const { got } = await collect(reader, 'hcp/v1/grid/+/frequency');
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.broker.port), '-u', KEYS.feed.username, '-P', KEYS.feed.secret, '-i', 'hcp-key-feeds-cli', '-q', '1', '-t', 'hcp/v1/grid/ercot/frequency', '-m', freq(59.9)]);
    await waitFor(() => got.length === 1, { message: 'the feed reading' });
  });

  it('delivers nobody what lands under $hcp/, not even who subscribes to it by name', async () => {
    b = await startBroker({ anonymous: true });
    const admin = await b.connect(KEYS.admin);
    expect(await suback(admin, ['$hcp/forbidden/#', '$hcp/#', '$SYS/#', '#', 'hcp/v1/#'])).toEqual([128, 128, 128, 128, 1]);
    const got: string[] = [];
    admin.on('message', (t) => got.push(t));
    const ingest = await b.ingest();
    const viewer = await b.connect(KEYS.viewer);
    await viewer.publishAsync('hcp/v1/grid/ercot/frequency', freq(59.1), { qos: 1 });
    await viewer.publishAsync('$hcp/forbidden/hcp/v1/grid/ercot/frequency', freq(59.1), { qos: 1 });
    await viewer.publishAsync('hcp/v1/whatever', 'x', { qos: 1 });
    // a marker the admin and ingest may receive, published last
    const anon = await b.connect(null);
    await anon.publishAsync('hcp/v1/market/btc_usd', JSON.stringify({ ts: new Date().toISOString(), price: 1 }), { qos: 1 });
    await waitFor(() => got.includes('hcp/v1/market/btc_usd') && ingest.got.some((m) => m.topic === 'hcp/v1/market/btc_usd'));
    expect(got).toEqual(['hcp/v1/market/btc_usd']);
    expect(ingest.got.map((m) => m.topic)).toEqual(['hcp/v1/market/btc_usd']);
    expect(await b.counter('hcp_broker_rejected_publishes_total', { reason: 'unknown_topic' })).toBe(1);
    expect(await b.counter('hcp_broker_refused_subscriptions_total', { reason: 'reserved' })).toBe(3);
    expect(await b.counter('hcp_broker_refused_subscriptions_total', { reason: 'forbidden' })).toBe(1);
  });

  it('checks a last will against the ACL too', async () => {
    b = await startBroker({ anonymous: true });
    const reader = await b.connect(KEYS.viewer);
    const { got } = await collect(reader, 'hcp/v1/sites/+/status');
    const anon = await b.connect(null, { will: { topic: 'hcp/v1/sites/texas-1/status', payload: Buffer.from('offline'), qos: 1, retain: true } });
    const texas1 = await b.connect(KEYS.texas1, { will: { topic: 'hcp/v1/sites/texas-1/status', payload: Buffer.from('texas-1 offline'), qos: 1, retain: false } });
    // both vanish without DISCONNECT: the broker publishes their wills (MQTT 3.1.1 §3.1.2.5)
    (anon as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitFor(() => b.counter('hcp_broker_rejected_publishes_total', { reason: 'forbidden' }), { message: 'the anonymous will refused' });
    (texas1 as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitFor(() => got.length === 1, { message: "the agent's own will" });
    expect(got).toEqual([{ topic: 'hcp/v1/sites/texas-1/status', payload: 'texas-1 offline' }]);
  });
});

describe('embedded broker: subscribe ACL', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it("gives an agent its own site and its region's grid topic, not another site or #", async () => {
    b = await startBroker();
    const texas1 = await b.connect(KEYS.texas1);
    const filters = ['hcp/v1/sites/texas-2/telemetry', '#', 'hcp/v1/sites/+/telemetry', 'hcp/v1/grid/ieso/frequency', 'hcp/v1/sites/texas-1/status', 'hcp/v1/grid/ercot/frequency'];
    expect(await suback(texas1, filters)).toEqual([128, 128, 128, 128, 1, 1]);
    const got: string[] = [];
    texas1.on('message', (t) => got.push(t));
    const texas2 = await b.connect(KEYS.texas2);
    await texas2.publishAsync('hcp/v1/sites/texas-2/telemetry', 'b', { qos: 1 });
    const feed = await b.connect(KEYS.feed);
    await feed.publishAsync('hcp/v1/grid/ieso/frequency', freq(60), { qos: 1 });
    await feed.publishAsync('hcp/v1/grid/ercot/frequency', freq(60), { qos: 1 });
    await waitFor(() => got.length > 0);
    expect(got).toEqual(['hcp/v1/grid/ercot/frequency']);
    expect(await b.counter('hcp_broker_refused_subscriptions_total', { reason: 'forbidden' })).toBe(4);
  });

  it('does not queue, for a persistent session, the filters it refused in the same SUBSCRIBE', async () => {
    // one queued message per session: a refused filter's message would push the granted one out
    b = await startBroker({ limits: { maxPacketBytes: 1024 * 1024, maxQueued: 1, sessionExpiryS: 3600 } });
    const opts = { clientId: 'hcp-agent-texas-1-persist', clean: false };
    const texas1 = await b.connect(KEYS.texas1, opts);
    expect(await suback(texas1, ['hcp/v1/sites/texas-1/status', 'hcp/v1/sites/texas-2/telemetry'])).toEqual([1, 128]);
    await texas1.endAsync();
    const other = await b.connect(KEYS.texas1);
    await other.publishAsync('hcp/v1/sites/texas-1/status', 'kept', { qos: 1 });
    const texas2 = await b.connect(KEYS.texas2);
    await texas2.publishAsync('hcp/v1/sites/texas-2/telemetry', 'not for texas-1', { qos: 1 });
    const got: string[] = [];
    await b.connect(KEYS.texas1, opts, (t, p) => got.push(`${t} ${p}`));
    await waitFor(() => got.length > 0, { message: 'the queued status' });
    expect(got).toEqual(['hcp/v1/sites/texas-1/status kept']);
    expect(await b.counter('hcp_broker_dropped_queued_messages_total', { reason: 'queue_full' })).toBe(0);
  });

  it('gives readers hcp/v1, feeds the feeds and anonymous clients the readings', async () => {
    b = await startBroker({ anonymous: true });
    const viewer = await b.connect(KEYS.viewer);
    expect(await suback(viewer, ['hcp/v1/#', 'hcp/v1/sites/+/telemetry'])).toEqual([1, 1]);
    const feed = await b.connect(KEYS.feed);
    expect(await suback(feed, ['hcp/v1/market/#', 'hcp/v1/sites/+/telemetry'], 0)).toEqual([0, 128]);
    const anon = await b.connect(null);
    expect(await suback(anon, ['hcp/v1/sites/+/telemetry', 'hcp/v1/sites/+/status', 'hcp/v1/grid/+/frequency', 'hcp/v1/#'], 0)).toEqual([0, 0, 0, 128]);
  });
});

describe('embedded broker: client ids bound to the login', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it('refuses hcp-ingest-1 and hcp-agent-texas-2-x to other logins; the internal subscriber keeps receiving', async () => {
    b = await startBroker({ anonymous: true });
    const ingest = await b.ingest('hcp-ingest-1');
    expect(await b.connackCode(KEYS.admin, { clientId: 'hcp-ingest-1' })).toBe(2);
    expect(await b.connackCode(null, { clientId: 'hcp-ingest-1' })).toBe(2);
    expect(await b.connackCode(KEYS.texas1, { clientId: 'hcp-agent-texas-2-x' })).toBe(2);
    expect(await b.connackCode(KEYS.viewer, { clientId: 'hcp-agent-texas-2-x' })).toBe(2);
    expect(await b.connackCode(KEYS.viewer, { clientId: 'hcp-feeds-1' })).toBe(2);
    expect(await b.connackCode(KEYS.viewer, { clientId: 'hcp-key-feeds-1' })).toBe(2);
    // mosquitto_sub with a reserved id: "identifier rejected"
    const sub = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.broker.port), '-i', 'hcp-ingest-1', '-t', 'hcp/v1/#', '-C', '1', '-W', '5']).catch((e: { stderr: string }) => e);
    expect('stderr' in sub && sub.stderr).toMatch(/identifier rejected/i);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'client_id' })).toBe(7);
    const texas1 = await b.connect(KEYS.texas1, { clientId: 'hcp-agent-texas-1-0a1b2c3d' });
    await texas1.publishAsync('hcp/v1/sites/texas-1/telemetry', 'batch 1', { qos: 1 });
    await waitFor(() => ingest.got.length === 1, { message: 'ingest still receiving' });
    expect(ingest.subscriber.connected()).toBe(true);
    expect(ingest.streams).toBe(1);
    // the rightful owners get their ids
    expect(await b.connackCode(KEYS.texas2, { clientId: 'hcp-agent-texas-2-x' })).toBe(0);
    expect(await b.connackCode(KEYS.feed, { clientId: 'hcp-key-feeds-1' })).toBe(0);
    expect(await b.connackCode(KEYS.viewer, { clientId: 'grafana-dashboard' })).toBe(0);
  });

  it('lets no other login take over a session, live or offline', async () => {
    b = await startBroker({ anonymous: true });
    const viewer = await b.connect(KEYS.viewer, { clientId: 'dashboard', clean: false });
    await viewer.subscribeAsync('hcp/v1/sites/+/telemetry', { qos: 1 });
    expect(await b.connackCode(null, { clientId: 'dashboard' })).toBe(2);
    expect(await b.connackCode(KEYS.admin, { clientId: 'dashboard', clean: false })).toBe(2);
    expect(viewer.connected).toBe(true);
    await viewer.endAsync();
    // offline, its queue fills; another login may not take it
    const texas1 = await b.connect(KEYS.texas1);
    await texas1.publishAsync('hcp/v1/sites/texas-1/telemetry', 'queued', { qos: 1 });
    expect(await b.connackCode(null, { clientId: 'dashboard', clean: false })).toBe(2);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'client_id_in_use' })).toBe(3);
    const got: string[] = [];
    await b.connect(KEYS.viewer, { clientId: 'dashboard', clean: false }, (_t, p) => got.push(p));
    await waitFor(() => got.length === 1, { message: 'the queued batch for its owner' });
    expect(got).toEqual(['queued']);
  });
});

describe('embedded broker: revocation', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it('disconnectKey closes every client of the key and forgets its sessions; the others stay', async () => {
    b = await startBroker();
    const closed: string[] = [];
    const watch = (name: string, c: MqttClient) => c.on('close', () => closed.push(name));
    const v1 = await b.connect(KEYS.viewer, { clientId: 'grafana-a', clean: false });
    await v1.subscribeAsync('hcp/v1/#', { qos: 1 });
    const v2 = await b.connect(KEYS.viewer, { clientId: 'grafana-b' });
    const admin = await b.connect(KEYS.admin);
    watch('v1', v1);
    watch('v2', v2);
    watch('admin', admin);
    b.keys.delete(KEYS.viewer.secret);
    expect(await b.broker.disconnectKey(KEYS.viewer.principal.keyId)).toBe(2);
    await waitFor(() => closed.length === 2, { message: 'both viewer clients closed' });
    expect(closed.sort()).toEqual(['v1', 'v2']);
    expect(admin.connected).toBe(true);
    expect(b.broker.clients()).toBe(1);
    expect(await b.connackCode(KEYS.viewer)).toBe(4);
    // its persistent session went too: the id is free, and holds nothing
    const texas1 = await b.connect(KEYS.texas1);
    await texas1.publishAsync('hcp/v1/sites/texas-1/telemetry', 'x', { qos: 1 });
    const reuse = await b.connect(KEYS.admin, { clientId: 'grafana-a', clean: false });
    expect((reuse as unknown as { connackPacket: { sessionPresent: boolean } }).connackPacket.sessionPresent).toBe(false);
  });

  it('refuses a login of a key revoked while the key ring was answering it', async () => {
    let release: () => void = () => {};
    const answered = new Promise<void>((resolve) => (release = resolve));
    let asked = 0;
    b = await startBroker({
      authenticate: async (_u, password) => {
        asked++;
        await answered;
        return password === KEYS.viewer.secret ? KEYS.viewer.principal : null;
      },
    });
    const code = b.connackCode(KEYS.viewer);
    await waitFor(() => asked === 1, { message: 'the key ring asked' });
    expect(await b.broker.disconnectKey(KEYS.viewer.principal.keyId)).toBe(0);
    release();
    expect(await code).toBe(4);
    expect(await b.counter('hcp_broker_refused_connections_total', { reason: 'revoked' })).toBe(1);
    // a key ring that fails answers CONNACK 3, server unavailable (MQTT 3.1.1 §3.2.2.3)
    await b.close();
    b = await startBroker({ authenticate: () => Promise.reject(new Error('database down')) });
    expect(await b.connackCode(KEYS.viewer)).toBe(3);
  });
});
