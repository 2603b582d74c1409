// A client that breaks the protocol has its connection closed by Aedes; the broker counts it, so
// no refusal goes unseen: a wildcard or empty topic in a PUBLISH, an invalid filter, a packet the
// broker cannot parse.
import { connect } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { protocolViolation } from '../control-plane/mqtt/broker.js';
import { KEYS, startBroker, type TestBroker } from './harness/mqtt-broker.js';
import { waitFor } from './harness/wait-for.js';

let b: TestBroker;
afterEach(() => b.close());

const closed = (c: { once(e: 'close', f: () => void): unknown }) => new Promise<void>((resolve) => c.once('close', () => resolve()));

it('counts a PUBLISH to a wildcard topic (connection closed) as a rejected publish', async () => {
  b = await startBroker();
  for (const topic of ['hcp/v1/sites/+/telemetry', '#']) {
    const c = await b.connect(KEYS.texas1);
    const gone = closed(c);
    void c.publishAsync(topic, 'x', { qos: 1 }).catch(() => {});
    await gone;
  }
  await waitFor(async () => (await b.counter('hcp_broker_rejected_publishes_total', { reason: 'invalid_topic' })) === 2, { message: 'both counted' });
});

it('counts an invalid filter (connection closed) as a refused subscription', async () => {
  b = await startBroker();
  const c = await b.connect(KEYS.viewer);
  const gone = closed(c);
  c.subscribe([''], { qos: 1 }, () => {});
  await gone;
  await waitFor(async () => (await b.counter('hcp_broker_refused_subscriptions_total', { reason: 'invalid_filter' })) === 1, { message: 'counted' });
});

it('counts a packet it cannot parse as a protocol error, and not a client that vanished', async () => {
  b = await startBroker();
  const { port } = b.broker;
  // a CONNECT, then a PUBLISH with reserved flag bits set on QoS 3
  const s = connect(port!, '127.0.0.1');
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  s.write(Buffer.from([0x10, 0x0f, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, 0x72, 0x61, 0x77, 0x36, 0x03, 0x00, 0x01, 0x61]));
  s.on('data', () => {});
  s.on('error', () => {});
  await closed(s);
  await waitFor(async () => (await b.counter('hcp_broker_refused_connections_total', { reason: 'protocol_error' })) === 1, { message: 'counted' });
  expect(protocolViolation(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBeNull();
});
