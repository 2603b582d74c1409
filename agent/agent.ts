// Wires one site's agent: simulated hardware (when asked), drivers, the sampling loop, the MQTT
// publisher, the control-plane stream and the local HTTP endpoint. Shutdown order (docs/conventions.md):
// stop sampling → flush telemetry and publish offline → close the stream → stop the devices.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { createSimClock } from '../sim-hardware/clock.js';
import { createSimFleet, type SimFleet } from '../sim-hardware/fleet.js';
import type { AgentConfig } from './config.js';
import { createCgminerDriver, type CgminerDeviceConfig } from './drivers/cgminer-driver.js';
import type { CommandableDriver } from './drivers/driver.js';
import { createCommandHandler } from './commands/handler.js';
import { createGridTrip } from './grid/grid-trip.js';
import { loadTrip, saveTrip } from './grid/trip-store.js';
import { openResultJournal, type ResultJournal } from './commands/result-journal.js';
import { createSimDriver } from './drivers/sim-driver.js';
import { createGatewayClient } from './grpc/gateway-client.js';
import { startAgentHttp } from './http/server.js';
import { createAgentMetrics } from './metrics.js';
import { createPublisher } from './mqtt/publisher.js';
import { AGENT_VERSION } from './version.js';

export interface Agent {
  readonly session: string;
  readonly httpPort: number;
  /** one sampling tick now (tests) */
  tick(): Promise<void>;
  close(): Promise<void>;
}

async function createDrivers(c: AgentConfig, log: Logger): Promise<{ drivers: CommandableDriver[]; fleets: SimFleet[] }> {
  const clock = createSimClock({ speed: c.simSpeed });
  const common = { site: c.site, asicModel: c.asicModel, seed: c.seed, clock, startupSeconds: c.simStartupS };
  if (c.asicDriver === 'sim') {
    const fleet = createSimFleet({ ...common, gpus: c.simGpus, asics: c.simAsics });
    return { drivers: [createSimDriver(fleet)], fleets: [fleet] };
  }
  // cgminer driver: GPUs stay in-process; ASICs are read over TCP, either real miners at
  // --asic-endpoints or simulated S21s that serve the cgminer API on loopback ports.
  const gpuFleet = createSimFleet({ ...common, gpus: c.simGpus, asics: 0 });
  const fleets = [gpuFleet];
  let devices: CgminerDeviceConfig[];
  if (c.asicEndpoints) {
    devices = c.asicEndpoints.split(',').map((e, i) => {
      const [host, port] = e.trim().split(':') as [string, string];
      return { id: `asic-${c.site}-${String(i + 1).padStart(5, '0')}`, host, port: Number(port), model: c.asicModel };
    });
  } else {
    const asicFleet = createSimFleet({ ...common, gpus: 0, asics: c.simAsics });
    fleets.push(asicFleet);
    asicFleet.start(250);
    const endpoints = await asicFleet.serveCgminer({ host: c.simApiHost, basePort: c.simApiPortBase });
    log.info({ miners: endpoints.length, first: endpoints[0]?.endpoint, last: endpoints.at(-1)?.endpoint }, 'simulated miners serve the cgminer API');
    devices = endpoints.map((e) => ({ id: e.deviceId, host: e.host, port: e.port, webPort: e.webPort, model: c.asicModel }));
  }
  const drivers: CommandableDriver[] = [];
  if (c.simGpus > 0) drivers.push(createSimDriver(gpuFleet));
  if (devices.length > 0) drivers.push(createCgminerDriver({ devices, timeoutMs: Math.min(3000, c.sampleIntervalMs * 2) }));
  return { drivers, fleets };
}

/** the PEM files the agent was given, read once at start */
function readTls(c: AgentConfig): { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  if (!c.caFile && !c.certFile) return undefined;
  return {
    ...(c.caFile ? { ca: readFileSync(c.caFile) } : {}),
    ...(c.certFile ? { cert: readFileSync(c.certFile), key: readFileSync(c.keyFile!) } : {}),
  };
}

/** command results remembered for at-most-once (in memory, and in --state-dir when given) */
const RESULTS_REMEMBERED = 10_000;

