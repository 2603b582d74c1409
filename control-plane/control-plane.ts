// Wires the control plane's parts. Start order: database (migrated) → registry → broker →
// ingest → gRPC → HTTP. Shutdown (STYLE.md): stop intake (HTTP, gRPC, subscriber) → drain the
// telemetry writer → close the broker and the database. close() is idempotent.
import { serve, type ServerType } from '@hono/node-server';
import type { Logger } from 'pino';
import { mqttUrlOf, type ControlPlaneConfig } from './config.js';
import { createDb, type Db } from './db/client.js';
import { hasTimescale, migrate } from './db/migrate.js';
import { loadRegistry } from './db/registry-store.js';
import { createTelemetryWriter } from './db/telemetry-writer.js';
import { createCommandBus, type CommandBus } from './commands/bus.js';
import { createOperations } from './commands/operations.js';
import { createAuditWriter } from './db/audit-writer.js';
import { createAgentGateway, type GatewayHooks } from './grpc/agent-gateway.js';
import { createFleetService } from './grpc/fleet-service.js';
import { addReflection } from './grpc/reflection.js';
import { startGrpcServer } from './grpc/server.js';
import { createMiningIntent } from './commands/mining-intent.js';
import { latestPrices } from './db/price-store.js';
import { createGridResponse, type GridResponse } from './grid/grid-response.js';
import { createHttpApp } from './http/app.js';
import { createFeedIngest } from './market/feed-ingest.js';
import { PriceBook } from './market/price-book.js';
import { createEconomicDispatch, type EconomicDispatch } from './dispatch/economic-dispatch.js';
import { createSiteControls } from './dispatch/site-controls.js';
import { createIngest } from './ingest/ingest.js';
import { createMetrics } from './metrics.js';
import { createBroker, type Broker } from './mqtt/broker.js';
import { createSubscriber } from './mqtt/subscriber.js';
import { Registry } from './registry/registry.js';
import { createRegistryTracker } from './registry/tracker.js';
import { DEFAULT_POLICY } from './scheduler/placement.js';
import { createScheduler, type Scheduler } from './scheduler/scheduler.js';

export interface ControlPlane {
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly mqttUrl: string;
  readonly db: Db;
  readonly registry: Registry;
  readonly bus: CommandBus;
  close(): Promise<void>;
}

