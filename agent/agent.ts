// Wires one site's agent: drivers (built by name from the registry the entry point passes in:
// agent/drivers/registry.ts), the sampling loop, the desired state and its converger, the MQTT
// publisher, the control-plane stream and the local HTTP endpoint. Shutdown order
// (docs/conventions.md): stop sampling → flush telemetry and publish offline → close the stream →
// stop the devices.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import type { AgentConfig } from './config.js';
import { createCommandHandler } from './commands/handler.js';
import { createDesiredConverger } from './desired/converger.js';
import { buildDrivers, type DriverRegistry } from './drivers/registry.js';
import { createGridTrip } from './grid/grid-trip.js';
import { loadTrip, saveTrip } from './grid/trip-store.js';
import { openResultJournal, type ResultJournal } from './commands/result-journal.js';
import { createGatewayClient } from './grpc/gateway-client.js';
import { startAgentHttp } from './http/server.js';
import { createDeviceMetrics } from './device-metrics.js';
import { createAgentMetrics } from './metrics.js';
import { encodeTelemetryBatch } from './telemetry-encoding.js';
import { createPublisher } from './mqtt/publisher.js';
import { createForwarder } from './spool/forwarder.js';
import { openSpool } from './spool/spool.js';
import { AGENT_VERSION } from './version.js';

export interface Agent {
  readonly session: string;
  readonly httpPort: number;
  /** one sampling tick now (tests) */
  tick(): Promise<void>;
  close(): Promise<void>;
}

/** the PEM files the agent was given, read once at start */
function readTls(c: AgentConfig): { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  if (!c.caFile && !c.certFile) return undefined;
  return {
    ...(c.caFile ? { ca: readFileSync(c.caFile) } : {}),
    ...(c.certFile ? { cert: readFileSync(c.certFile), key: readFileSync(c.keyFile!) } : {}),
  };
}

/** command results remembered for at-most-once (in memory, and in the state dir) */
const RESULTS_REMEMBERED = 10_000;

/**
 * HCP_AGENT_CHAOS_EXIT_AFTER_APPLY=1, a test hook (test/chaos/agent-power-cut.test.ts): a power
 * cut at the one moment that matters, a command applied to the devices but neither its result
 * journaled nor sent. One line to stdout, written synchronously, then SIGKILL: nothing else runs.
 */
function chaosExitAfterApply(commandId: string): void {
  writeSync(1, `${JSON.stringify({ level: 50, time: Date.now(), msg: 'chaos: exit after apply', command: commandId })}\n`);
  process.kill(process.pid, 'SIGKILL');
}

/**
 * HCP_AGENT_CHAOS_APPLY_DELAY_MS, a test hook (test/chaos/leader-failover.test.ts): devices slow
 * to take a command, so a fleet curtail is still in flight when the scenario kills the leader.
 */
function chaosApplyDelay(): (() => Promise<void>) | undefined {
  const ms = Number(process.env.HCP_AGENT_CHAOS_APPLY_DELAY_MS ?? 0);
  return Number.isFinite(ms) && ms > 0 ? () => new Promise((r) => setTimeout(r, Math.min(ms, 60_000))) : undefined;
}

export interface AgentDeps {
  /** driver factories by name: the core's (cgminer) plus whatever the entry point registers (sim) */
  drivers: DriverRegistry;
  /** wall clock for the desired-state converger's ramp window and backoff (tests); default Date.now */
  now?: () => number;
}

