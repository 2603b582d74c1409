// Wires the control plane's parts. Start order: database (migrated) → registry → broker →
// ingest → gRPC → HTTP. Shutdown (docs/conventions.md): stop intake (HTTP, gRPC, subscriber) → drain the
// telemetry writer → close the broker and the database. close() is idempotent.
//
// Construction is a one-way graph: each part is made from parts made before it, given as plain
// values. Parts that hear of each other do so through the event stream (events.ts), made first:
// the agent gateway says what agents send, the command bus hears it and says command.changed,
// the feeds say grid.frequency, the workload service says workload.changed. The open agent
// streams are kept apart from the gateway (createAgentStreams), so the command bus, and the
// parts that send commands, exist before the gateway, which is given the grid's trip settings.
import type { Logger } from 'pino';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError, ingestClientIdOf, isLoopbackHost, mqttUrlOf, redactUrl, type ControlPlaneConfig } from './config.js';
import { createDb, type Db } from './db/client.js';
import { hasTimescale, migrate } from './db/migrate.js';
import { loadRegistry } from './registry/load.js';
import { createTelemetryWriter } from './db/telemetry-writer.js';
import { createCommandBus, type CommandBus } from './commands/bus.js';
import { createOperations } from './commands/operations.js';
import { createAuditWriter } from './db/audit-writer.js';
import { createAgentGateway, createAgentStreams } from './grpc/agent-gateway.js';
import { createFleetService } from './grpc/fleet-service.js';
import { addReflection } from './grpc/reflection.js';
import { startGrpcServer } from './grpc/server.js';
import { latestPrices } from './db/price-store.js';
import { createGridResponse } from './grid/grid-response.js';
import { createHttpApp } from './http/app.js';
import { createLiveStreams } from './http/live.js';
import { join } from 'node:path';
import { listenHttp } from './http/listen.js';
import { createFeedIngest } from './market/feed-ingest.js';
import { PriceBook } from './market/price-book.js';
import { createBacktestRunner } from './backtest/runner.js';
import { createEconomicDispatch, type EconomicDispatch } from './dispatch/economic-dispatch.js';
import { EventStream } from './events.js';
import { createSiteControls } from './dispatch/site-controls.js';
import { createIngest } from './ingest/ingest.js';
import { createCommitNotifier } from './ingest/commit-notifier.js';
import { Watermarks } from './ingest/watermarks.js';
import { createMetrics } from './metrics.js';
import { createBroker, type Broker } from './mqtt/broker.js';
import { createKeyAdmin, type KeyAdmin } from './auth/key-admin.js';
import { createKeyRing } from './auth/key-ring.js';
import { createRateLimiter } from './auth/rate-limit.js';
import { createWaitGate } from './commands/wait-gate.js';
import { auditWithRequestIds } from './request-context.js';
import { createSubscriber } from './mqtt/subscriber.js';
import { Registry } from './registry/registry.js';
import { createRegistryTracker } from './registry/tracker.js';
import { parseTopic } from '../proto/topics.js';
import { DEFAULT_POLICY } from './scheduler/placement.js';
import { createScheduler } from './scheduler/scheduler.js';
import { createWorkloadService, type WorkloadService } from './workloads/service.js';
import { createClaimsService, type ClaimsService } from './claims/service.js';
import { createReconciler, type Reconciler } from './claims/reconciler.js';
import { createOperatorControls } from './claims/operator.js';
import { createPrograms } from './claims/programs.js';
import { createLease, type Leadership } from './ha/lease.js';
import { createPgNotifier, LOCAL_NOTIFIER } from './ha/notify.js';
import { createReplicaLinks } from './ha/replicas.js';

