// hcp.v1.AgentGateway/Connect: the long-lived stream each agent opens. The stream carries the
// site's credential (`authorization: Bearer <token>` metadata, an agent key bound to one site);
// without a valid one it is refused before a message is read. The first message must be a Hello
// for the credential's own site, claiming no device another site owns; the control plane
// answers with a HelloAck that sets the heartbeat interval (the server sets it, as Nomad's
// does). A newer stream with the same credential replaces an older one (a restarted agent); a
// stream with another credential for a site that has a live agent is refused. Revoking the
// credential closes its stream. Right after the HelloAck, and whenever it rises, the agent is
// told how far its telemetry is committed (TelemetryCommitted; control-plane/ingest/commit-notifier.ts).
//
// What agents say is told on the event stream (control-plane/events.ts): site.connected,
// site.disconnected, agent.ack, agent.result, agent.grid_trip, agent.desired_held. The open
// streams are kept in an AgentStreams (below), made before the gateway, so the command bus can
// send down them without needing the gateway: construction stays one-way.
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  AgentGatewayService,
  DeviceKind,
  type AgentGatewayServer,
  type AgentMessage,
  type ControlMessage,
  type Hello,
} from '../../proto/gen/hcp/v1/gateway.js';
import type { ArmGridTrip } from '../../proto/gen/hcp/v1/commands.js';
import { isValidSiteId } from '../../proto/topics.js';
import type { Db } from '../db/client.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { CommitNotifier } from '../ingest/commit-notifier.js';
import type { EventStream } from '../events.js';
import { createHelloWriter, HelloRefusedError } from '../db/hello-writer.js';
import { audit, insertSite } from '../db/registry-store.js';
import type { KeyRing } from '../auth/key-ring.js';
import type { Principal } from '../auth/roles.js';
import { principalOfMetadata } from './auth.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { RegistryTracker } from '../registry/tracker.js';
import { isMalformed, malformedReason, withoutNul } from './malformed.js';
import { grpcError } from './status.js';

type Stream = ServerDuplexStream<AgentMessage, ControlMessage>;

interface OpenStream {
  session: string;
  keyId: string;
  stream: Stream;
  lastSeenMs: number;
}

/** the agent streams that are open, one per site: the gateway fills it, the command bus sends down it */
export function createAgentStreams() {
  const open = new Map<string, OpenStream>();
  return {
    open,
    /** sends to a site's open stream; false when the site has none */
    send(siteId: string, msg: ControlMessage): boolean {
      const s = open.get(siteId);
      if (!s) return false;
      return s.stream.write(msg) || true;
    },
    connectedSites: () => [...open.keys()],
  };
}

export type AgentStreams = ReturnType<typeof createAgentStreams>;

export interface GatewayDeps {
  /** what agents say is told here */
  events: EventStream;
  /** the streams it keeps (made by the caller so the command bus can exist first); its own when absent */
  streams?: AgentStreams;
  /** the under-frequency trip to arm at the site's agent on connect (grid/grid-response.ts) */
  gridTripFor?(siteId: string): ArmGridTrip | undefined;
  registry: Registry;
  tracker: RegistryTracker;
  db: Db;
  log: Logger;
  metrics: Metrics;
  heartbeatMs: number;
  /** development only: a credential's site that does not exist yet is created by its Hello */
  autoRegisterSites: boolean;
  ring: KeyRing;
  maxDevicesPerSite: number;
  maxSites: number;
  helloTimeoutMs?: number;
  /** tells the agents how far their telemetry is committed; none: not told */
  commits?: CommitNotifier;
  /**
   * the write-behind audit log (db/audit-writer.ts): each Hello's entry goes in its batches. Absent,
   * it is one INSERT of its own, awaited before the HelloAck: a third statement per Hello, two
   * round trips, while thousands of agents log in at once (bench:curtail --agents 5000).
   */
  audit?: AuditWriter;
}

const DEVICE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SESSION = /^[A-Za-z0-9._:-]{1,64}$/;

