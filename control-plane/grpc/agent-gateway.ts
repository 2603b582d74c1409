// hcp.v1.AgentGateway/Connect: the long-lived stream each agent opens. The first message must be
// a Hello; the control plane answers with a HelloAck that sets the heartbeat interval (the
// server sets it, as Nomad's does). A newer stream for the same site supersedes an older one.
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
import type { ArmGridTrip, CommandResult } from '../../proto/gen/hcp/v1/commands.js';
import type { GridTripFired } from '../../proto/gen/hcp/v1/gateway.js';
import { isValidSiteId } from '../../proto/topics.js';
import type { Db } from '../db/client.js';
import { audit, registerSite, saveHello } from '../db/registry-store.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { RegistryTracker } from '../registry/tracker.js';
import { grpcError } from './status.js';

type Stream = ServerDuplexStream<AgentMessage, ControlMessage>;

/** what the command path needs to hear from agent streams */
export interface GatewayHooks {
  siteConnected(siteId: string): void;
  siteDisconnected(siteId: string): void;
  /** a reason when refused */
  onAck(siteId: string, commandId: string): string | null;
  onResult(siteId: string, result: CommandResult): string | null;
  /** the under-frequency trip to arm at the site's agent on connect (grid/) */
  gridTripFor?(siteId: string): ArmGridTrip | undefined;
  /** the agent's local trip fired */
  onGridTrip?(siteId: string, fired: GridTripFired): void;
}

export interface GatewayDeps {
  hooks: GatewayHooks;
  registry: Registry;
  tracker: RegistryTracker;
  db: Db;
  log: Logger;
  metrics: Metrics;
  heartbeatMs: number;
  autoRegisterSites: boolean;
  helloTimeoutMs?: number;
}

const MAX_DEVICES = 20_000;
const DEVICE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** every problem with a hello, or none */
export function checkHello(h: Hello): string[] {
  const problems: string[] = [];
  if (!isValidSiteId(h.siteId)) problems.push(`site_id ${JSON.stringify(h.siteId)} is not a valid site id`);
  if (!h.agentSession) problems.push('agent_session is empty');
  if (h.devices.length > MAX_DEVICES) problems.push(`more than ${MAX_DEVICES} devices`);
  const seen = new Set<string>();
  for (const d of h.devices) {
    if (!DEVICE_ID.test(d.id)) problems.push(`device id ${JSON.stringify(d.id)} is invalid`);
    else if (seen.has(d.id)) problems.push(`device id ${d.id} appears twice`);
    seen.add(d.id);
    if (d.kind !== DeviceKind.DEVICE_KIND_GPU && d.kind !== DeviceKind.DEVICE_KIND_ASIC) problems.push(`device ${d.id} has no kind`);
    if (problems.length > 20) break;
  }
  return problems;
}

