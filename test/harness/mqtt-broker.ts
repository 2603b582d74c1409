// The embedded broker on a random loopback port, real mqtt.js clients, and the one injected
// dependency a test supplies: a small in-memory key table standing in for the key ring.
import type { Duplex } from 'node:stream';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { pino } from 'pino';
import type { Principal, Role } from '../../control-plane/auth/roles.js';
import { createMetrics, type Metrics } from '../../control-plane/metrics.js';
import { createBroker, type Broker, type BrokerOptions } from '../../control-plane/mqtt/broker.js';
import { createSubscriber, type Subscriber } from '../../control-plane/mqtt/subscriber.js';

export interface TestKey {
  principal: Principal;
  /** the MQTT user name (mqttUsernameOf) */
  username: string;
  secret: string;
}

export function testKey(role: Role, name: string, siteId: string | null = null): TestKey {
  const principal: Principal = { keyId: `key_${name}`, name, role, customerId: role === 'customer' ? 'cust-001' : null, siteId };
  return { principal, username: role === 'agent' ? siteId! : name, secret: `hcp_test_secret_of_${name}_0123456789` };
}

export const KEYS = {
  texas1: testKey('agent', 'agent-texas-1', 'texas-1'),
  texas2: testKey('agent', 'agent-texas-2', 'texas-2'),
  feed: testKey('feed', 'feeds'),
  viewer: testKey('viewer', 'grafana'),
  admin: testKey('admin', 'root'),
  customer: testKey('customer', 'acme'),
};

export const REGIONS: Record<string, string> = { 'texas-1': 'ercot', 'texas-2': 'ercot', 'canada-1': 'ieso' };

export interface TestBroker {
  broker: Broker;
  metrics: Metrics;
  url: string;
  /** the key table the broker authenticates against; delete from it to revoke */
  keys: Map<string, TestKey>;
  /** an mqtt.js client logged in with this key (or anonymous), connected, not reconnecting */
  connect(key: TestKey | null, opts?: IClientOptions, onMessage?: (topic: string, payload: string) => void): Promise<MqttClient>;
  /** the CONNACK return code a login gets (0 = accepted) */
  connackCode(key: TestKey | null, opts?: IClientOptions): Promise<number>;
  /** the in-process ingest subscriber (createSubscriber through connectInternal), with what it got */
  ingest(clientId?: string): Promise<{ subscriber: Subscriber; got: Array<{ topic: string; payload: string }>; streams: number; current: Duplex | null }>;
  counter(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

export async function startBroker(overrides: Partial<BrokerOptions> = {}): Promise<TestBroker> {
  const metrics = createMetrics();
  const keys = new Map(Object.values(KEYS).map((k) => [k.secret, k]));
  const broker = await createBroker({
    host: '127.0.0.1',
    port: 0,
    authenticate: (_username, password) => keys.get(password)?.principal ?? null,
    anonymous: false,
    regionOf: (site) => REGIONS[site],
    limits: { maxPacketBytes: 1024 * 1024, maxQueued: 1000, sessionExpiryS: 3600 },
    log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    metrics,
    ...overrides,
  });
  const url = `mqtt://127.0.0.1:${broker.port}`;
  const clients: MqttClient[] = [];
  const subscribers: Subscriber[] = [];
  const login = (key: TestKey | null): IClientOptions => (key ? { username: key.username, password: key.secret } : {});

  const connect = (key: TestKey | null, opts: IClientOptions = {}, onMessage?: (topic: string, payload: string) => void) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, ...login(key), ...opts });
    clients.push(c);
    // attached before CONNACK: a persistent session's queue is sent right after it
    if (onMessage) c.on('message', (topic, payload) => onMessage(topic, payload.toString()));
    return new Promise<MqttClient>((resolve, reject) => {
      c.once('connect', () => resolve(c));
      c.once('error', reject);
      c.once('close', () => reject(new Error('closed before CONNACK')));
    });
  };

  return {
    broker,
    metrics,
    url,
    keys,
    connect,
    async connackCode(key, opts = {}) {
      try {
        await connect(key, opts);
        return 0;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'number') throw err;
        return code;
      }
    },
    async ingest(clientId = 'hcp-ingest-1') {
      const got: Array<{ topic: string; payload: string }> = [];
      const state = { subscriber: null as unknown as Subscriber, got, streams: 0, current: null as Duplex | null };
      state.subscriber = await createSubscriber({
        transport: {
          stream: () => {
            state.streams++;
            state.current = broker.connectInternal();
            return state.current;
          },
        },
        clientId,
        log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
        onMessage: (topic, payload) => got.push({ topic, payload: payload.toString() }),
      });
      subscribers.push(state.subscriber);
      return state;
    },
    async counter(name, labels = {}) {
      const m = await metrics.registry.getSingleMetric(name)?.get();
      const v = m?.values.find((x) => Object.entries(labels).every(([k, want]) => x.labels[k] === want) && Object.keys(x.labels).length === Object.keys(labels).length);
      return v?.value ?? 0;
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
      await Promise.all(subscribers.map((s) => s.close()));
      await broker.close();
    },
  };
}

/** the SUBACK return codes for these filters (0x80 = refused, MQTT 3.1.1 §3.9.3) */
export function suback(client: MqttClient, filters: string[], qos: 0 | 1 = 1): Promise<number[]> {
  return new Promise((resolve, reject) => {
    // mqtt.js reports any refused filter as an error, with the SUBACK beside it
    client.subscribe(filters, { qos }, (err, _granted, packet) => {
      const codes = packet?.granted ?? (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
      if (codes) resolve(codes.map(Number));
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

/** subscribes `client` to `filter` (granted) and collects every message it then receives */
export async function collect(client: MqttClient, filter: string, qos: 0 | 1 = 1): Promise<{ got: Array<{ topic: string; payload: string }> }> {
  const got: Array<{ topic: string; payload: string }> = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  const codes = await suback(client, [filter], qos);
  if (codes[0] === 0x80) throw new Error(`${filter} refused`);
  return { got };
}
