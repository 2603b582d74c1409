// Ingest's MQTT client: subscribes to every site's telemetry and status on the broker (the
// embedded Aedes or any external one) and hands each message to ingest.
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { marketTopics } from '../../proto/market-topics.js';
import { topics } from '../../proto/topics.js';

export interface Subscriber {
  connected(): boolean;
  close(): Promise<void>;
}

export async function createSubscriber(o: {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  log: Logger;
  onMessage: (topic: string, payload: Buffer, retained: boolean) => void;
}): Promise<Subscriber> {
  const client: MqttClient = mqtt.connect(o.url, {
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    // A persistent session (clean=false) with QoS 1 subscriptions: batches published while this
    // subscriber reconnects are queued by the broker, not lost (MQTT 3.1.1 §3.1.2.4).
    clean: false,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
  });
  client.on('message', (topic, payload, packet) => o.onMessage(topic, payload, packet.retain));
  client.on('connect', () => {
    o.log.info({ url: o.url }, 'ingest subscribed');
    // Feeds at QoS 0: a price or frequency reading queued while the control plane was away is
    // history, and a stale low frequency must not curtail a recovered grid.
    const subs = { [topics.allTelemetry]: { qos: 1 as const }, [topics.allStatus]: { qos: 1 as const }, [marketTopics.allMarket]: { qos: 0 as const }, [marketTopics.allGrid]: { qos: 0 as const } };
    client.subscribe(subs, (err) => {
      if (err) o.log.error({ err }, 'subscribe failed');
    });
  });
  client.on('error', (err) => o.log.warn({ err: err.message }, 'ingest mqtt error'));
  client.on('offline', () => o.log.warn('ingest mqtt offline'));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`could not connect to the MQTT broker at ${o.url} within 10 s`)), 10_000);
    client.once('connect', () => {
      clearTimeout(t);
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