export async function createControlPlane(config: ControlPlaneConfig, log: Logger): Promise<ControlPlane> {
  const metrics = createMetrics();
  const db = await createDb({ url: config.DATABASE_URL, dataDir: config.HCP_DATA_DIR });
  const cleanup: Array<() => Promise<void>> = [() => db.close()];
  const unwind = async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
  };
  try {
    const outcomes = await migrate(db);
    log.info(
      { backend: db.kind, timescaledb: await hasTimescale(db), migrations: outcomes.filter((o) => o.status !== 'already').map((o) => `${o.name}:${o.status}`) },
      'database ready',
    );

    const registry = new Registry({ staleAfterMs: config.HCP_STALE_AFTER_MS });
    await loadRegistry(db, registry);
    const tracker = createRegistryTracker({ registry, db, log: log.child({ component: 'registry' }), metrics, intervalMs: 1000 });
    cleanup.push(() => tracker.close());

    let broker: Broker | null = null;
    if (config.HCP_BROKER === 'embedded') {
      // TODO(lead): authenticate with the key ring, anonymous per HCP_MQTT_ANONYMOUS and
      // loopbackOnly(config), regionOf from the sites, tls from HCP_TLS_CERT/KEY/CLIENT_CA.
      broker = await createBroker({
        host: config.HCP_MQTT_HOST, port: config.HCP_MQTT_PORT, log: log.child({ component: 'broker' }), metrics,
        authenticate: () => null,
        anonymous: true,
        regionOf: () => undefined,
        limits: { maxPacketBytes: config.HCP_MQTT_MAX_PACKET_BYTES, maxQueued: config.HCP_MQTT_MAX_QUEUED, sessionExpiryS: config.HCP_MQTT_SESSION_EXPIRY_S },
      });
      cleanup.push(() => broker!.close());
    }
    const mqttUrl = mqttUrlOf(config, broker?.port ?? config.HCP_MQTT_PORT);

    const writer = createTelemetryWriter({
      db, metrics, log: log.child({ component: 'ingest-writer' }),
      flushIntervalMs: config.HCP_INGEST_FLUSH_MS, maxRows: config.HCP_INGEST_MAX_ROWS,
    });
    cleanup.push(() => writer.close());
    const ingest = createIngest({ registry, writer, metrics, log: log.child({ component: 'ingest' }) });
    const ingestLog = log.child({ component: 'ingest' });
    const book = new PriceBook();
    book.load(await latestPrices(db));
    // bound below, once the command path exists
    let grid: GridResponse | null = null;
    const feeds = createFeedIngest({
      db, book, metrics, log: log.child({ component: 'feeds' }),
      onFrequency: (region, hz) => grid?.onFrequency(region, hz),
    });
    cleanup.push(() => feeds.close());
    const embedded = broker;
    const subscriber = await createSubscriber({
      transport: embedded ? { stream: () => embedded.connectInternal() } : { url: mqttUrl },
      clientId: `hcp-ingest-${config.HCP_GRPC_PORT}`,
      log: ingestLog,
      onMessage: (topic, payload, retained) => {
        if (topic.startsWith('hcp/v1/market/') || topic.startsWith('hcp/v1/grid/')) {
          // a retained reading is history; acting on it at every reconnect would be wrong
          if (!retained) feeds.handle(topic, payload);
          else metrics.feedRejected.inc({ reason: 'retained' });
          return;
        }
        ingest.handle(topic, payload);
        // A last will (site offline) should show at once, not at the next sweep.
        if (topic.endsWith('/status')) tracker.poke();
      },
    });
    cleanup.push(() => subscriber.close());

    const audit = createAuditWriter({ db, log: log.child({ component: 'audit' }) });
    cleanup.push(() => audit.close());
    // The gateway and the command bus need each other: the bus sends down agent streams, the
    // gateway hands acks and results to the bus. The hooks are bound once both exist.
    let bus: CommandBus | null = null;
    const need = () => {
      if (!bus) throw new Error('command bus not ready');
      return bus;
    };
    const hooks: GatewayHooks = {
      siteConnected: (s) => bus?.siteConnected(s),
      siteDisconnected: (s) => bus?.siteDisconnected(s),
      onAck: (s, id) => (bus ? bus.onAck(s, id) : 'not_ready'),
      onResult: (s, r) => (bus ? bus.onResult(s, r) : 'not_ready'),
      gridTripFor: (s) => grid?.tripFor(s),
      onGridTrip: (s, f) => grid?.onAgentTrip(s, f.region, f.hz),
    };
    const gateway = createAgentGateway({
      hooks, registry, tracker, db, metrics, log: log.child({ component: 'agent-gateway' }),
      heartbeatMs: config.HCP_HEARTBEAT_MS, autoRegisterSites: config.HCP_AUTO_REGISTER_SITES,
    });
    const ops = createOperations({ db, registry, bus: need, metrics, audit, log: log.child({ component: 'operations' }) });
    // The scheduler follows command results after operations has moved the workload.
    let scheduler: Scheduler | null = null;
    const onFinal = async (r: Parameters<typeof ops.onFinal>[0]) => {
      await ops.onFinal(r);
      await scheduler?.onCommandFinal(r);
    };
    bus = await createCommandBus({ db, audit, metrics, log: log.child({ component: 'commands' }), send: gateway.send, onFinal });
    cleanup.push(() => bus!.close());
    await ops.refreshActive();
    // operator controls (mode, schedule, demand response, trip settings), used by the
    // scheduler, the grid response and the economic engine
    const controls = await createSiteControls({ db, audit, log: log.child({ component: 'controls' }) });
    const commitmentsKw = (site: string, at = Date.now()) =>
      controls.demandResponse(site, at).filter((c) => c.fromMs <= at).reduce((kw, c) => kw + c.mw * 1000, 0);
    scheduler = await createScheduler({
      commitmentsKw,
      db, registry, bus: need, metrics, audit, log: log.child({ component: 'scheduler' }), refreshActive: ops.refreshActive,
      policy: { ...DEFAULT_POLICY, minRuntimeMs: config.HCP_SCHED_MIN_RUNTIME_S * 1000, agingMs: config.HCP_SCHED_AGING_S * 1000 },
      siteGraceMs: config.HCP_SCHED_SITE_GRACE_S * 1000, maxAllocateAttempts: config.HCP_SCHED_MAX_ALLOCATE_ATTEMPTS,
      passIntervalMs: config.HCP_SCHED_PASS_MS, tickMs: 1000,
    });
    const sched = scheduler;
    cleanup.push(() => sched.close());
    const asicsOf = (site: string) => registry.devices({ site, kind: 'asic' }).map((dv) => dv.id);
    const intent = createMiningIntent(asicsOf);
    bus.watch((r) => intent.observe(r));
    grid = createGridResponse({
      guard: {
        tripHz: config.HCP_GRID_TRIP_HZ, recoverHz: config.HCP_GRID_RECOVER_HZ, holdS: config.HCP_GRID_RESTORE_HOLD_S,
        stages: config.HCP_GRID_RESTORE_STAGES, stageIntervalS: config.HCP_GRID_RESTORE_STAGE_S,
      },
      tripRegions: config.HCP_GRID_TRIP_REGIONS, registry, ops: () => ops, bus: need, controls, intent, audit, metrics, log: log.child({ component: 'grid' }),
    });
    cleanup.push(() => grid!.close());
    let economics: { dispatch: EconomicDispatch; controls: Awaited<ReturnType<typeof createSiteControls>> } | undefined;
    if (config.HCP_ECONOMICS === 'on') {
      const tz = await db.query<{ id: string; timezone: string }>('SELECT id, timezone FROM facilities');
      const dispatch = createEconomicDispatch({
        db, registry, book, ops: () => ops, bus: need, intent, grid, controls, audit, metrics, log: log.child({ component: 'economics' }),
        intervalMs: config.HCP_ECONOMICS_INTERVAL_MS, timezones: new Map(tz.map((r) => [r.id, r.timezone])),
        engine: { startupS: config.HCP_ECONOMICS_STARTUP_S, minOnS: config.HCP_ECONOMICS_MIN_ON_S, minOffS: config.HCP_ECONOMICS_MIN_OFF_S, spikeMultiple: config.HCP_ECONOMICS_SPIKE_MULTIPLE },
      });
      cleanup.push(() => dispatch.close());
      economics = { dispatch, controls };
    }
    const fleet = createFleetService({ registry, ops: () => ops, bus: need, log: log.child({ component: 'fleet-api' }) });
    const grpc = await startGrpcServer({
      host: config.HCP_GRPC_HOST,
      port: config.HCP_GRPC_PORT,
      services: [{ service: gateway.service, impl: gateway.impl }, { service: fleet.service, impl: fleet.impl }],
      extend: addReflection,
    });
    cleanup.push(async () => {
      gateway.closeAll();
      await grpc.close();
    });

    const app = createHttpApp({
      registry, db, metrics, log: log.child({ component: 'http' }), audit, bus: need, ops: () => ops, scheduler: () => sched, market: { book }, grid, economics,
      limits: { telemetryMaxScanRows: config.HCP_TELEMETRY_MAX_SCAN_ROWS },
      readiness: async () => ({
        database: await db.ping(),
        broker: subscriber.connected(),
      }),
    });
    const { server, port: httpPort } = await listenHttp(app.fetch, config.HCP_HTTP_HOST, config.HCP_HTTP_PORT);
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));

    log.info({ http: `http://${config.HCP_HTTP_HOST}:${httpPort}`, grpc: `${config.HCP_GRPC_HOST}:${grpc.port}`, mqtt: mqttUrl, database: db.kind }, 'control plane listening');

    let closing: Promise<void> | null = null;
    return {
      httpPort,
      grpcPort: grpc.port,
      mqttUrl,
      db,
      registry,
      bus,
      close() {
        closing ??= unwind();
        return closing;
      },
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

function listenHttp(fetch: (req: Request) => Response | Promise<Response>, hostname: string, port: number) {
  return new Promise<{ server: ServerType; port: number }>((resolve, reject) => {
    const server = serve({ fetch, hostname, port }, (info) => resolve({ server, port: info.port }));
    server.once('error', reject);
  });
}