export function createAgentGateway(deps: GatewayDeps) {
  const { registry, log, metrics } = deps;
  const streams = new Map<string, { session: string; stream: Stream; lastSeenMs: number }>();
  // A stream that has not heartbeated for this long belongs to an agent that is gone (a crashed
  // host behind NAT can leave a half-open TCP connection for minutes); a new agent may take over.
  const staleMs = deps.heartbeatMs * 3;

  const reject = (stream: Stream, code: status, reason: string, details: string) => {
    metrics.agentMessagesRejected.inc({ reason });
    stream.emit('error', grpcError(code, reason, details));
  };

  const connect = (stream: Stream) => {
    let site: string | null = null;
    let session = '';
    const helloTimer = setTimeout(() => {
      if (!site) reject(stream, status.DEADLINE_EXCEEDED, 'no_hello', 'no Hello within the deadline');
    }, deps.helloTimeoutMs ?? 10_000);

    const onHello = async (h: Hello) => {
      const problems = checkHello(h);
      if (problems.length) return reject(stream, status.INVALID_ARGUMENT, 'invalid_hello', problems.join('; '));
      if (!registry.site(h.siteId)) {
        if (!deps.autoRegisterSites) return reject(stream, status.NOT_FOUND, 'unknown_site', `site ${h.siteId} is not registered`);
        await registerSite(deps.db, h.siteId);
        registry.addSite({ id: h.siteId, name: h.siteId, region: 'unassigned', powerCapacityKw: 0 });
        await audit(deps.db, `agent:${h.siteId}`, 'site.registered', h.siteId, { hostname: h.hostname });
        log.warn({ site: h.siteId }, 'site registered by its agent');
      }
      const previous = streams.get(h.siteId);
      const now = Date.now();
      // Two live agents claiming one site would take turns superseding each other forever: the
      // one already connected keeps the site, unless it is the same agent reconnecting (same
      // session) or it has gone silent.
      if (previous && previous.session !== h.agentSession && now - previous.lastSeenMs < staleMs) {
        log.warn({ site: h.siteId, connected: previous.session, refused: h.agentSession, hostname: h.hostname }, 'second agent for a site refused');
        return reject(stream, status.ALREADY_EXISTS, 'site_in_use', `site ${h.siteId} already has a connected agent (session ${previous.session})`);
      }
      site = h.siteId;
      session = h.agentSession;
      streams.set(site, { session, stream, lastSeenMs: now });
      metrics.agentStreams.set(streams.size);
      if (previous && previous.stream !== stream) {
        log.warn({ site, old: previous.session, new: session }, 'agent stream replaced');
        previous.stream.emit('error', grpcError(status.ABORTED, 'superseded', 'a newer stream for this site connected'));
      }
      const { site: s, devices } = registry.hello(h, Date.now());
      await saveHello(deps.db, s, devices);
      await audit(deps.db, `agent:${site}`, 'agent.hello', site, {
        session, version: h.agentVersion, hostname: h.hostname, devices: devices.length,
      });
      stream.write({
        body: {
          $case: 'helloAck',
          value: { heartbeatIntervalMs: deps.heartbeatMs, serverTimeMs: Date.now(), devicesRegistered: devices.length, gridTrip: deps.hooks.gridTripFor?.(site) },
        },
      });
      log.info({ site, session, version: h.agentVersion, devices: devices.length }, 'agent connected');
      deps.tracker.poke();
      deps.hooks.siteConnected(site);
    };

    stream.on('data', (m: AgentMessage) => {
      const body = m.body;
      if (!body) return metrics.agentMessagesRejected.inc({ reason: 'empty_message' });
      if (body.$case === 'hello') {
        if (site) return metrics.agentMessagesRejected.inc({ reason: 'duplicate_hello' });
        clearTimeout(helloTimer);
        onHello(body.value).catch((err) => {
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
      let refused: string | null = null;
      let commandId = '';
      if (body.$case === 'commandAck') {
        commandId = body.value.commandId;
        refused = deps.hooks.onAck(site, commandId);
      } else if (body.$case === 'commandResult') {
        commandId = body.value.commandId;
        refused = deps.hooks.onResult(site, body.value);
      } else if (body.$case === 'gridTripFired') {
        const f = body.value;
        log.warn({ site, region: f.region, hz: f.hz, devices: f.deviceIds.length, agentMs: Number(f.appliedAtMs) - Number(f.signalTsMs) }, 'agent under-frequency trip fired');
        void audit(deps.db, `agent:${site}`, 'grid.trip_fired', site, { region: f.region, hz: f.hz, devices: f.deviceIds.length, applied_at_ms: f.appliedAtMs }).catch((err) => log.error({ err }, 'audit failed'));
        deps.hooks.onGridTrip?.(site, f);
      }
      if (refused) {
        metrics.commandMessagesRejected.inc({ reason: refused });
        log.warn({ site, command: commandId, reason: refused, kind: body.$case }, 'agent answered a command that was not sent to it');
      }
    });

    const closed = () => {
      clearTimeout(helloTimer);
      if (!site) return;
      const cur = streams.get(site);
      if (cur?.stream === stream) streams.delete(site);
      metrics.agentStreams.set(streams.size);
      registry.streamClosed(site, session);
      if (cur?.stream === stream) deps.hooks.siteDisconnected(site);
      log.info({ site, session }, 'agent stream closed');
      deps.tracker.poke();
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
  return {
    service: AgentGatewayService,
    impl,
    /** sends to a site's open stream; false when the site has none */
    send(siteId: string, msg: ControlMessage): boolean {
      const s = streams.get(siteId);
      if (!s) return false;
      return s.stream.write(msg) || true;
    },
    connectedSites: () => [...streams.keys()],
    closeAll() {
      for (const { stream } of streams.values()) stream.emit('error', grpcError(status.UNAVAILABLE, 'shutting_down', 'control plane is shutting down'));
      streams.clear();
    },
  };
}

export type AgentGateway = ReturnType<typeof createAgentGateway>;