export async function createAgent(c: AgentConfig, log: Logger): Promise<Agent> {
  const metrics = createAgentMetrics();
  const session = randomUUID();
  const { drivers, fleets } = await createDrivers(c, log);
  const inventory = drivers.flatMap((d) => d.inventory());
  let reporting = { gpu: 0, asic: 0 };
  const gpuWorkload = new Map<string, string>();

  const tls = readTls(c);
  const loopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);
  if (c.token && !(c.tls || c.caFile || c.certFile) && !loopback(c.controlPlane.split(':')[0]!)) {
    log.warn({ controlPlane: c.controlPlane }, 'the site credential goes to the control plane in the clear: use --tls (or --ca-file) beyond a private network');
  }
  if (c.token && c.mqtt.startsWith('mqtt://') && !loopback(new URL(c.mqtt).hostname)) {
    log.warn('the MQTT login goes to the broker in the clear: use an mqtts:// URL beyond a private network');
  }
  if (!c.token) log.warn('no site credential (HCP_AGENT_TOKEN or --token-file): the control plane will refuse this agent');
  const publisher = createPublisher({
    url: c.mqtt, site: c.site, tls, login: c.token ? { username: c.site, password: c.token } : undefined, session, version: AGENT_VERSION, spoolBatches: c.spoolBatches,
    log: log.child({ component: 'mqtt' }), metrics,
  });
  // tick is hoisted below; a command's effect is sampled and published at once
  const trip = createGridTrip({
    drivers,
    listen: (t, fn) => publisher.listen(t, fn),
    unlisten: (t) => publisher.unlisten(t),
    report: (f) => void gateway.send({ body: { $case: 'gridTripFired', value: f } }),
    changed: () => void tick(),
    log: log.child({ component: 'grid-trip' }),
    metrics,
    onArmed: (a) => {
      if (!c.stateDir) return;
      try {
        saveTrip(c.stateDir, a);
      } catch (err) {
        log.error({ err, dir: c.stateDir }, 'could not save the grid trip settings');
      }
    },
  });
  if (c.stateDir) {
    try {
      const saved = loadTrip(c.stateDir);
      const o = saved ? trip.arm(saved) : null;
      if (o && !o.ok) log.error({ code: o.code, message: o.message }, 'saved grid trip settings refused');
      else if (o) log.info({ region: saved!.region, thresholdHz: saved!.thresholdHz }, 'grid trip armed from saved settings');
    } catch (err) {
      log.error({ err, dir: c.stateDir }, 'could not read the saved grid trip settings');
    }
  }
  let journal: ResultJournal | undefined;
  if (c.stateDir) {
    try {
      journal = openResultJournal(c.stateDir, RESULTS_REMEMBERED);
      if (journal.skipped) log.warn({ skipped: journal.skipped, dir: c.stateDir }, 'unreadable command results dropped from the journal');
    } catch (err) {
      log.error({ err, dir: c.stateDir }, 'could not open the command result journal; results are kept in memory only');
    }
  }
  const handler = createCommandHandler({
    drivers,
    journal,
    rememberResults: RESULTS_REMEMBERED,
    send: (m) => gateway.send(m),
    gpuWorkload: (id) => gpuWorkload.get(id) ?? '',
    changed: () => void tick(),
    armGridTrip: (a) => trip.arm(a),
    log: log.child({ component: 'commands' }),
    metrics,
  });
  const gateway = createGatewayClient({
    address: c.controlPlane,
    token: c.token,
    tls: c.tls || c.caFile || c.certFile ? tls ?? {} : undefined,
    hello: () => ({ siteId: c.site, agentVersion: AGENT_VERSION, agentSession: session, devices: inventory, hostname: hostname() }),
    health: () => ({ reporting: reporting.gpu + reporting.asic, total: inventory.length }),
    log: log.child({ component: 'grpc' }),
    metrics,
    onControl: (m) => {
      if (m.body?.$case === 'command') handler.handle(m.body.value);
      // the control plane arms the trip at every connect; while it is unreachable the trip
      // keeps the settings it last had
      if (m.body?.$case === 'helloAck' && m.body.value.gridTrip) {
        const o = trip.arm(m.body.value.gridTrip);
        if (!o.ok) log.error({ code: o.code, message: o.message }, 'under-frequency trip settings refused');
      }
    },
  });
  const http = await startAgentHttp({
    host: c.httpHost,
    port: c.httpPort,
    metrics,
    health: () => ({
      ok: true,
      site: c.site,
      session,
      version: AGENT_VERSION,
      mqtt_connected: publisher.connected(),
      control_plane_connected: gateway.connected(),
      devices: inventory.length,
      devices_reporting: reporting.gpu + reporting.asic,
      spooled_batches: publisher.spooled(),
    }),
  });

  let seq = 0;
  let busy = false;
  let again = false;
  async function tick(): Promise<void> {
    if (busy) {
      // a slow read (unreachable miners) must not pile up ticks; one more after it is enough
      again = true;
      return;
    }
    busy = true;
    const end = metrics.readDuration.startTimer();
    try {
      const now = Date.now();
      const readings = await Promise.all(drivers.map((d) => d.read(now)));
      const gpus = readings.flatMap((r) => r.gpus);
      const asics = readings.flatMap((r) => r.asics);
      for (const [i, r] of readings.entries()) {
        for (const e of r.errors) metrics.readErrors.inc({ driver: drivers[i]!.name, code: e.code });
        if (r.errors.length) log.debug({ driver: drivers[i]!.name, errors: r.errors.slice(0, 5), count: r.errors.length }, 'device reads failed');
      }
      reporting = { gpu: gpus.length, asic: asics.length };
      for (const g of gpus) gpuWorkload.set(g.deviceId, g.workloadId);
      metrics.devicesReporting.set({ kind: 'gpu' }, gpus.length);
      metrics.devicesReporting.set({ kind: 'asic' }, asics.length);
      const batch = TelemetryBatch.encode({ siteId: c.site, seq: ++seq, sentAtMs: Date.now(), agentSession: session, gpus, asics }).finish();
      publisher.publishBatch(batch);
    } catch (err) {
      log.error({ err }, 'sampling tick failed');
    } finally {
      end();
      busy = false;
      if (again) {
        again = false;
        void tick();
      }
    }
  }
  const timer = setInterval(() => void tick(), c.sampleIntervalMs);

  log.info(
    { session, controlPlane: c.controlPlane, mqtt: c.mqtt, gpus: inventory.filter((d) => d.kind === 1).length, asics: inventory.filter((d) => d.kind === 2).length, drivers: drivers.map((d) => d.name), http: `http://${c.httpHost}:${http.port}` },
    'agent started',
  );

  let closing: Promise<void> | null = null;
  return {
    session,
    httpPort: http.port,
    tick,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await handler.idle();
        await trip.idle();
        await publisher.close();
        await gateway.close();
        await http.close();
        for (const d of drivers) await d.close();
        for (const f of fleets) await f.close();
      })();
      return closing;
    },
  };
}