/** every problem with a hello, or none */
export function checkHello(h: Hello, maxDevices = 20_000): string[] {
  const problems: string[] = [];
  if (!isValidSiteId(h.siteId)) problems.push(`site_id ${JSON.stringify(h.siteId)} is not a valid site id`);
  if (!SESSION.test(h.agentSession)) problems.push('agent_session must be 1-64 of A-Z a-z 0-9 . _ : -');
  if (h.agentVersion.length > 64 || h.hostname.length > 255 || /\0/.test(h.agentVersion + h.hostname)) problems.push('agent_version or hostname is too long or holds NUL');
  if (h.spool && (h.spool.stream.length > 128 || h.spool.stream.includes('\u0000'))) problems.push('spool.stream is longer than 128 characters or holds NUL');
  if (h.devices.length > maxDevices) problems.push(`more than ${maxDevices} devices (HCP_MAX_DEVICES_PER_SITE)`);
  const seen = new Set<string>();
  for (const d of h.devices) {
    if (!DEVICE_ID.test(d.id)) problems.push(`device id ${JSON.stringify(d.id)} is invalid`);
    // stored as text: PostgreSQL takes no NUL, and nothing here needs more than 255 characters
    if ([d.model, d.endpoint, d.serial, d.driver].some((f) => f.length > 255 || f.includes('\u0000'))) problems.push(`device ${JSON.stringify(d.id.slice(0, 128))}: model, endpoint, serial or driver is too long or holds NUL`);
    else if (seen.has(d.id)) problems.push(`device id ${d.id} appears twice`);
    seen.add(d.id);
    if (d.kind !== DeviceKind.DEVICE_KIND_GPU && d.kind !== DeviceKind.DEVICE_KIND_ASIC) problems.push(`device ${d.id} has no kind`);
    if (problems.length > 20) break;
  }
  return problems;
}

