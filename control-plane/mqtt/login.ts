// CONNECT: who the client is, and whether it may connect with the client id it gave. The
// in-process subscriber is known by its stream; anyone else logs in with a platform key (user
// name mqttUsernameOf(principal), password the key secret) or, where the caller allows it, comes
// anonymous. Refusals answer with the CONNACK return codes of MQTT 3.1.1 §3.2.2.3.
import type { Client } from 'aedes';
import { mqttUsernameOf, type Principal } from '../auth/roles.js';
import type { Metrics } from '../metrics.js';
import { ANONYMOUS, describe, mayConnect, mayUseClientId, ownerOf, SERVICE, type Identity } from './acl.js';
import type { LimitedLog } from './log-limit.js';

export type Authenticate = (username: string, password: string) => Principal | null | Promise<Principal | null>;

type Done = (error: (Error & { returnCode: number }) | null, success: boolean | null) => void;

/** CONNACK return codes (MQTT 3.1.1 §3.2.2.3) */
const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

export type RefusalReason = 'bad_credentials' | 'anonymous' | 'not_authorized' | 'client_id' | 'client_id_in_use' | 'revoked' | 'auth_error';

export interface Login {
  handler(client: Client, username: string | undefined, password: Buffer | undefined, done: Done): void;
  identityOf(client: Client): Identity | undefined;
  /** logged-in clients of this key, connected or still connecting */
  clientsOf(keyId: string): Client[];
  /** a login of this key that is being checked right now is refused when the check returns */
  revokeInFlight(keyId: string): void;
}

export function createLogin(o: {
  anonymous: boolean;
  authenticate: Authenticate;
  isInternal: (conn: unknown) => boolean;
  /** the owner of the live client holding this id, if one is connected */
  liveOwnerOf: (clientId: string) => string | undefined;
  /** the owner of a persistent session with this id, online or not */
  sessionOwnerOf: (clientId: string) => string | undefined;
  remoteOf: (conn: unknown) => string | undefined;
  metrics: Metrics;
  warn: LimitedLog;
}): Login {
  // Weak, not deleted at close: Aedes checks a client's will against the ACL after its socket
  // has closed (lib/client.js close → authorizePublish).
  const identities = new WeakMap<Client, Identity>();
  const live = new Set<Client>();
  const inFlight = new Set<Set<string>>();

  const refuse = (client: Client, done: Done, returnCode: number, reason: RefusalReason, fields: Record<string, unknown>, msg: string) => {
    o.metrics.brokerRefusedConnections.inc({ reason });
    o.warn(`refused:${reason}`, { reason, returnCode, client: clip(client.id), remote: o.remoteOf(client.conn), ...fields }, msg);
    done(Object.assign(new Error(msg), { returnCode }), false);
  };

  const identify = async (client: Client, username: string | undefined, password: Buffer | undefined): Promise<Identity | 'anonymous' | 'bad_credentials' | 'revoked'> => {
    if (o.isInternal(client.conn)) return SERVICE;
    if (username === undefined && password === undefined) return o.anonymous ? ANONYMOUS : 'anonymous';
    if (username === undefined || password === undefined) return 'bad_credentials';
    const revoked = new Set<string>();
    inFlight.add(revoked);
    let p: Principal | null;
    try {
      p = await o.authenticate(username, password.toString('utf8'));
    } finally {
      inFlight.delete(revoked);
    }
    // the key ring may find a key by its secret alone: the name must be the key's too
    if (!p || mqttUsernameOf(p) !== username) return 'bad_credentials';
    if (revoked.has(p.keyId)) return 'revoked';
    return { kind: 'key', principal: p };
  };

  return {
    handler(client, username, password, done) {
      identify(client, username, password).then(
        (who) => {
          const user = { username: username === undefined ? null : clip(username) };
          if (who === 'anonymous') return refuse(client, done, NOT_AUTHORIZED, who, {}, 'anonymous MQTT clients are not allowed here');
          if (who === 'bad_credentials') return refuse(client, done, BAD_USERNAME_OR_PASSWORD, who, user, 'mqtt login refused: unknown key or wrong secret');
          if (who === 'revoked') return refuse(client, done, BAD_USERNAME_OR_PASSWORD, who, user, 'mqtt login refused: the key was revoked');
          if (!mayConnect(who)) return refuse(client, done, NOT_AUTHORIZED, 'not_authorized', describe(who), 'mqtt login refused: this role has nothing to do on MQTT');
          if (!mayUseClientId(who, client.id)) return refuse(client, done, IDENTIFIER_REJECTED, 'client_id', describe(who), 'mqtt client id refused: hcp- ids are bound to their login');
          // a second connection with the id takes the session over (§3.1.4-2): only its owner may
          const owner = ownerOf(who);
          const holder = o.liveOwnerOf(client.id) ?? o.sessionOwnerOf(client.id);
          if (holder !== undefined && holder !== owner) return refuse(client, done, IDENTIFIER_REJECTED, 'client_id_in_use', describe(who), 'mqtt client id refused: another login holds this session');
          // gone while the key ring answered: Aedes ignores the answer, and so does this table
          if (client.closed || client.conn.destroyed) return done(null, false);
          identities.set(client, who);
          live.add(client);
          client.conn.once('close', () => live.delete(client));
          done(null, true);
        },
        (err: Error) => {
          o.metrics.brokerRefusedConnections.inc({ reason: 'auth_error' });
          o.warn('refused:auth_error', { client: clip(client.id), err: err.message }, 'mqtt login check failed');
          // 3: server unavailable: the check itself failed, not the client's credentials
          done(Object.assign(new Error('login check failed'), { returnCode: 3 }), false);
        },
      );
    },
    identityOf: (client) => identities.get(client),
    clientsOf: (keyId) => [...live].filter((c) => {
      const who = identities.get(c);
      return who?.kind === 'key' && who.principal.keyId === keyId;
    }),
    revokeInFlight(keyId) {
      for (const s of inFlight) s.add(keyId);
    },
  };
}

/** what a client sent, bounded for a log line */
function clip(s: string | null | undefined): string | null {
  if (s === null || s === undefined) return null;
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}