export async function createAgent(c: AgentConfig, log: Logger, deps: AgentDeps): Promise<Agent> {
  const metrics = createAgentMetrics();
  const session = randomUUID();
  const built = await buildDrivers(c, log, deps.drivers);
  const drivers = built.drivers;
  const inventory = drivers.flatMap((d) => d.inventory());
  // the devices' readings on /metrics (DCGM and cgminer-exporter names), rendered on a scrape
  const deviceMetrics = createDeviceMetrics({ inventory, hostname: hostname() });
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
  // the telemetry spool (agent/spool/spool.ts): every batch is on disk before it is sent
  const spoolLog = log.child({ component: 'spool' });
  const spool = openSpool({
    dir: join(c.stateDir, 'spool'),
    maxBytes: c.spoolMaxBytes,
    segmentBytes: c.spoolSegmentBytes,
    fsyncMs: c.spoolFsyncMs,
    log: spoolLog,
    // a seq handed out before an unclean stop that the spool lost: an empty batch says so
    placeholder: (seq, stream) => TelemetryBatch.encode({ siteId: c.site, seq, sentAtMs: Date.now(), agentSession: session, gpus: [], asics: [], stream }).finish(),
    onDropped: (d) => {
      metrics.spoolSegmentsDropped.inc(d.segments);
      metrics.batchesDropped.inc(d.batches);
      // the control plane counts what is below first_seq as gone, not as a gap to wait for
      setImmediate(() => gateway.send({ body: { $case: 'spoolState', value: d.state } }));
    },
    onCorrupt: () => metrics.spoolCorruptSkipped.inc(),
  });
  metrics.spoolPlaceholders.inc(spool.stats().placeholders);
  metrics.spoolCorruptSkipped.inc(spool.stats().corruptSkipped);
  const spoolGauges = () => {
    metrics.spoolBytes.set(spool.state().bytes);
    metrics.batchesSpooled.set(spool.pendingCount());
  };
  spoolGauges();
  const publisher = createPublisher({
    url: c.mqtt, site: c.site, tls, login: c.token ? { username: c.site, password: c.token } : undefined, session, version: AGENT_VERSION,
    log: log.child({ component: 'mqtt' }), metrics, onConnect: () => forwarder.round(),
  });
  const forwarder = createForwarder({
    spool,
    publish: (p) => publisher.publishBatch(p),
    canResend: () => publisher.connected() && gateway.connected(),
    resendAfterMs: c.resendAfterMs,
    window: c.resendWindow,
    log: spoolLog,
    onResent: (n) => metrics.batchesResent.inc(n),
  });
  // tick is hoisted below; a command's effect is sampled and published at once
  const trip = createGridTrip({
    drivers,
    listen: (t, fn) => publisher.listen(t, fn),
    unlisten: (t) => publisher.unlisten(t),
    report: (f) => {
      desired.tripped(f.deviceIds);
      gateway.send({ body: { $case: 'gridTripFired', value: f } });
    },
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
  // the desired state: loaded from the state dir now, replaced by the control plane's
  const desired = createDesiredConverger({
    drivers,
    connected: () => gateway.connected(),
    sendHeld: (version) => void gateway.send({ body: { $case: 'desiredStateHeld', value: { version } } }),
    log: log.child({ component: 'desired' }),
    metrics,
    stateDir: c.stateDir,
    now: deps.now,
  });
  const handler = createCommandHandler({
    drivers,
    afterApply: process.env.HCP_AGENT_CHAOS_EXIT_AFTER_APPLY === '1' ? chaosExitAfterApply : undefined,
    beforeApply: chaosApplyDelay(),
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
    hello: () => ({ siteId: c.site, agentVersion: AGENT_VERSION, agentSession: session, devices: inventory, hostname: hostname(), spool: spool.state() }),
    health: () => ({ reporting: reporting.gpu + reporting.asic, total: inventory.length }),
    log: log.child({ component: 'grpc' }),
    metrics,
    onControl: (m) => {
      if (m.body?.$case === 'command') handler.handle(m.body.value);
      if (m.body?.$case === 'desiredState') desired.offer(m.body.value);
      if (m.body?.$case === 'telemetryCommitted') committed(m.body.value);
      // the control plane arms the trip at every connect; while it is unreachable the trip
      // keeps the settings it last had
      if (m.body?.$case === 'helloAck' && m.body.value.gridTrip) {
        const o = trip.arm(m.body.value.gridTrip);
        if (!o.ok) log.error({ code: o.code, message: o.message }, 'under-frequency trip settings refused');
      }
      // the stream is up: what was not committed can go again (after a restart: the replay)
      if (m.body?.$case === 'helloAck') setImmediate(() => forwarder.round());
    },
  });
  function spoolHealth() {
    const s = spool.state();
    return { stream: s.stream, first_seq: s.firstSeq, next_seq: s.nextSeq, bytes: s.bytes, pending: spool.pendingCount(), committed: spool.committed(), resending: forwarder.inFlight() };
  }
  function committed(t: { stream: string; seq: number }): void {
    if (t.stream !== spool.stream) {
      metrics.commitsIgnored.inc();
      spoolLog.warn({ stream: t.stream, seq: t.seq, ours: spool.stream }, 'telemetry commit for another stream: ignored');
      return;
    }
    const ahead = spool.stats().commitsAhead;
    try {
      forwarder.committed(t.seq);
    } catch (err) {
      spoolLog.error({ err, seq: t.seq }, 'could not trim the spool');
    }
    if (spool.stats().commitsAhead > ahead) metrics.commitsIgnored.inc();
    spoolGauges();
  }
  const http = await startAgentHttp({
    host: c.httpHost,
    port: c.httpPort,
    metrics,
    deviceMetrics,
    health: () => ({
      ok: true,
      site: c.site,
      session,
      version: AGENT_VERSION,
      mqtt_connected: publisher.connected(),
      control_plane_connected: gateway.connected(),
      devices: inventory.length,
      devices_reporting: reporting.gpu + reporting.asic,
      spooled_batches: spool.pendingCount(),
      spool: spoolHealth(),
      desired_state: desired.status(),
    }),
  });

  // One writer for every batch: finish() hands out a copy of the bytes and keeps its buffer, so a
  // 5,000-ASIC batch (0.6 MB) is not grown from 1 KB by doubling again every second.
  const writer = new BinaryWriter();
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
      deviceMetrics.update(gpus, asics);
      for (const g of gpus) gpuWorkload.set(g.deviceId, g.workloadId);
      metrics.devicesReporting.set({ kind: 'gpu' }, gpus.length);
      metrics.devicesReporting.set({ kind: 'asic' }, asics.length);
      const seq = spool.state().nextSeq;
      const batch = encodeTelemetryBatch({ siteId: c.site, seq, sentAtMs: Date.now(), agentSession: session, gpus, asics, stream: spool.stream }, writer);
      try {
        // on disk first; a batch the spool could not take (disk full) is not sent: its seq
        // would be handed out again
        spool.append(seq, batch);
        forwarder.live(seq, batch);
      } catch (err) {
        log.error({ err, seq }, 'could not spool the telemetry batch; it is lost');
        metrics.batchesDropped.inc();
      }
      spoolGauges();
      // after the telemetry: the converger acts on what was just read
      await desired.converge({ gpus, asics });
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
        await desired.idle();
        forwarder.close();
        await publisher.close();
        await gateway.close();
        spool.close();
        await http.close();
        await built.close();
        journal?.close();
      })();
      return closing;
    },
  };
}
