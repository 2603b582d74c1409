// The embedded MQTT broker (Aedes on TCP). Its publish ACL speaks the same topic module as the
// agent and ingest: a publish to a topic that module does not know is counted, logged, stripped
// of its retain flag (so it cannot squat in the retained store) and reaches no HCP subscriber.
// It is not refused with an error, because Aedes answers a refused publish by dropping the whole
// connection (MQTT 3.1.1 has no negative PUBACK), and a typo must not cut off a site's telemetry.
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { parseMarketTopic } from '../../proto/market-topics.js';
import { parseTopic } from '../../proto/topics.js';
import type { Metrics } from '../metrics.js';

export interface Broker {
  readonly port: number;
  readonly clients: () => number;
  close(): Promise<void>;
}

export async function createBroker(o: { host: string; port: number; log: Logger; metrics: Metrics }): Promise<Broker> {
  const aedes = await Aedes.createBroker({ id: 'hcp-control-plane' });
  const lastLogged = new Map<string, number>();

  aedes.authorizePublish = (client, packet, callback) => {
    // Aedes' default: $SYS/ is the broker's own (aedes#597).
    if (packet.topic.startsWith('$SYS/')) return callback(new Error('$SYS/ topic is reserved'));
    if (!parseTopic(packet.topic) && !parseMarketTopic(packet.topic)) {
      o.metrics.brokerRejected.inc({ reason: 'unknown_topic' });
      packet.retain = false;
      const now = Date.now();
      if ((lastLogged.get(packet.topic) ?? 0) + 10_000 <= now && lastLogged.size < 1000) {
        lastLogged.set(packet.topic, now);
        o.log.warn({ topic: packet.topic, client: client?.id }, 'publish to an unknown topic ignored');
      }
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
