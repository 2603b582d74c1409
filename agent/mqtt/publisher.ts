// Publishes telemetry batches (QoS 1) and the site's retained status. It keeps no queue of its
// own: every batch is in the agent's on-disk spool before it gets here (agent/spool/), and one
// the broker could not take now is sent again by the spool's forwarder once it is back.
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { encodeStatus, topics } from '../../proto/topics.js';
import { withoutPassword } from '../log.js';
import type { AgentMetrics } from '../metrics.js';

export interface Publisher {
  /** hands a batch to the broker (QoS 1); false, and nothing queued, while not connected */
  publishBatch(payload: Uint8Array): boolean;
  /**
   * Listens on a topic (QoS 0: a late frequency reading is worth nothing), kept across
   * reconnects. One listener per topic; a second call replaces it.
   */
  listen(topic: string, onMessage: (payload: Buffer) => void): void;
  unlisten(topic: string): void;
  connected(): boolean;
  /** publishes offline, then disconnects; idempotent */
  close(): Promise<void>;
}

export function createPublisher(o: {
  url: string;
  /** broker login, when it demands one */
  login?: { username: string; password: string };
  /** PEM material for mqtts:// */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  site: string;
  session: string;
  version: string;
  log: Logger;
  /** after every (re)connect: the forwarder re-sends what the broker missed */
  onConnect?: () => void;
  metrics: AgentMetrics;
  /** reconnect backoff: capped exponential with full jitter, from minBackoffMs doubling to maxBackoffMs */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}): Publisher {
  const status = (state: 'online' | 'offline') =>
    encodeStatus({ site: o.site, state, session: o.session, ts: new Date().toISOString(), agent_version: o.version });
  const client: MqttClient = mqtt.connect(o.url, {
    // Unique per session: two processes with one client id would disconnect each other in turn
    // (MQTT 3.1.1 §3.1.4-2); the status payload's session tells the control plane whose will it is.
    clientId: `hcp-agent-${o.site}-${o.session.slice(0, 8)}`,
    username: o.login?.username,
    password: o.login?.password,
    ...(o.tls ?? {}),
    clean: true,
    // Reconnects are this publisher's own (below): mqtt.js retries every reconnectPeriod, the
    // same for every agent, so a fleet that lost its broker came back in lockstep, thousands of
    // logins in the same second, every second, until the broker could take them.
    reconnectPeriod: 0,
    connectTimeout: 5000,
    keepalive: 15,
    // The broker publishes this if the agent vanishes without DISCONNECT (MQTT 3.1.1 §3.1.2.5).
    will: { topic: topics.status(o.site), payload: Buffer.from(status('offline')), qos: 1, retain: true },
    // The on-disk spool holds what the agent sends while offline; mqtt.js' own queue would grow
    // without bound.
    queueQoSZero: false,
    // mqtt-packet's cache of a Buffer for each of the 65,536 message ids: 6 MB of heap (a third of
    // an idle agent's) to save a 2-byte allocation per packet, of which the agent sends one a second
    writeCache: false,
  });
  // clean sessions: the broker forgets subscriptions on reconnect, so they are made again
  const listeners = new Map<string, (payload: Buffer) => void>();
  // A retained reading is history, not a signal: acting on it would trip every reconnect.
  client.on('message', (t, payload, packet) => {
    if (!packet.retain) listeners.get(t)?.(payload);
  });
  const subscribe = (t: string) =>
    client.subscribe(t, { qos: 0 }, (err) => {
      if (err) o.log.warn({ topic: t, err: err.message }, 'mqtt subscribe failed');
    });
  const topic = topics.telemetry(o.site);

  // Capped exponential backoff with full jitter (as agent/grpc/gateway-client.ts): a delay drawn
  // from [0, min(max, min·2^attempt)], the attempt count reset by a CONNACK.
  const minBackoff = o.minBackoffMs ?? 500;
  const maxBackoff = o.maxBackoffMs ?? 15_000;
  let attempt = 0;
  let retry: NodeJS.Timeout | null = null;
  let closing: Promise<void> | null = null;
  client.on('close', () => {
    o.metrics.mqttConnected.set(0);
    if (closing || retry) return;
    const delay = Math.round(Math.random() * Math.min(maxBackoff, minBackoff * 2 ** attempt));
    attempt = Math.min(attempt + 1, 16);
    o.log.warn({ url: withoutPassword(o.url), retryInMs: delay }, 'mqtt offline; spooling telemetry');
    retry = setTimeout(() => {
      retry = null;
      if (!closing) client.reconnect();
    }, delay);
  });

  client.on('connect', () => {
    attempt = 0;
    o.metrics.mqttConnected.set(1);
    o.log.info({ url: withoutPassword(o.url) }, 'mqtt connected');
    client.publish(topics.status(o.site), status('online'), { qos: 1, retain: true });
    for (const t of listeners.keys()) subscribe(t);
    o.onConnect?.();
  });
  client.on('error', (err) => o.log.warn({ err: err.message }, 'mqtt error'));

  return {
    publishBatch(payload) {
      if (closing || !client.connected) return false;
      // a failed publish needs nothing here: the batch stays in the spool until committed
      // A view, not a copy: every payload here is the caller's own fresh bytes (the tick's
      // encoding, a record read back from the spool) and nothing writes to it afterwards. The
      // copy was another 0.6 MB malloc'd and copied every second at 5,000 ASICs, held until V8
      // collected its wrapper.
      client.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 }, () => undefined);
      o.metrics.batchesPublished.inc();
      return true;
    },
    listen(t, onMessage) {
      const had = listeners.has(t);
      listeners.set(t, onMessage);
      if (!had && client.connected) subscribe(t);
    },
    unlisten(t) {
      if (listeners.delete(t) && client.connected) client.unsubscribe(t);
    },
    connected: () => client.connected,
    close() {
      closing ??= (async () => {
        if (retry) clearTimeout(retry);
        retry = null;
        if (client.connected) {
          await client.publishAsync(topics.status(o.site), status('offline'), { qos: 1, retain: true }).catch(() => undefined);
        }
        await client.endAsync();
      })();
      return closing;
    },
  };
}
