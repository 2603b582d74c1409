// Ingest's MQTT client: subscribes to every site's telemetry and status, and to the market and
// grid feeds, and hands each message on. With the embedded broker it connects in-process through
// broker.connectInternal() (a fresh stream for every connect and reconnect), so it needs no login
// and no network peer can pose as it; with an external broker it dials a URL.
import type { Duplex } from 'node:stream';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import type { Logger } from 'pino';
import { marketTopics } from '../../proto/market-topics.js';
import { topics } from '../../proto/topics.js';

export interface Subscriber {
  connected(): boolean;
  close(): Promise<void>;
}

export type SubscriberTransport =
  /** the embedded broker: called for the first connection and again for every reconnection */
  | { stream: () => Duplex }
  /** an external broker (HCP_BROKER=external) */
  | { url: string; username?: string; password?: string; tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } };

export async function createSubscriber(o: {
  transport: SubscriberTransport;
  clientId: string;
  log: Logger;
  onMessage: (topic: string, payload: Buffer, retained: boolean) => void;
}): Promise<Subscriber> {
  const options: IClientOptions = {
    clientId: o.clientId,
    // A persistent session (clean=false) with QoS 1 subscriptions: batches published while this
    // subscriber reconnects are queued by the broker, not lost (MQTT 3.1.1 §3.1.2.4).
    clean: false,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
  };
  const t = o.transport;
  const where = 'stream' in t ? 'the embedded broker' : t.url;
  const client: MqttClient =
    'stream' in t
      ? // MqttClient calls the builder at every connect, so each reconnection gets a new stream
        new MqttClient(() => t.stream(), { ...options, protocolId: 'MQTT', protocolVersion: 4 })
      : mqtt.connect(t.url, { ...options, username: t.username, password: t.password, ...(t.tls ?? {}) });
  client.on('message', (topic, payload, packet) => o.onMessage(topic, payload, packet.retain));
  client.on('connect', () => {
    o.log.info({ broker: where }, 'ingest subscribed');
    // Feeds at QoS 0: a price or frequency reading queued while the control plane was away is
    // history, and a stale low frequency must not curtail a recovered grid.
    const subs = { [topics.allTelemetry]: { qos: 1 as const }, [topics.allStatus]: { qos: 1 as const }, [marketTopics.allMarket]: { qos: 0 as const }, [marketTopics.allGrid]: { qos: 0 as const } };
    client.subscribe(subs, (err, _granted, suback) => {
      // mqtt.js reports a refused filter (SUBACK 0x80, MQTT 3.1.1 §3.9.3) as an error too
      if (err) o.log.error({ err: err.message, filters: Object.keys(subs), granted: suback?.granted ?? (err as { packet?: { granted?: unknown } }).packet?.granted }, 'ingest subscribe failed');
    });
  });
  client.on('error', (err) => o.log.warn({ err: err.message }, 'ingest mqtt error'));
  client.on('offline', () => o.log.warn('ingest mqtt offline'));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.end(true);
      reject(new Error(`could not connect to the MQTT broker at ${where} within 10 s`));
    }, 10_000);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  let closing: Promise<void> | null = null;
  return {
    connected: () => client.connected,
    close() {
      closing ??= client.endAsync().then(() => undefined);
      return closing;
    },
  };
}
