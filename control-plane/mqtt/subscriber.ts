// Ingest's MQTT client: subscribes to every site's telemetry and status, and to the market and
// grid feeds, and hands each message on. With the embedded broker it connects in-process through
// broker.connectInternal() (a fresh stream for every connect and reconnect), so it needs no login
// and no network peer can pose as it; with an external broker (HCP_BROKER=external) it dials a
// URL and logs in with its own credential (HCP_MQTT_USERNAME, HCP_MQTT_PASSWORD_FILE).
//
// Several replicas on one external broker (docs/scaling.md): each has its own client id and a
// persistent MQTT 5 session (session expiry, clean start off), so QoS 1 messages published while
// it is briefly away are queued for it (MQTT 5.0 §3.1.2.11, §4.1). Telemetry is taken through a
// shared subscription, `$share/<group>/hcp/v1/sites/+/telemetry` (MQTT 5.0 §4.8.2): the broker
// gives each batch to one member of the group, so ingest spreads across the replicas and a batch
// is stored once. Status and the feeds are plain subscriptions: every replica keeps its own
// registry and price book, so every replica must see them. So must it every batch for its live
// view (the leader's reconciler acts on what the whole fleet's devices do): with a share group a
// second client, `<client id>-live`, takes the plain telemetry filter at QoS 0 with a clean
// session (a reading missed while away is history) and hands it to onLive.
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
  | {
      url: string;
      username?: string;
      password?: string;
      tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
      /** telemetry through `$share/<shareGroup>/…` (MQTT 5 shared subscription); none = a plain subscription */
      shareGroup?: string;
      /** the broker keeps this session this long while the subscriber is away (MQTT 5 Session Expiry Interval) */
      sessionExpiryS?: number;
    };

/** the subscriptions, by filter: telemetry shared when a group is given, the rest plain */
export function subscriptionsOf(shareGroup?: string): Record<string, { qos: 0 | 1 }> {
  const telemetry = shareGroup ? sharedFilter(shareGroup, topics.allTelemetry) : topics.allTelemetry;
  // Feeds at QoS 0: a price or frequency reading queued while the control plane was away is
  // history, and a stale low frequency must not curtail a recovered grid.
  return { [telemetry]: { qos: 1 }, [topics.allStatus]: { qos: 1 }, [marketTopics.allMarket]: { qos: 0 }, [marketTopics.allGrid]: { qos: 0 } };
}