export function createAgentGateway(deps: GatewayDeps) {
  const { registry, log, metrics } = deps;
  const agentStreams = deps.streams ?? createAgentStreams();
  const streams = agentStreams.open;
  const { events } = deps;
  // A stream that has not heartbeated for this long belongs to an agent that is gone (a crashed
  // host behind NAT can leave a half-open TCP connection for minutes); a new agent may take over.
  const staleMs = deps.heartbeatMs * 3;
  // Hellos arriving together (a fleet reconnecting after a restart) share one statement
  const saveHello = createHelloWriter(deps.db);

  const reject = (stream: Stream, code: status, reason: string, details: string) => {
    metrics.agentMessagesRejected.inc({ reason });
    stream.emit('error', grpcError(code, reason, details));
  };

  const connect = (stream: Stream) => {
    let site: string | null = null;
    let session = '';
    // The credential is checked before any message is read: an unauthenticated peer costs one
    // hash and one map lookup.
    const principal = principalOfMetadata(deps.ring, stream.metadata);
    if (!principal) {
      const reason = stream.metadata.get('authorization').length ? 'bad_key' : 'missing_key';
      return reject(stream, status.UNAUTHENTICATED, reason, 'an agent stream needs its site credential: authorization: Bearer <token> metadata');
    }
    if (principal.role !== 'agent') {
      return reject(stream, status.PERMISSION_DENIED, 'not_an_agent_key', `key ${principal.name} is a ${principal.role} key, not a site credential`);
    }
    // Under mTLS the client certificate names its site (CN = site id, npm run certs --client):
    // a certificate and a credential of different sites are refused together.
    const cn = stream.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
    if (cn !== undefined && cn !== principal.siteId) {
      return reject(stream, status.PERMISSION_DENIED, 'certificate_site_mismatch', `the client certificate is ${cn}'s; the credential is ${principal.siteId}'s`);
    }
    const helloTimer = setTimeout(() => {
      if (!site) reject(stream, status.DEADLINE_EXCEEDED, 'no_hello', 'no Hello within the deadline');
    }, deps.helloTimeoutMs ?? 10_000);

    const onHello = async (h: Hello, p: Principal) => {
      const problems = checkHello(h, deps.maxDevicesPerSite);
      if (problems.length) return reject(stream, status.INVALID_ARGUMENT, 'invalid_hello', problems.join('; '));
      if (h.siteId !== p.siteId) {
        log.warn({ credentialSite: p.siteId, helloSite: h.siteId, key: p.name, hostname: h.hostname }, 'hello for another site refused');
        return reject(stream, status.PERMISSION_DENIED, 'site_mismatch', `this credential is ${p.siteId}'s; it cannot speak for ${h.siteId}`);
      }
      const claimed = h.devices.filter((dv) => {
        const owner = registry.device(dv.id)?.siteId;
        return owner !== undefined && owner !== h.siteId;
      });
      if (claimed.length) {
        log.warn({ site: h.siteId, devices: claimed.slice(0, 5).map((x) => x.id), count: claimed.length }, 'hello claims devices of another site: refused');
        return reject(stream, status.PERMISSION_DENIED, 'device_owned_elsewhere',
          `${claimed.length} device(s) belong to another site: ${claimed.slice(0, 5).map((x) => `${x.id} (${registry.device(x.id)!.siteId})`).join(', ')}`);
      }
      const known = new Set(registry.devices({ site: h.siteId }).map((x) => x.id));
      const total = known.size + h.devices.filter((x) => !known.has(x.id)).length;
      if (total > deps.maxDevicesPerSite) {
        return reject(stream, status.RESOURCE_EXHAUSTED, 'too_many_devices', `site ${h.siteId} would have ${total} devices; the limit is ${deps.maxDevicesPerSite} (HCP_MAX_DEVICES_PER_SITE)`);
      }
      if (!registry.site(h.siteId)) {
        if (!deps.autoRegisterSites) return reject(stream, status.NOT_FOUND, 'unknown_site', `site ${h.siteId} is not registered`);
        if (registry.siteCount() >= deps.maxSites) return reject(stream, status.RESOURCE_EXHAUSTED, 'site_limit', `the control plane keeps at most ${deps.maxSites} sites`);
        await insertSite(deps.db, { id: h.siteId, name: h.siteId, region: 'unassigned', powerCapacityKw: 0, timezone: 'UTC' });
        registry.addSite({ id: h.siteId, name: h.siteId, region: 'unassigned', powerCapacityKw: 0 });
        await audit(deps.db, `agent:${h.siteId}`, 'site.registered', h.siteId, { hostname: h.hostname, key: p.name });
        log.warn({ site: h.siteId }, 'site registered by its agent (HCP_AUTO_REGISTER_SITES)');
      }
      const previous = streams.get(h.siteId);
      const now = Date.now();
      // Two live agents with different credentials for one site would take turns superseding each
      // other forever: the one connected keeps the site while it heartbeats. The same credential
      // is the same agent come back (a restart, or a new connection after a network change).
      if (previous && previous.keyId !== p.keyId && now - previous.lastSeenMs < staleMs) {
        log.warn({ site: h.siteId, connected: previous.session, refused: h.agentSession, hostname: h.hostname }, 'second agent for a site refused');
        return reject(stream, status.ALREADY_EXISTS, 'site_in_use', `site ${h.siteId} already has a connected agent with another credential`);
      }
      if (stream.cancelled || stream.destroyed) return;
      site = h.siteId;
      session = h.agentSession;
      streams.set(site, { session, keyId: p.keyId, stream, lastSeenMs: now });
      metrics.agentStreams.set(streams.size);
      if (previous && previous.stream !== stream) {
        log.warn({ site, old: previous.session, new: session }, 'agent stream replaced');
        previous.stream.emit('error', grpcError(status.ABORTED, 'superseded', 'a newer stream for this site connected'));
      }
      const { site: s, devices } = registry.hello(h, Date.now());
      await saveHello({ site: s, devices });
      // the stream may have ended while its rows were written (closed() let go of the site)
      if (site !== s.id) return;
      const said = { session, version: h.agentVersion, hostname: h.hostname, devices: devices.length };
      if (deps.audit) deps.audit.write({ actor: `agent:${site}`, action: 'agent.hello', subject: site, details: said });
      else await audit(deps.db, `agent:${site}`, 'agent.hello', site, said);
      stream.write({
        body: {
          $case: 'helloAck',
          value: { heartbeatIntervalMs: deps.heartbeatMs, serverTimeMs: Date.now(), devicesRegistered: devices.length, gridTrip: deps.gridTripFor?.(site) },
        },
      });
      void deps.commits?.opened({
        site, stream: h.spool?.stream || session, spool: h.spool, token: stream,
        send: (value) => stream.write({ body: { $case: 'telemetryCommitted', value } }),
      });
      log.info({ site, session, version: h.agentVersion, devices: devices.length }, 'agent connected');
      deps.tracker.poke(site);
      events.emit('site.opened', { siteId: site });
      events.emit('site.connected', { siteId: site });
    };

    stream.on('data', (m: AgentMessage) => {
      if (isMalformed(m)) return reject(stream, status.INVALID_ARGUMENT, 'malformed_message', `a message is not a valid hcp.v1.AgentMessage: ${malformedReason(m)}`);
      const body = m.body;
      if (!body) return metrics.agentMessagesRejected.inc({ reason: 'empty_message' });
      if (body.$case === 'hello') {
        if (site) return metrics.agentMessagesRejected.inc({ reason: 'duplicate_hello' });
        clearTimeout(helloTimer);
        onHello(body.value, principal).catch((err) => {
          if (err instanceof HelloRefusedError) {
            log.warn({ site: body.value.siteId, sqlState: err.sqlState, err: err.message }, 'hello refused by the database');
            return reject(stream, status.INVALID_ARGUMENT, 'hello_refused', `the database refused this Hello's rows: ${err.message}`);
          }
          log.error({ err }, 'hello failed');
          reject(stream, status.UNAVAILABLE, 'hello_failed', 'the control plane could not register the agent; retry');
        });
        return;
      }
      if (!site) return reject(stream, status.FAILED_PRECONDITION, 'hello_required', 'the first message must be a Hello');
      const now = Date.now();
      const cur = streams.get(site);
      if (cur?.stream === stream) cur.lastSeenMs = now;
      registry.heartbeat(site, session, now);
      // An agent's free text (a driver's error message) may hold a NUL, which the command log and
      // the audit log (text, jsonb) cannot store: it becomes U+FFFD, and the answer still counts.
      // Whether an answer is refused is the command bus's to decide (and count).
      if (body.$case === 'commandAck') {
        events.emit('agent.ack', { siteId: site, commandId: withoutNul(body.value.commandId) });
      } else if (body.$case === 'commandResult') {
        events.emit('agent.result', { siteId: site, result: withoutNul(body.value) });
      } else if (body.$case === 'gridTripFired') {
        const f = withoutNul(body.value);
        // the region names a grid topic and goes to the audit log: a trip report without a valid one is nobody's
        if (!isValidSiteId(f.region) || f.deviceIds.length > deps.maxDevicesPerSite) return metrics.agentMessagesRejected.inc({ reason: 'invalid_trip_report' });
        log.warn({ site, region: f.region, hz: f.hz, devices: f.deviceIds.length, agentMs: Number(f.appliedAtMs) - Number(f.signalTsMs) }, 'agent under-frequency trip fired');
        void audit(deps.db, `agent:${site}`, 'grid.trip_fired', site, { region: f.region, hz: f.hz, devices: f.deviceIds.length, applied_at_ms: f.appliedAtMs }).catch((err) => log.error({ err }, 'audit failed'));
        events.emit('agent.grid_trip', { siteId: site, fired: f });
      } else if (body.$case === 'desiredStateHeld') {
        events.emit('agent.desired_held', { siteId: site, version: Number(body.value.version) });
      } else if (body.$case === 'spoolState') {
        deps.commits?.spool(site, stream, body.value);
      }
    });

    const closed = () => {
      clearTimeout(helloTimer);
      if (!site) return;
      const cur = streams.get(site);
      if (cur?.stream === stream) streams.delete(site);
      deps.commits?.closed(site, stream);
      metrics.agentStreams.set(streams.size);
      registry.streamClosed(site, session);
      if (cur?.stream === stream) events.emit('site.disconnected', { siteId: site });
      log.info({ site, session }, 'agent stream closed');
      deps.tracker.poke(site);
      site = null;
    };
    stream.on('end', () => {
      closed();
      stream.end();
    });
    stream.on('error', closed);
    stream.on('cancelled', closed);
    stream.on('close', closed);
  };

  const impl: AgentGatewayServer = { connect };
  // A revoked credential's stream is closed at once; its agent cannot reconnect with it.
  const unwatchKeys = deps.ring.onRevoked((ids) => {
    const gone = new Set(ids);
    for (const [siteId, s] of streams) {
      if (!gone.has(s.keyId)) continue;
      log.warn({ site: siteId }, 'site credential revoked: stream closed');
      s.stream.emit('error', grpcError(status.UNAUTHENTICATED, 'key_revoked', 'the site credential was revoked'));
    }
  });
  return {
    service: AgentGatewayService,
    impl,
    /** sends to a site's open stream; false when the site has none */
    send: agentStreams.send,
    connectedSites: agentStreams.connectedSites,
    closeAll() {
      unwatchKeys();
      for (const { stream } of streams.values()) stream.emit('error', grpcError(status.UNAVAILABLE, 'shutting_down', 'control plane is shutting down'));
      streams.clear();
    },
  };
}

export type AgentGateway = ReturnType<typeof createAgentGateway>;
