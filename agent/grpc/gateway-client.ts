// The agent's side of hcp.v1.AgentGateway/Connect. The agent dials out (no inbound port at the
// site), says Hello with its inventory, heartbeats at the interval the control plane sets, and
// on any end or error reconnects with capped exponential backoff and full jitter, so a thousand
// sites do not stampede a restarted control plane. With several replicas' addresses
// (host:port,host:port…) it dials the first and, on every reconnect, the next in turn, so an
// agent whose replica died finds a survivor (commands reach it via whichever replica holds its
// stream: control-plane/commands/bus.ts).
import { credentials, Metadata, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AgentGatewayClient, type AgentMessage, type ControlMessage, type Hello } from '../../proto/gen/hcp/v1/gateway.js';
import type { AgentMetrics } from '../metrics.js';

export interface GatewayClient {
  connected(): boolean;
  /** writes to the open stream; false when there is none (the control plane redelivers) */
  send(m: AgentMessage): boolean;
  close(): Promise<void>;
}

/** PEM material for TLS; without it the channel is plaintext */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface GatewayClientOptions {
  /** host:port, or host:port,host:port… (tried in turn, one per reconnect) */
  address: string;
  /** the site's credential, sent as `authorization: Bearer` metadata */
  token?: string;
  /** TLS to the control plane (grpcs); plaintext when absent */
  tls?: ClientTls;
  hello: () => Hello;
  /** devices read in the last tick, for heartbeats */
  health: () => { reporting: number; total: number };
  log: Logger;
  metrics: AgentMetrics;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** commands arrive here (the commands issue) */
  onControl?: (m: ControlMessage) => void;
}

/** the addresses of `host:port,host:port…`, in order, without blanks */
export function gatewayAddresses(address: string): string[] {
  return address.split(',').map((a) => a.trim()).filter((a) => a.length > 0);
}

/** the gRPC channel's reconnect backoff (grpc.initial_reconnect_backoff_ms, grpc.max_reconnect_backoff_ms) */
const CHANNEL_BACKOFF_MIN_MS = 500;
const CHANNEL_BACKOFF_MAX_MS = 2_000;

export function createGatewayClient(o: GatewayClientOptions): GatewayClient {
  const creds = o.tls ? credentials.createSsl(o.tls.ca ?? null, o.tls.key ?? null, o.tls.cert ?? null) : credentials.createInsecure();
  const addresses = gatewayAddresses(o.address);
  const clients = addresses.map((a) => new AgentGatewayClient(a, creds, {
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    // The channel's own reconnect backoff (grpc-js: 1 s growing 1.6× to 120 s) is capped: a
    // stream opened while the channel waits out its backoff fails at once with the last error,
    // so after a 2-minute control-plane outage an agent kept failing for another minute while
    // the control plane was back (seen by hand on npm start). This client's own jittered
    // backoff below paces the streams; the channel only has to be ready when it asks.
    'grpc.initial_reconnect_backoff_ms': CHANNEL_BACKOFF_MIN_MS,
    'grpc.max_reconnect_backoff_ms': CHANNEL_BACKOFF_MAX_MS,
  }));
  // the replica dialled next; moves on at every reconnect
  let at = 0;
  const minBackoff = o.minBackoffMs ?? 500;
  const maxBackoff = o.maxBackoffMs ?? 15_000;
  let attempt = 0;
  let stream: ClientDuplexStream<AgentMessage, ControlMessage> | null = null;
  let acked = false;
  let heartbeat: NodeJS.Timeout | null = null;
  let retry: NodeJS.Timeout | null = null;
  let closed = false;
  let seq = 0;

  const stopHeartbeat = () => {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
  };

  const scheduleReconnect = (why: string) => {
    stopHeartbeat();
    acked = false;
    o.metrics.grpcConnected.set(0);
    stream = null;
    if (closed || retry) return;
    at = (at + 1) % clients.length;
    const ceiling = Math.min(maxBackoff, minBackoff * 2 ** attempt);
    const delay = Math.round(Math.random() * ceiling);
    attempt = Math.min(attempt + 1, 16);
    o.log.warn({ why, retryInMs: delay, next: addresses[at] }, 'control plane stream down');
    retry = setTimeout(() => {
      retry = null;
      open();
    }, delay);
  };

  const open = () => {
    if (closed) return;
    const md = new Metadata();
    if (o.token) md.set('authorization', `Bearer ${o.token}`);
    const s = clients[at]!.connect(md);
    stream = s;
    s.on('data', (m: ControlMessage) => {
      if (m.body?.$case === 'helloAck') {
        const every = Math.max(200, m.body.value.heartbeatIntervalMs || 5000);
        acked = true;
        attempt = 0;
        o.metrics.grpcConnected.set(1);
        o.log.info({ heartbeatMs: every, devicesRegistered: m.body.value.devicesRegistered, address: addresses[at] }, 'control plane connected');
        stopHeartbeat();
        o.onControl?.(m);
        heartbeat = setInterval(() => {
          const h = o.health();
          s.write({ body: { $case: 'heartbeat', value: { seq: ++seq, tsMs: Date.now(), devicesReporting: h.reporting, devicesTotal: h.total } } });
        }, every);
        return;
      }
      o.onControl?.(m);
    });
    s.on('error', (err: ServiceError) => {
      if (stream !== s) return;
      const reason = err.metadata?.get('hcp-reason')?.[0];
      if ([status.INVALID_ARGUMENT, status.NOT_FOUND, status.ALREADY_EXISTS, status.UNAUTHENTICATED, status.PERMISSION_DENIED].includes(err.code)) {
        o.log.error({ code: err.code, reason, details: err.details }, 'control plane refused this agent');
        // Retrying at once cannot help; wait the longest backoff.
        attempt = 16;
      }
      scheduleReconnect(`${status[err.code] ?? err.code}${reason ? ` (${reason})` : ''}: ${err.details}`);
    });
    s.on('end', () => {
      if (stream === s) scheduleReconnect('stream ended');
    });
    s.write({ body: { $case: 'hello', value: o.hello() } });
  };

  open();

  return {
    connected: () => acked,
    send(m) {
      if (!stream || !acked) return false;
      stream.write(m);
      return true;
    },
    async close() {
      if (closed) return;
      closed = true;
      stopHeartbeat();
      if (retry) clearTimeout(retry);
      const s = stream;
      stream = null;
      if (s) {
        s.end();
        s.cancel();
      }
      for (const c of clients) c.close();
      o.metrics.grpcConnected.set(0);
    },
  };
}