/** `$share/<group>/<filter>`; a group name may not hold '/', '+' or '#' (MQTT 5.0 §4.8.2) */
export function sharedFilter(group: string, filter: string): string {
  if (!/^[^/+#\s]+$/.test(group)) throw new Error(`invalid shared subscription group ${JSON.stringify(group)}`);
  return `$share/${group}/${filter}`;
}

export async function createSubscriber(o: {
  transport: SubscriberTransport;
  clientId: string;
  log: Logger;
  onMessage: (topic: string, payload: Buffer, retained: boolean) => void;
  /** with a share group: every site's telemetry, for the live view only */
  onLive?: (topic: string, payload: Buffer) => void;
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
  const shareGroup = 'stream' in t ? undefined : t.shareGroup;
  const client: MqttClient =
    'stream' in t
      ? // MqttClient calls the builder at every connect, so each reconnection gets a new stream
        new MqttClient(() => t.stream(), { ...options, protocolId: 'MQTT', protocolVersion: 4 })
      : mqtt.connect(t.url, {
          ...options,
          // MQTT 5: shared subscriptions are in the standard, and a clean start off needs a
          // session expiry, else the broker ends the session at disconnect (MQTT 5.0 §3.1.2.11.2)
          protocolVersion: 5,
          properties: { sessionExpiryInterval: t.sessionExpiryS ?? 3600 },
          username: t.username,
          password: t.password,
          ...(t.tls ?? {}),
        });
  client.on('message', (topic, payload, packet) => o.onMessage(topic, payload, packet.retain));
  const subs = subscriptionsOf(shareGroup);
  // start resolves once the first SUBACK is in: a batch published after that reaches ingest
  let firstSubscribed: (() => void) | null = null;
  client.on('connect', (connack) => {
    client.subscribe(subs, (err, granted, suback) => {
      if (!err) o.log.info({ broker: where, clientId: o.clientId, shareGroup: shareGroup ?? null, sessionPresent: connack.sessionPresent }, 'ingest subscribed');
      firstSubscribed?.();
      firstSubscribed = null;
      // mqtt.js reports a refused filter (SUBACK 0x80, MQTT 3.1.1 §3.9.3) as an error too;
      // MQTT 5 reason codes of 0x80 and above are refusals too (MQTT 5.0 §3.9.3)
      const refused = (granted ?? []).filter((g) => g.qos >= 0x80).map((g) => g.topic);
      if (err || refused.length) o.log.error({ err: err?.message, refused, filters: Object.keys(subs), granted: suback?.granted ?? (err as { packet?: { granted?: unknown } } | undefined)?.packet?.granted }, 'ingest subscribe failed');
    });
  });
  client.on('error', (err) => o.log.warn({ err: err.message }, 'ingest mqtt error'));
  client.on('offline', () => o.log.warn('ingest mqtt offline'));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (!('stream' in t)) {
        // An external broker that is away (an outage, a restart) is waited out, as the agents
        // do: the control plane serves, /ready says broker false, and ingest subscribes once
        // the broker is back; the agents' spools hold the telemetry meanwhile.
        o.log.warn({ broker: where }, 'the MQTT broker is unreachable; ingest keeps trying');
        client.removeListener('error', refused);
        firstSubscribed = null;
        return resolve();
      }
      client.end(true);
      reject(new Error(`could not connect to the MQTT broker at ${where} within 10 s`));
    }, 10_000);
    firstSubscribed = () => {
      clearTimeout(timer);
      client.removeListener('error', refused);
      resolve();
    };
    // A broker that refuses the login will refuse it at every retry: say so at once. CONNACK
    // 4/5 (MQTT 3.1.1 §3.2.2.3) and 134/135 (MQTT 5.0 §3.2.2.2: bad user name or password, not
    // authorized).
    const refused = (err: Error & { code?: number }) => {
      if (![4, 5, 134, 135].includes(err.code ?? -1)) return;
      clearTimeout(timer);
      client.end(true);
      reject(new Error(`the MQTT broker at ${where} refused ingest's login${'stream' in t ? '' : ` as ${JSON.stringify(t.username ?? '')}`}: ${err.message} (HCP_MQTT_USERNAME, HCP_MQTT_PASSWORD_FILE)`));
    };
    client.on('error', refused);
  });
  const live = shareGroup && o.onLive && !('stream' in t) ? liveClient(t, o.clientId, o.log, o.onLive) : null;
  let closing: Promise<void> | null = null;
  return {
    connected: () => client.connected,
    close() {
      closing ??= Promise.all([client.endAsync(), live?.endAsync()]).then(() => undefined);
      return closing;
    },
  };
}

/** the live view's client: plain telemetry at QoS 0, clean session; it never holds up the start */
function liveClient(t: Extract<SubscriberTransport, { url: string }>, clientId: string, log: Logger, onLive: (topic: string, payload: Buffer) => void): MqttClient {
  const id = `${clientId}-live`;
  const client = mqtt.connect(t.url, {
    clientId: id, clean: true, reconnectPeriod: 1000, connectTimeout: 10_000, protocolVersion: 5, username: t.username, password: t.password, ...(t.tls ?? {}),
  });
  client.on('message', (topic, payload) => onLive(topic, payload));
  client.on('connect', () => {
    client.subscribe({ [topics.allTelemetry]: { qos: 0 } }, (err, granted) => {
      const refused = (granted ?? []).filter((g) => g.qos >= 0x80).map((g) => g.topic);
      if (err || refused.length) log.error({ err: err?.message, refused, clientId: id }, 'live-view subscribe failed');
      else log.info({ clientId: id }, 'live view subscribed');
    });
  });
  client.on('error', (err) => log.warn({ err: err.message, clientId: id }, 'live-view mqtt error'));
  return client;
}
