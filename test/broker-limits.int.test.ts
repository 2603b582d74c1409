// The embedded broker's limits on a real broker over loopback: packet size refused at the fixed
// header, the per-session queue cap, session expiry, and the in-process subscriber's reconnection.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { collect, KEYS, startBroker, type TestBroker } from './harness/mqtt-broker.js';
import { waitFor } from './harness/wait-for.js';

/** MQTT 3.1.1 Remaining Length (§2.2.3) */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** an anonymous CONNECT, clean session, keep alive 60 s (§3.1) */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const rest = Buffer.concat([Buffer.from([0, 4, ...Buffer.from('MQTT'), 4, 0x02, 0, 60]), Buffer.from([id.length >> 8, id.length & 0xff]), id]);
  return Buffer.concat([Buffer.from([0x10]), varint(rest.length), rest]);
}

async function rawConnect(port: number, clientId: string): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  // the broker resets it on purpose; what matters is asserted on the broker's side
  socket.on('error', () => {});
  socket.write(connectPacket(clientId));
  const [connack] = (await once(socket, 'data')) as [Buffer];
  // CONNACK, remaining length 2, no session, accepted (§3.2)
  expect([...connack]).toEqual([0x20, 2, 0, 0]);
  return socket;
}

const sessionPresent = (c: MqttClient) => (c as unknown as { connackPacket: { sessionPresent: boolean } }).connackPacket.sessionPresent;

describe('embedded broker: packet size', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it('cuts a 150 MB publish at its header; memory stays flat and other clients keep working', async () => {
    b = await startBroker({ anonymous: true, limits: { maxPacketBytes: 1024 * 1024, maxQueued: 1000, sessionExpiryS: 3600 } });
    const reader = await b.connect(KEYS.viewer);
    const { got } = await collect(reader, 'hcp/v1/grid/+/frequency');

    const socket = await rawConnect(b.broker.port!, 'big-publisher');
    const topic = Buffer.from('hcp/v1/grid/ercot/frequency');
    const bodyBytes = 150 * 1024 * 1024;
    // PUBLISH, QoS 0 (§3.3): topic length, topic, then the payload
    const header = Buffer.concat([Buffer.from([0x30]), varint(2 + topic.length + bodyBytes), Buffer.from([topic.length >> 8, topic.length & 0xff]), topic]);
    const piece = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    async function* wire() {
      yield header;
      // the same 64 KiB again and again: the test never holds 150 MB either
      while (sent < bodyBytes) {
        sent += piece.length;
        yield piece;
      }
    }
    const rssBefore = process.memoryUsage().rss;
    const outcome = await pipeline(Readable.from(wire()), socket).then(() => 'all sent', (err: NodeJS.ErrnoException) => err.code ?? err.message);
    const grown = process.memoryUsage().rss - rssBefore;

    expect(outcome).not.toBe('all sent');
    expect(sent).toBeLessThan(bodyBytes);
    expect(grown).toBeLessThan(50 * 1024 * 1024);
    expect(await b.counter('hcp_broker_oversized_packets_total')).toBe(1);

    // the broker still serves everyone else
    const feed = await b.connect(KEYS.feed);
    await feed.publishAsync('hcp/v1/grid/ercot/frequency', JSON.stringify({ ts: new Date().toISOString(), hz: 60 }), { qos: 1 });
    await waitFor(() => got.length === 1, { message: 'a reading after the cut' });
    expect(reader.connected).toBe(true);
  });

  it('passes a packet under the limit and cuts an mqtt.js client whose packet is over it', async () => {
    b = await startBroker({ limits: { maxPacketBytes: 256 * 1024, maxQueued: 1000, sessionExpiryS: 3600 } });
    const reader = await b.connect(KEYS.viewer);
    const { got } = await collect(reader, 'hcp/v1/sites/+/telemetry');
    const agent = await b.connect(KEYS.texas1);
    await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', Buffer.alloc(200 * 1024, 1), { qos: 1 });
    await waitFor(() => got.length === 1, { message: 'the 200 KiB batch' });
    const closed = new Promise<void>((resolve) => agent.once('close', () => resolve()));
    agent.publish('hcp/v1/sites/texas-1/telemetry', Buffer.alloc(300 * 1024, 2), { qos: 1 });
    await closed;
    expect(await b.counter('hcp_broker_oversized_packets_total')).toBe(1);
    expect(got).toHaveLength(1);
  });
});

