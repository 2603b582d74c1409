// The agent's MQTT publisher against a real Mosquitto that goes away and comes back: it
// reconnects by itself, each wait drawn under a ceiling that doubles from minBackoffMs (full
// jitter, so a fleet that lost its broker does not log in again in lockstep), the ceiling back to
// the start once a CONNACK comes, and it delivers again once connected.
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { INGEST_USER, startMosquitto, type Mosquitto } from '../../test/harness/mosquitto.js';
import { topics } from '../../proto/topics.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { createAgentMetrics } from '../metrics.js';
import { createPublisher, type Publisher } from './publisher.js';

const MIN = 100;
const MAX = 800;
let broker: Mosquitto;
let publisher: Publisher | undefined;

beforeAll(async () => {
  broker = await startMosquitto({ users: { 'texas-1': 'pw-texas-1' } });
});
afterAll(async () => {
  await publisher?.close();
  await broker?.close();
});

it('reconnects after the broker comes back, each wait under a doubling ceiling, the ceiling reset by a CONNACK', async () => {
  const waits: number[] = [];
  const lines = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) {
        const j = JSON.parse(l) as { msg: string; retryInMs?: number };
        if (j.msg === 'mqtt offline; spooling telemetry') waits.push(j.retryInMs!);
      }
      done();
    },
  });
  publisher = createPublisher({
    url: broker.url, login: { username: 'texas-1', password: 'pw-texas-1' }, site: 'texas-1', session: 'sess-0001',
    version: 'test', log: pino({ level: 'warn' }, lines), metrics: createAgentMetrics(), minBackoffMs: MIN, maxBackoffMs: MAX,
  });
  await waitFor(() => publisher!.connected() || undefined, { message: 'first connect' });

  await broker.stop();
  // the attempts while the broker is down: 0.1, 0.2, 0.4, then 0.8 s ceilings
  await waitFor(() => waits.length >= 6 || undefined, { timeoutMs: 20_000, message: 'six reconnect attempts' });
  await broker.start();
  await waitFor(() => publisher!.connected() || undefined, { timeoutMs: 20_000, message: 'reconnected' });
  const outage = waits.length;
  waits.forEach((w, k) => expect(w, `wait ${k}`).toBeLessThanOrEqual(Math.min(MAX, MIN * 2 ** k)));
  // drawn, not fixed: six waits all equal would be a fixed period
  expect(new Set(waits).size).toBeGreaterThan(1);

  // a second outage starts again from the first ceiling
  await broker.stop();
  await waitFor(() => waits.length > outage || undefined, { timeoutMs: 20_000, message: 'a wait in the second outage' });
  expect(waits[outage]).toBeLessThanOrEqual(MIN);
  await broker.start();
  await waitFor(() => publisher!.connected() || undefined, { timeoutMs: 20_000, message: 'reconnected again' });

  // and what it publishes now arrives
  const reader = await mqtt.connectAsync(broker.url, { username: INGEST_USER, password: broker.ingestPassword, reconnectPeriod: 0 });
  try {
    const got = new Promise<Buffer>((res) => reader.on('message', (_t, p) => res(p)));
    await reader.subscribeAsync(topics.telemetry('texas-1'), { qos: 1 });
    expect(publisher.publishBatch(Uint8Array.from([1, 2, 3]))).toBe(true);
    expect([...(await got)]).toEqual([1, 2, 3]);
  } finally {
    await reader.endAsync();
  }
});
