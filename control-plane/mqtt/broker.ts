// The embedded MQTT broker: Aedes behind a plain (mqtt://) and/or a TLS (mqtts://) listener, plus
// an in-process connection for the control plane's own subscriber. What each login may do is in
// acl.ts; CONNECT in login.ts; PUBLISH, SUBSCRIBE and delivery in authorize.ts; the bounded
// session store and session expiry in session-store.ts and sessions.ts; the packet size guard in
// packet-guard.ts. Nothing here is a module singleton: each createBroker is its own broker.
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import { createEmitter } from './emitter.js';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { ownerOf } from './acl.js';
import { createAuthorizer } from './authorize.js';
import { duplexPair } from './duplex-pair.js';
import { limitedLog } from './log-limit.js';
import { createLogin, type Authenticate } from './login.js';
import { guardSocket } from './packet-guard.js';
import { SessionStore } from './session-store.js';
import { createSessions } from './sessions.js';

export type { Authenticate } from './login.js';

export interface BrokerLimits {
  /** a packet (fixed header included) larger than this is refused at its header */
  maxPacketBytes: number;
  /** QoS>0 messages kept per persistent session; the oldest goes first */
  maxQueued: number;
  /** an offline persistent session is forgotten after this long */
  sessionExpiryS: number;
}

export interface BrokerTls {
  cert: Buffer;
  key: Buffer;
  /** client certificates are then required, and checked against this CA */
  clientCa?: Buffer;
  port: number;
}

export interface BrokerOptions {
  host: string;
  /** the plain mqtt:// listener's port (0 picks one) */
  port: number;
  /** keep the plain listener when TLS is on; default: plain only without TLS */
  plain?: boolean;
  tls?: BrokerTls;
  /** the key ring: the principal for this user name and key secret, or null */
  authenticate: Authenticate;
  /**
   * anonymous clients (no user name, no password) may read telemetry, status, market and grid,
   * and publish market and grid readings; the caller allows them only while every listener is
   * on loopback (Mosquitto 2.0's convention)
   */
  anonymous: boolean;
  /** a site's grid region: an agent may read its region's frequency */
  regionOf: (site: string) => string | undefined;
  limits: BrokerLimits;
  log: Logger;
  metrics: Metrics;
}

export interface Broker {
  /** the plain listener's port; undefined when TLS only */
  readonly port: number | undefined;
  readonly tlsPort: number | undefined;
  clients(): number;
  /** a new connection to the broker as the control plane's own service (see subscriber.ts) */
  connectInternal(): Duplex;
  /** closes every client logged in with this key and forgets its sessions; resolves with how many */
  disconnectKey(keyId: string): Promise<number>;
  /** idempotent */
  close(): Promise<void>;
}

