// The embedded MQTT broker (Aedes on TCP). Its publish ACL speaks the same topic module as the
// agent and ingest: a publish to a topic that module does not know is counted, logged, stripped
// of its retain flag (so it cannot squat in the retained store) and reaches no HCP subscriber.
// It is not refused with an error, because Aedes answers a refused publish by dropping the whole
// connection (MQTT 3.1.1 has no negative PUBACK), and a typo must not cut off a site's telemetry.
// With users (mqtt/acl.ts) a client must log in, and a publish its role may not make is treated
// the same way, but harder: it is moved under $hcp/forbidden/, where no HCP subscriber (nor any
// '#' subscriber) receives it.
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { parseMarketTopic } from '../../proto/market-topics.js';
import { parseTopic } from '../../proto/topics.js';
import type { Metrics } from '../metrics.js';
import { mayPublish, type MqttUsers, type Principal } from './acl.js';

export interface Broker {
  readonly port: number;
  readonly clients: () => number;
  close(): Promise<void>;
}

export async function createBroker(o: { host: string; port: number; log: Logger; metrics: Metrics; users?: MqttUsers }): Promise<Broker> {
  const aedes = await Aedes.createBroker({ id: 'hcp-control-plane' });
  const lastLogged = new Map<string, number>();
  /** logs once per key per 10 s, and for at most 1000 keys */
  const logSometimes = (key: string, fields: Record<string, unknown>, msg: string) => {
    const now = Date.now();
    if ((lastLogged.get(key) ?? 0) + 10_000 <= now && lastLogged.size < 1000) {
      lastLogged.set(key, now);
      o.log.warn(fields, msg);
    }
  };
  const principals = new WeakMap<object, Principal>();

  if (o.users) {
    const users = o.users;
    aedes.authenticate = (client, username, password, callback) => {
      const p = users.authenticate(username, password);
      if (!p) {
        o.metrics.brokerRejected.inc({ reason: 'bad_credentials' });
        logSometimes(`auth:${username ?? ''}`, { client: client.id, username: username ?? null }, 'mqtt login refused: unknown user or wrong token');
        // CONNACK 4: bad user name or password (MQTT 3.1.1 §3.2.2.3)
        return callback(Object.assign(new Error('bad user name or password'), { returnCode: 4 }) as never, false);
      }
      principals.set(client, p);
      callback(null, true);
    };
  }

  aedes.authorizePublish = (client, packet, callback) => {
    // Aedes' default: $SYS/ is the broker's own (aedes#597).
    if (packet.topic.startsWith('$SYS/')) return callback(new Error('$SYS/ topic is reserved'));
    // client is null for the broker's own publishes
    const p = client ? principals.get(client) : undefined;
    if (o.users && client && (!p || !mayPublish(p, packet.topic))) {
      o.metrics.brokerRejected.inc({ reason: 'forbidden' });
      logSometimes(`forbidden:${p?.username}:${packet.topic}`, { topic: packet.topic, client: client.id, username: p?.username, role: p?.role }, 'publish not allowed for this user: delivered to no one');
      packet.retain = false;
      packet.topic = `$hcp/forbidden/${packet.topic}`;
    } else if (!parseTopic(packet.topic) && !parseMarketTopic(packet.topic)) {
      o.metrics.brokerRejected.inc({ reason: 'unknown_topic' });
      packet.retain = false;
      logSometimes(packet.topic, { topic: packet.topic, client: client?.id }, 'publish to an unknown topic ignored');
    }
    callback(null);
  };
  aedes.on('clientError', (client, err) => o.log.debug({ client: client.id, err: err.message }, 'mqtt client error'));
  aedes.on('connectionError', (client, err) => o.log.debug({ client: client.id, err: err.message }, 'mqtt connection error'));

  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  o.log.info({ host: o.host, port }, 'mqtt broker listening');

  let closing: Promise<void> | null = null;
  return {
    port,
    clients: () => aedes.connectedClients,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close();
        aedes.close(() => resolve());
      });
      return closing;
    },
  };
}