export interface ControlPlane {
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly mqttUrl: string;
  readonly db: Db;
  readonly registry: Registry;
  readonly bus: CommandBus;
  /** the in-process event stream the parts talk through (tests listen here) */
  readonly events: EventStream;
  /** the one owner of workload transitions */
  readonly workloads: WorkloadService;
  /** keys and site credentials (tests and tools make theirs here) */
  readonly keys: KeyAdmin;
  /** what every part wants the ASICs to do, and the reconcilers that carry it out */
  readonly claims: ClaimsService;
  readonly reconciler: Reconciler;
  /** the leader lease: whether this replica runs the singleton loops */
  readonly leadership: Leadership;
  close(): Promise<void>;
}

/** the PEM files named by HCP_TLS_*, read once; a missing file stops the start, naming it */
export function readTls(config: ControlPlaneConfig): { cert: Buffer; key: Buffer; clientCa?: Buffer } | undefined {
  if (!config.HCP_TLS_CERT) return undefined;
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError([`${name} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
  };
  return {
    cert: read('HCP_TLS_CERT', config.HCP_TLS_CERT),
    key: read('HCP_TLS_KEY', config.HCP_TLS_KEY!),
    ...(config.HCP_TLS_CLIENT_CA ? { clientCa: read('HCP_TLS_CLIENT_CA', config.HCP_TLS_CLIENT_CA) } : {}),
  };
}

/** HCP_BROKER=external: the URL, ingest's login (HCP_MQTT_USERNAME, HCP_MQTT_PASSWORD[_FILE]), the CA, the shared group */
function externalBroker(config: ControlPlaneConfig, url: string) {
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError([`${name} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
  };
  const password = config.HCP_MQTT_PASSWORD_FILE ? read('HCP_MQTT_PASSWORD_FILE', config.HCP_MQTT_PASSWORD_FILE).toString('utf8').trim() : config.HCP_MQTT_PASSWORD;
  return {
    url,
    username: config.HCP_MQTT_USERNAME,
    password,
    ...(config.HCP_MQTT_CA_FILE ? { tls: { ca: read('HCP_MQTT_CA_FILE', config.HCP_MQTT_CA_FILE) } } : {}),
    ...(config.HCP_MQTT_SHARE_GROUP === 'off' ? {} : { shareGroup: config.HCP_MQTT_SHARE_GROUP }),
    sessionExpiryS: config.HCP_MQTT_SESSION_EXPIRY_S,
  };
}

/** how long one shutdown step may take before the next one runs (see unwind) */
const SHUTDOWN_STEP_MS = 3000;
/**
 * connections of the control path's pool: a claims write and a commands insert at once, and room
 * for a fenced claims transaction (which waits for an idle connection) beside them
 */
const CONTROL_CONNECTIONS = 3;

/**
 * o.events: the event stream to build on (a test listening from the first event); a new one otherwise.
 * o.beforeListen: called just before the REST port is bound (main.ts closes its starting listener there).
 */
export async function createControlPlane(config: ControlPlaneConfig, log: Logger, o: { events?: EventStream; beforeListen?: () => Promise<void> } = {}): Promise<ControlPlane> {
  const metrics = createMetrics();
  const events = o.events ?? new EventStream(log.child({ component: 'events' }));
  const tls = readTls(config);
  const db = await createDb({ url: config.DATABASE_URL, dataDir: config.HCP_DATA_DIR });
  const cleanup: Array<() => Promise<void>> = [() => db.close()];
  const unwind = async () => {
    for (const f of cleanup.reverse()) {
      // One step may not hold the rest up: a statement on a connection the server terminated at
      // the wrong moment was seen never to settle (postgres.js 3.4.9), and a part waiting for it
      // would keep the database and the listeners open until main.ts's 10 s deadline. Past
      // SHUTDOWN_STEP_MS the step is named in the log and the next one runs.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), SHUTDOWN_STEP_MS)));
      const done = await Promise.race([f().then(() => 'done' as const, () => 'done' as const), late]);
      clearTimeout(timer);
      if (done === 'late') log.warn({ step: f.toString().replace(/\s+/g, ' ').slice(0, 160), afterMs: SHUTDOWN_STEP_MS }, 'shutdown step did not finish; going on without it');
    }
  };
  try {
    const outcomes = await migrate(db, undefined, { warn: (msg, details) => log.warn(details, msg) });
    log.info(
      { backend: db.kind, timescaledb: await hasTimescale(db), migrations: outcomes.filter((o) => o.status !== 'already').map((o) => `${o.name}:${o.status}`) },
      'database ready',
    );

    // The lease before any loop exists: a single replica leads from its first tick, a second
    // one stands by. Let go last but one (before the database closes), after the loops stopped.
    const leadership = await createLease({
      db, log: log.child({ component: 'lease' }), metrics: metrics.registry,
      ttlMs: config.HCP_LEASE_TTL_MS, renewMs: config.HCP_LEASE_RENEW_MS, ...(config.HCP_REPLICA_ID ? { holder: config.HCP_REPLICA_ID } : {}),
    });
    cleanup.push(() => leadership.close());
    const notifier = db.kind === 'postgres' && config.DATABASE_URL
      ? await createPgNotifier({ url: config.DATABASE_URL, db, log: log.child({ component: 'replicas' }), replica: leadership.status().holder })
      : LOCAL_NOTIFIER;
    cleanup.push(() => notifier.close());

    const registry = new Registry({ staleAfterMs: config.HCP_STALE_AFTER_MS });
    await loadRegistry(db, registry);
    // Identities before any listener opens: nothing is served to an unknown caller.
    const ring = await createKeyRing({ db, log: log.child({ component: 'keys' }) });
    cleanup.push(() => ring.close());
    const limiter = createRateLimiter({ perSecond: config.HCP_RATE_LIMIT_PER_S, burst: config.HCP_RATE_LIMIT_BURST });
    const waiters = createWaitGate(config.HCP_MAX_WAITERS);
    // Before the tracker and everything else that audits: it closes after them, and flushes what they wrote.
    const audit = auditWithRequestIds(createAuditWriter({ db, metrics, log: log.child({ component: 'audit' }), onWritten: (entries) => events.emit('audit.written', { entries }) }));
    cleanup.push(() => audit.close());
    const tracker = createRegistryTracker({ registry, db, log: log.child({ component: 'registry' }), metrics, intervalMs: 1000, audit });
    cleanup.push(() => tracker.close());

    let broker: Broker | null = null;
    if (config.HCP_BROKER === 'embedded') {
      // Logins are the platform's keys. Anonymous clients (readers, and price/frequency
      // publishers) only while the broker listens on loopback (Mosquitto 2.0's convention).
      const anonymous = config.HCP_MQTT_ANONYMOUS === 'auto' && isLoopbackHost(config.HCP_MQTT_HOST);
      broker = await createBroker({
        host: config.HCP_MQTT_HOST, port: config.HCP_MQTT_PORT, log: log.child({ component: 'broker' }), metrics,
        authenticate: (_username, password) => ring.authenticate(password),
        anonymous,
        regionOf: (site) => registry.site(site)?.region,
        limits: { maxPacketBytes: config.HCP_MQTT_MAX_PACKET_BYTES, maxQueued: config.HCP_MQTT_MAX_QUEUED, sessionExpiryS: config.HCP_MQTT_SESSION_EXPIRY_S },
        // with TLS the broker speaks mqtts only; ingest is connected in-process either way
        ...(tls ? { tls: { ...tls, port: config.HCP_MQTT_TLS_PORT }, plain: false } : {}),
      });
      const b = broker;
      const unwatch = ring.onRevoked((ids) => {
        for (const id of ids) void b.disconnectKey(id);
      });
      cleanup.push(async () => {
        unwatch();
        await b.close();
      });
      log.info({ anonymous, tls: Boolean(tls) }, 'mqtt broker takes platform keys as logins');
    }
    const mqttUrl = broker?.tlsPort ? `mqtts://127.0.0.1:${broker.tlsPort}` : mqttUrlOf(config, broker?.port ?? config.HCP_MQTT_PORT);

    const writer = createTelemetryWriter({
      db, metrics, log: log.child({ component: 'ingest-writer' }),
      flushIntervalMs: config.HCP_INGEST_FLUSH_MS, maxRows: config.HCP_INGEST_MAX_ROWS, concurrency: config.HCP_INGEST_FLUSHES,
      copy: config.HCP_INGEST_COPY === 'on',
      maxBufferBytes: config.HCP_INGEST_MAX_BUFFER_BYTES, backlogAgeMs: config.HCP_INGEST_BACKLOG_AGE_MS,
      backlogShare: config.HCP_INGEST_BACKLOG_SHARE, ledgerRetentionMs: config.HCP_INGEST_LEDGER_RETENTION_S * 1000,
      // what is not written by then stays in the agents' spools (not acknowledged), so shutdown
      // does not wait long on a database that does not answer: main.ts gives all of it 10 s
      closeTimeoutMs: 2000,
    });
    cleanup.push(() => writer.close());
    // acknowledge after commit: the writer's commits move the streams' watermarks, which the
    // agents hear of over their gRPC streams (ingest/commit-notifier.ts, given to the gateway)
    const watermarks = new Watermarks();
    const unwatchCommits = writer.onCommitted((batches) => {
      for (const b of batches) watermarks.committed(b.site, b.stream, [b.seq]);
    });
    const commits = createCommitNotifier({ db, watermarks, log: log.child({ component: 'ingest-commits' }), sent: () => metrics.ingestCommittedSent.inc() });
    cleanup.push(async () => {
      unwatchCommits();
      commits.close();
    });
    const ingest = createIngest({ registry, writer, metrics, watermarks, log: log.child({ component: 'ingest' }) });
    const ingestLog = log.child({ component: 'ingest' });
    const book = new PriceBook();
    book.load(await latestPrices(db));
    // frequency readings are said as grid.frequency; the grid response, made below, hears them
    const feeds = createFeedIngest({ db, book, metrics, log: log.child({ component: 'feeds' }), events });
    cleanup.push(() => feeds.close());
    const embedded = broker;
    const subscriber = await createSubscriber({
      transport: embedded ? { stream: () => embedded.connectInternal() } : externalBroker(config, mqttUrl),
      clientId: ingestClientIdOf(config, hostname(), () => randomBytes(4).toString('hex')),
      log: ingestLog,
      onLive: (topic, payload) => ingest.observe(topic, payload),
      onMessage: (topic, payload, retained) => {
        if (topic.startsWith('hcp/v1/market/') || topic.startsWith('hcp/v1/grid/')) {
          // a retained reading is history; acting on it at every reconnect would be wrong
          if (!retained) feeds.handle(topic, payload);
          else metrics.feedRejected.inc({ reason: 'retained' });
          return;
        }
        ingest.handle(topic, payload);
        // A last will (site offline) should show at once, not at the next sweep.
        if (topic.endsWith('/status')) {
          const t = parseTopic(topic);
          if (t) tracker.poke(t.site);
        }
      },
    });
    cleanup.push(() => subscriber.close());

    const keys = createKeyAdmin({ db, ring, registry, audit, log: log.child({ component: 'keys' }), maxSites: config.HCP_MAX_SITES });
    if (config.HCP_ADMIN_KEY) await keys.ensureAdmin(config.HCP_ADMIN_KEY);
    else await keys.ensureSomeAdmin(config.HCP_DATA_DIR);
    // operator controls (mode, schedule, demand response, trip settings), used by the
    // scheduler, the grid response and the economic engine
    const controls = await createSiteControls({ db, audit, log: log.child({ component: 'controls' }) });
    // The command bus sends down the agents' open streams and hears their answers as events; the
    // gateway, made last, fills the streams and says the events.
    const streams = createAgentStreams();
    // The control path (claims and the commands they cause: a curtail, a grid trip) writes on
    // connections of its own. On the main pool its statements were queued behind ingest's COPYs
    // and the audit writer's batches (postgres.js pipelines onto a busy connection when none is
    // idle), and each of ten connections prepared them in turn, a round trip more the first
    // time; a fleet curtail's two inserts go through here, ready. PGlite is one connection: shared.
    const controlDb = db.kind === 'postgres'
      ? await createDb({ url: config.DATABASE_URL, dataDir: config.HCP_DATA_DIR, maxConnections: CONTROL_CONNECTIONS, applicationName: 'hcp-control' })
      : db;
    if (controlDb !== db) cleanup.push(() => controlDb.close());
    const bus = await createCommandBus({
      db, storeDb: controlDb, audit, metrics, log: log.child({ component: 'commands' }), send: streams.send, events,
      hasStream: (site) => streams.open.has(site), streamSites: streams.connectedSites, leader: leadership, notifier,
    });
    cleanup.push(() => bus.close());
    // Claims: what every part wants the ASICs to do, resolved per site (claims/model.ts); the
    // site's reconciler closes the gap between that and what telemetry reports.
    const claims = await createClaimsService({ db: controlDb, registry, audit, events, log: log.child({ component: 'claims' }) });
    cleanup.push(() => claims.close());
    const rampOf = (site: string): number => {
      const own = controls.get(site).rampKwPerMin;
      if (own !== null) return own;
      if (config.HCP_RAMP_KW_PER_MIN > 0) return config.HCP_RAMP_KW_PER_MIN;
      return (registry.site(site)?.powerCapacityKw ?? 0) / 4;
    };
    const reconciler = createReconciler({
      registry, bus, desiredOf: (site) => claims.desired(site), claimsDurable: (site) => claims.durable(site), specsOf: (site) => claims.specOf(site).asics,
      rampKwPerMin: rampOf, capacityKw: (site) => registry.site(site)?.powerCapacityKw ?? 0,
      sendDesired: (site, value) => streams.send(site, { body: { $case: 'desiredState', value } }),
      metrics: metrics.registry, log: log.child({ component: 'reconciler' }), intervalMs: config.HCP_RECONCILE_MS,
      timings: { startMs: config.HCP_RECONCILE_START_S * 1000 }, rampWindowMs: config.HCP_RAMP_WINDOW_S * 1000, leader: leadership,
    });
    cleanup.push(() => reconciler.close());
    for (const off of [
      events.on('claim.changed', (e) => void reconciler.claimsChanged(e.claim.siteId)),
      events.on('site.opened', (e) => reconciler.siteConnected(e.siteId)),
      events.on('agent.desired_held', (e) => reconciler.desiredHeld(e.siteId, e.version)),
    ]) cleanup.push(async () => off());
    // claims said to the other replicas, and an operator's reconcile carried out by the leader
    const replicas = createReplicaLinks({ notifier, leadership, claims, reconciler, bus, events, db, registry, log: log.child({ component: 'replicas' }) });
    cleanup.push(async () => replicas.close());
    const operator = createOperatorControls({ claims, registry, reconcileNow: (sites) => replicas.reconcileNow(sites) });
    const tzRows = await db.query<{ id: string; timezone: string }>('SELECT id, timezone FROM facilities');
    const timezones = new Map(tzRows.map((r) => [r.id, r.timezone]));
    const programs = createPrograms({ claims, controls, registry, timezoneOf: (site) => timezones.get(site) ?? 'UTC', log: log.child({ component: 'programs' }), leader: leadership });
    cleanup.push(() => programs.close());
    const workloads = await createWorkloadService({
      db, registry, bus, events, metrics, audit, log: log.child({ component: 'workloads' }), maxAllocateAttempts: config.HCP_SCHED_MAX_ALLOCATE_ATTEMPTS,
    });
    cleanup.push(() => workloads.close());
    const ops = createOperations({ registry, bus, workloads, log: log.child({ component: 'operations' }) });
    const commitmentsKw = (site: string, at = Date.now()) =>
      controls.demandResponse(site, at).filter((c) => c.fromMs <= at).reduce((kw, c) => kw + c.mw * 1000, 0);
    const scheduler = await createScheduler({
      commitmentsKw, claims,
      db, registry, bus, events, workloads, metrics, log: log.child({ component: 'scheduler' }),
      policy: { ...DEFAULT_POLICY, minRuntimeMs: config.HCP_SCHED_MIN_RUNTIME_S * 1000, agingMs: config.HCP_SCHED_AGING_S * 1000 },
      siteGraceMs: config.HCP_SCHED_SITE_GRACE_S * 1000,
      passIntervalMs: config.HCP_SCHED_PASS_MS, tickMs: 1000, leader: leadership,
    });
    cleanup.push(() => scheduler.close());
    const grid = createGridResponse({
      guard: {
        tripHz: config.HCP_GRID_TRIP_HZ, recoverHz: config.HCP_GRID_RECOVER_HZ, holdS: config.HCP_GRID_RESTORE_HOLD_S,
        stages: config.HCP_GRID_RESTORE_STAGES, stageIntervalS: config.HCP_GRID_RESTORE_STAGE_S,
      },
      tripRegions: config.HCP_GRID_TRIP_REGIONS, registry, bus, claims, reconcileNow: (sites) => reconciler.reconcileNow(sites), controls, audit, metrics, log: log.child({ component: 'grid' }), leader: leadership,
    });
    cleanup.push(() => grid.close());
    const unhear = [
      events.on('grid.frequency', (e) => grid.onFrequency(e.region, e.hz)),
      events.on('agent.grid_trip', (e) => grid.onAgentTrip(e.siteId, e.fired)),
    ];
    cleanup.push(async () => unhear.forEach((off) => off()));
    let economics: { dispatch: EconomicDispatch; controls: Awaited<ReturnType<typeof createSiteControls>> } | undefined;
    if (config.HCP_ECONOMICS === 'on') {
      const dispatch = createEconomicDispatch({
        db, registry, book, claims, controls, audit, metrics, log: log.child({ component: 'economics' }),
        intervalMs: config.HCP_ECONOMICS_INTERVAL_MS,
        engine: { startupS: config.HCP_ECONOMICS_STARTUP_S, minOnS: config.HCP_ECONOMICS_MIN_ON_S, minOffS: config.HCP_ECONOMICS_MIN_OFF_S, spikeMultiple: config.HCP_ECONOMICS_SPIKE_MULTIPLE },
        leader: leadership,
      });
      cleanup.push(() => dispatch.close());
      economics = { dispatch, controls };
    }
    const gateway = createAgentGateway({
      events, streams, gridTripFor: grid.tripFor, registry, tracker, db, metrics, log: log.child({ component: 'agent-gateway' }),
      heartbeatMs: config.HCP_HEARTBEAT_MS, autoRegisterSites: config.HCP_AUTO_REGISTER_SITES,
      ring, maxDevicesPerSite: config.HCP_MAX_DEVICES_PER_SITE, maxSites: config.HCP_MAX_SITES, commits, audit,
    });
    const fleet = createFleetService({ registry, ops, bus, operator, log: log.child({ component: 'fleet-api' }), ring, limiter, waiters, metrics, watchQueue: config.HCP_WATCH_QUEUE, watchGraceMs: config.HCP_WATCH_GRACE_MS });
    const grpc = await startGrpcServer({
      host: config.HCP_GRPC_HOST,
      port: config.HCP_GRPC_PORT,
      services: [{ service: gateway.service, impl: gateway.impl }, { service: fleet.service, impl: fleet.impl }],
      extend: addReflection,
      tls,
    });
    cleanup.push(async () => {
      gateway.closeAll();
      await grpc.close();
    });

    // REST's scanning reads run on a small pool of their own with a statement_timeout, so a slow
    // one is cancelled rather than holding a connection ingest or the scheduler needs. Writes and
    // point reads stay on the main pool: a submit is one indexed insert, and a separate pool for
    // it cost bench:schedule's p50 ×3 at 200 submits/s. PGlite is one connection: shared.
    const readDb = db.kind === 'postgres'
      ? await createDb({ url: config.DATABASE_URL, dataDir: config.HCP_DATA_DIR, statementTimeoutMs: config.HCP_API_STATEMENT_TIMEOUT_MS, maxConnections: 4, applicationName: 'hcp-api-read' })
      : db;
    if (readDb !== db) cleanup.push(() => readDb.close());
    const live = createLiveStreams({
      events, registry, metrics, log: log.child({ component: 'live' }), market: { book }, grid, economics,
      mode: (site) => operator.mode(site),
      limits: { maxStreams: config.HCP_EVENTS_MAX_STREAMS, queue: config.HCP_EVENTS_QUEUE, heartbeatMs: config.HCP_EVENTS_HEARTBEAT_MS },
    });
    const backtests = createBacktestRunner();
    cleanup.push(() => backtests.close());
    const app = createHttpApp({
      live, backtests, webDir: config.HCP_WEB_DIR ?? join(import.meta.dirname, '..', 'web', 'dist'),
      registry, db, readDb, metrics, log: log.child({ component: 'http' }), audit, bus, ops, workloads, market: { book }, grid, economics,
      limits: { telemetryMaxScanRows: config.HCP_TELEMETRY_MAX_SCAN_ROWS, bodyLimitBytes: config.HCP_HTTP_BODY_LIMIT_BYTES },
      waiters,
      claims: {
        service: claims, operator, programs, controls,
        reconciler: { reconcileNow: (sites) => replicas.reconcileNow(sites), poke: (site) => reconciler.poke(site), view: (site) => reconciler.view(site) },
        ramp: { of: rampOf, set: async (site, kw, actor) => void (await controls.setRamp(site, kw, actor)) },
      },
      security: { ring, limiter, corsOrigins: config.HCP_CORS_ORIGINS, keys },
      leadership: () => leadership.status(),
      readiness: async () => ({
        // every pool: REST's reads answer 503 while theirs cannot reach the database, and a
        // control plane that cannot store a command is not ready
        database: (await db.ping()) && (readDb === db || (await readDb.ping())) && (controlDb === db || (await controlDb.ping())),
        broker: subscriber.connected(),
      }),
    });
    await o.beforeListen?.();
    const { server, port: httpPort } = await listenHttp(app.fetch, config.HCP_HTTP_HOST, config.HCP_HTTP_PORT, tls);
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    // (unwound first) the live streams end before the server waits for its connections to close
    cleanup.push(async () => live.close());

    log.info({ http: `${tls ? 'https' : 'http'}://${config.HCP_HTTP_HOST}:${httpPort}`, tls: Boolean(tls), mtls: Boolean(tls?.clientCa), grpc: `${config.HCP_GRPC_HOST}:${grpc.port}`, mqtt: redactUrl(mqttUrl), database: db.kind }, 'control plane listening');

    let closing: Promise<void> | null = null;
    return {
      httpPort,
      grpcPort: grpc.port,
      mqttUrl,
      db,
      registry,
      bus,
      events,
      workloads,
      keys,
      claims,
      reconciler,
      leadership,
      close() {
        // no new term while shutting down: the lease is let go late (after the loops stop), and
        // a term gained meanwhile would start the loops again
        closing ??= (leadership.quiesce(), unwind());
        return closing;
      },
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
