// PUBLISH, SUBSCRIBE and delivery, checked against acl.ts for the client's identity.
//
// A publish that may not be made is not refused with an error: Aedes answers a refused publish
// by dropping the whole connection (MQTT 3.1.1 has no negative PUBACK), and one wrong topic must
// not cut a site's telemetry off. It is acknowledged, counted, logged, stripped of its retain
// flag (so it cannot squat in the retained store) and moved under $hcp/forbidden/ (or
// $hcp/unknown/ for a topic HCP does not know), where no one can subscribe.
import type { AuthorizeForwardHandler, AuthorizePublishHandler, AuthorizeSubscribeHandler, Client } from 'aedes';
import type { Metrics } from '../metrics.js';
import { describe, FORBIDDEN_PREFIX, mayReceive, publishVerdict, subscribeVerdict, UNKNOWN_PREFIX, type Identity } from './acl.js';
import type { LimitedLog } from './log-limit.js';

export function createAuthorizer(o: {
  identityOf: (client: Client) => Identity | undefined;
  regionOf: (site: string) => string | undefined;
  /** filters refused in a SUBSCRIBE packet: the session store must not persist them */
  refused: WeakSet<object>;
  metrics: Metrics;
  warn: LimitedLog;
}): { authorizePublish: AuthorizePublishHandler; authorizeSubscribe: AuthorizeSubscribeHandler; authorizeForward: AuthorizeForwardHandler } {
  return {
    authorizePublish(client, packet, callback) {
      // null for the broker's own publishes ($SYS/ heartbeats) and wills it replays
      if (!client) return callback(null);
      const who = o.identityOf(client);
      const verdict = who ? publishVerdict(who, packet.topic) : 'forbidden';
      if (verdict !== 'allow') {
        o.metrics.brokerRejected.inc({ reason: verdict === 'forbidden' ? 'forbidden' : 'unknown_topic' });
        o.warn(
          `publish:${verdict}`,
          { topic: clip(packet.topic), client: clip(client.id), ...(who ? describe(who) : {}) },
          verdict === 'forbidden' ? 'publish not allowed for this login: delivered to no one' : 'publish to a topic HCP does not know: delivered to no one',
        );
        packet.retain = false;
        packet.topic = `${verdict === 'forbidden' ? FORBIDDEN_PREFIX : UNKNOWN_PREFIX}${packet.topic}`;
      }
      callback(null);
    },

    authorizeSubscribe(client, sub, callback) {
      const who = o.identityOf(client);
      const verdict = who ? subscribeVerdict(who, sub.topic, o.regionOf) : 'forbidden';
      if (verdict !== 'allow') {
        o.refused.add(sub);
        o.metrics.brokerRefusedSubscriptions.inc({ reason: verdict });
        o.warn(`subscribe:${verdict}`, { filter: clip(sub.topic), client: clip(client.id), ...(who ? describe(who) : {}) }, 'subscription refused (SUBACK 0x80)');
      }
      // Answered on the next tick, so that every filter of the packet is judged (and a refused
      // one marked) before Aedes stores the packet's filters for a persistent session.
      process.nextTick(callback, null, verdict === 'allow' ? sub : null);
    },

    authorizeForward(client, packet) {
      const who = o.identityOf(client);
      return who && mayReceive(who, packet.topic, o.regionOf) ? packet : null;
    },
  };
}

function clip(s: string): string {
  return s.length > 128 ? `${s.slice(0, 128)}…` : s;
}