describe('embedded broker: persistent sessions', () => {
  let b: TestBroker;
  afterEach(() => b.close());
  const dash = { clientId: 'dashboard', clean: false };

  it('keeps at most maxQueued messages for an offline session, dropping the oldest', async () => {
    b = await startBroker({ limits: { maxPacketBytes: 1024 * 1024, maxQueued: 5, sessionExpiryS: 3600 } });
    const viewer = await b.connect(KEYS.viewer, dash);
    await collect(viewer, 'hcp/v1/sites/+/telemetry');
    await viewer.endAsync();
    const agent = await b.connect(KEYS.texas1);
    for (let i = 1; i <= 12; i++) await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', `m${i}`, { qos: 1 });
    expect(await b.counter('hcp_broker_dropped_queued_messages_total', { reason: 'queue_full' })).toBe(7);

    const got: string[] = [];
    await b.connect(KEYS.viewer, dash, (_t, p) => got.push(p));
    // Aedes sends the queue while live messages flow; the live one waits for the queue here
    await waitFor(() => got.length >= 5, { message: 'the queued messages' });
    await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', 'live', { qos: 1 });
    await waitFor(() => got.includes('live'), { message: 'the live message after the queued ones' });
    expect(got).toEqual(['m8', 'm9', 'm10', 'm11', 'm12', 'live']);
  });

  it('forgets an offline session after sessionExpiryS, with its subscriptions and queue', async () => {
    b = await startBroker({ limits: { maxPacketBytes: 1024 * 1024, maxQueued: 1000, sessionExpiryS: 0.3 } });
    const viewer = await b.connect(KEYS.viewer, dash);
    await collect(viewer, 'hcp/v1/sites/+/telemetry');
    await viewer.endAsync();
    const agent = await b.connect(KEYS.texas1);
    for (let i = 1; i <= 3; i++) await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', `m${i}`, { qos: 1 });
    await waitFor(() => b.counter('hcp_broker_sessions_expired_total'), { message: 'the session expired' });
    expect(await b.counter('hcp_broker_dropped_queued_messages_total', { reason: 'session_expired' })).toBe(3);

    const got: string[] = [];
    const back = await b.connect(KEYS.viewer, dash, (_t, p) => got.push(p));
    expect(sessionPresent(back)).toBe(false);
    // subscribed anew: only what is published from now on arrives, nothing that was queued
    await collect(back, 'hcp/v1/sites/+/telemetry');
    await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', 'live', { qos: 1 });
    await waitFor(() => got.includes('live'));
    expect(got).toEqual(['live']);
  });

  it('keeps an online session and a returning one within the expiry', async () => {
    b = await startBroker({ limits: { maxPacketBytes: 1024 * 1024, maxQueued: 1000, sessionExpiryS: 3600 } });
    const viewer = await b.connect(KEYS.viewer, dash);
    await collect(viewer, 'hcp/v1/sites/+/telemetry');
    await viewer.endAsync();
    const back = await b.connect(KEYS.viewer, dash);
    expect(sessionPresent(back)).toBe(true);
  });
});

describe('embedded broker: the in-process subscriber', () => {
  let b: TestBroker;
  afterEach(() => b.close());

  it('reconnects through a fresh stream and keeps its persistent session', async () => {
    b = await startBroker();
    const ingest = await b.ingest();
    const agent = await b.connect(KEYS.texas1);
    await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', 'before', { qos: 1 });
    await waitFor(() => ingest.got.length === 1);
    const first = ingest.current;
    first!.destroy();
    await waitFor(() => b.broker.clients() === 1, { message: 'the broker saw ingest go' });
    // published while ingest is away: queued in its session, delivered when it is back
    await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', 'during', { qos: 1 });
    await waitFor(() => ingest.got.length === 2, { message: 'the queued batch after the reconnection' });
    expect(ingest.streams).toBe(2);
    expect(ingest.current).not.toBe(first);
    expect(ingest.got.map((m) => m.payload)).toEqual(['before', 'during']);
    expect(ingest.subscriber.connected()).toBe(true);
  });
});