export async function createBroker(o: BrokerOptions): Promise<Broker> {
  const warn = limitedLog(o.log);
  const internal = new WeakSet<object>();
  const remotes = new WeakMap<object, string>();
  const refusedFilters = new WeakSet<object>();
  const store = new SessionStore({
    maxQueued: o.limits.maxQueued,
    refused: refusedFilters,
    onDropped: (clientId, count, reason) => {
      o.metrics.brokerDroppedQueued.inc({ reason }, count);
      if (reason === 'queue_full') warn('queue_full', { client: clientId, dropped: count, maxQueued: o.limits.maxQueued }, 'persistent session queue full: oldest messages dropped');
    },
  });

  // bound below: the login and the sessions need each other's tables
  let aedes: Aedes | null = null;
  const liveClient = (clientId: string): Client | undefined => (aedes as unknown as { clients: Record<string, Client> } | null)?.clients[clientId];
  const sessions = createSessions({
    store,
    expiryMs: o.limits.sessionExpiryS * 1000,
    isOnline: (id) => liveClient(id) !== undefined,
    onExpired: (id) => {
      o.metrics.brokerSessionsExpired.inc();
      o.log.info({ client: id, afterS: o.limits.sessionExpiryS }, 'offline mqtt session expired');
    },
    onError: (err) => o.log.error({ err: err.message }, 'could not forget an mqtt session'),
  });
  const login = createLogin({
    anonymous: o.anonymous,
    authenticate: o.authenticate,
    isInternal: (conn) => typeof conn === 'object' && conn !== null && internal.has(conn),
    liveOwnerOf: (id) => {
      const c = liveClient(id);
      const who = c && login.identityOf(c);
      return who ? ownerOf(who) : undefined;
    },
    sessionOwnerOf: (id) => sessions.ownerOf(id),
    remoteOf: (conn) => (typeof conn === 'object' && conn !== null ? remotes.get(conn) : undefined),
    metrics: o.metrics,
    warn,
  });
  const authorizer = createAuthorizer({ identityOf: (c) => login.identityOf(c), regionOf: o.regionOf, refused: refusedFilters, metrics: o.metrics, warn });

  const broker = await Aedes.createBroker({
    id: 'hcp-control-plane',
    persistence: store,
    mq: createEmitter(),
    authenticate: login.handler,
    ...authorizer,
  });
  aedes = broker;
  broker.on('client', (client) => {
    const who = login.identityOf(client);
    if (who) sessions.online(client.id, ownerOf(who), client.clean);
  });
  broker.on('clientDisconnect', (client) => sessions.offline(client.id, client.clean));
  // Aedes closes the connection of a client that breaks the protocol (a wildcard or an empty topic
  // in a PUBLISH, an invalid filter, a packet it cannot parse): counted, so no refusal goes unseen
  const protocolError = (client: Client, err: Error & { code?: string }) => {
    const kind = protocolViolation(err);
    if (kind === 'publish') o.metrics.brokerRejected.inc({ reason: 'invalid_topic' });
    else if (kind === 'subscribe') o.metrics.brokerRefusedSubscriptions.inc({ reason: 'invalid_filter' });
    else if (kind === 'protocol') o.metrics.brokerRefusedConnections.inc({ reason: 'protocol_error' });
    if (kind) warn(`protocol:${kind}`, { client: client.id?.slice(0, 64) ?? null, err: err.message.slice(0, 200) }, 'mqtt protocol violation: connection closed');
  };
  broker.on('clientError', (client, err) => {
    o.log.debug({ client: client.id, err: err.message }, 'mqtt client error');
    protocolError(client, err);
  });
  broker.on('connectionError', (client, err) => {
    o.log.debug({ client: client.id, err: err.message }, 'mqtt connection error');
    protocolError(client, err);
  });

  /** every network connection passes the packet size guard before Aedes reads it */
  const handleNetwork = (socket: Socket | TLSSocket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const conn = guardSocket(socket, o.limits.maxPacketBytes, (r) => {
      if (r.reason === 'oversized') {
        o.metrics.brokerOversizedPackets.inc();
        warn('oversized', { remote, packetBytes: r.packetBytes, maxPacketBytes: o.limits.maxPacketBytes }, 'mqtt packet larger than the limit: connection cut at its header');
      } else {
        warn('malformed', { remote }, 'mqtt remaining length longer than four bytes: connection cut');
      }
    });
    remotes.set(conn, remote);
    broker.handle(conn);
  };

  const servers: Array<Server | TlsServer> = [];
  const sockets = new Set<Socket>();
  const track = (server: Server) =>
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  let port: number | undefined;
  let tlsPort: number | undefined;
  try {
    if (o.plain ?? !o.tls) {
      const server = track(createServer(handleNetwork));
      port = await listen(server, o.host, o.port);
      servers.push(server);
    }
    if (o.tls) {
      const mutual = o.tls.clientCa !== undefined;
      const server = createTlsServer(
        {
          cert: o.tls.cert,
          key: o.tls.key,
          minVersion: 'TLSv1.2',
          // mTLS: a client without a certificate signed by this CA fails the handshake
          ...(mutual ? { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
          handshakeTimeout: 10_000,
        },
        handleNetwork,
      );
      track(server);
      server.on('tlsClientError', (err, socket) => {
        o.metrics.brokerRefusedConnections.inc({ reason: 'tls' });
        warn('refused:tls', { reason: 'tls', remote: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message }, 'mqtts handshake failed');
      });
      tlsPort = await listen(server, o.host, o.tls.port);
      servers.push(server);
    }
  } catch (err) {
    for (const s of servers) s.close();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    sessions.close();
    throw err;
  }
  o.log.info({ host: o.host, port, tlsPort, mutualTls: !!o.tls?.clientCa, anonymous: o.anonymous, ...o.limits }, 'mqtt broker listening');

  let closing: Promise<void> | null = null;
  return {
    port,
    tlsPort,
    clients: () => broker.connectedClients,
    connectInternal() {
      const [ours, theirs] = duplexPair();
      if (closing) {
        ours.destroy(new Error('the broker is closed'));
        return ours;
      }
      internal.add(theirs);
      broker.handle(theirs);
      return ours;
    },
    async disconnectKey(keyId) {
      login.revokeInFlight(keyId);
      const clients = login.clientsOf(keyId);
      await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.close(() => resolve()))));
      await sessions.forgetOwnedBy(`key:${keyId}`);
      if (clients.length > 0) o.log.info({ key: keyId, clients: clients.length }, 'mqtt clients of a revoked key disconnected');
      return clients.length;
    },
    close() {
      closing ??= (async () => {
        const stopped = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        // what Aedes never saw: TLS handshakes under way, connections that sent nothing yet
        for (const s of sockets) s.destroy();
        await Promise.all(stopped);
        sessions.close();
      })();
      return closing;
    },
  };
}

/**
 * What kind of protocol violation an Aedes client error is, or null for the errors of a socket
 * (a client that vanished: ECONNRESET, EPIPE) and of a connection closed on purpose
 */
export function protocolViolation(err: Error & { code?: string }): 'publish' | 'subscribe' | 'protocol' | null {
  if (err.code !== undefined) return null; // system errors of the socket
  const m = err.message;
  if (/in PUBLISH|to publish|topic has too many levels/i.test(m)) return 'publish';
  if (/SUBSCRIBE|to subscribe/i.test(m)) return 'subscribe';
  if (/^(connection|client) (closed|disconnected)|keep ?alive|timeout|destroyed/i.test(m)) return null;
  return 'protocol';
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}
