// npm run bench:ingest -- [--steps 10000,25000,50000,75000] [--step-s 60] [--devices-per-site 2500] [--drain-s 90]
//
// Telemetry ingest at fleet scale, stepped, against a real control-plane process (PostgreSQL at
// DATABASE_URL, in a database of its own that is dropped at the end; else the embedded PGlite
// in a temp directory, as `npm start` runs it).
//
// The load is a fair model of many sites: light agents, each its own gRPC stream (a Hello
// announcing its ASICs, with a spool state) and its own MQTT login, each publishing one
// TelemetryBatch of all its devices per second at QoS 1, staggered across the second. They
// behave as agents with a spool do (agent/spool/forwarder.ts): a batch is kept until the control
// plane's TelemetryCommitted covers its seq, and one not covered 15 s after it was sent is sent
// again, so a batch refused for backpressure is not lost, only late. Each step runs as many sites
// as its rate needs (rate / devices per site) for --step-s seconds.
//
// Measured per step, as the control plane's /metrics and the API tell it:
//   offered_per_s    samples first published in the step, per second
//   committed_per_s  hcp_ingest_samples_total's rise over the step, per second
//   loss             the step's samples never committed by the end of the drain (after the last
//                    step, up to --drain-s for what is still in the light agents' spools)
//   refused          batches refused for backpressure (sent again later)
//   freshness        now minus hcp_ingest_newest_sample_timestamp_seconds, read every 500 ms
//   rest             GET /api/v1/status, one after another, through the step
//   cpu, rss         the control-plane process (/proc), and the bench's own CPU
// A step is sustained when nothing was lost and ingest kept up: committed ≥ 95 % of offered (the
// step's last second is still in flight when it ends) and freshness p99 ≤ 5 s (behind, it grows
// without bound). The control plane takes HCP_INGEST_* from this process's environment
// (HCP_INGEST_FLUSHES=1 npm run bench:ingest compares one flush in flight).
// On PostgreSQL, raw COPY of the same wide ASIC rows into a copy of asic_telemetry (same columns,
// indexes and constraints) is measured in the same run, before the load: raw_copy_rows_per_s, and
// `ratio` = the sustained step's committed rate over it.
//
// Prints a JSON line as its last line: sustained_per_s, ratio, freshness_p99_s and rest_p99_ms at
// that step, raw_copy_rows_per_s, and `steps` (every step's figures).
import { credentials, Metadata } from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import postgres from 'postgres';
import { newSecret } from '../control-plane/auth/secrets.js';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { AgentGatewayClient, DeviceKind, type AgentMessage, type ControlMessage } from '../proto/gen/hcp/v1/gateway.js';
import { TelemetryBatch, type AsicSample } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { bearer, makeKey } from '../test/harness/auth.js';
import { startTs } from '../test/harness/processes.js';
import { createTestDatabase, type TestDatabase } from '../test/harness/postgres.js';
import { asic } from '../test/harness/samples.js';
import { pct, round1 } from './stats.js';

const USAGE = 'usage: npm run bench:ingest -- [--steps 10000,25000,50000,75000] [--step-s 60] [--devices-per-site 2500] [--drain-s 90] [--raw-copy-rows 300000]';
const { values } = (() => {
  try {
    return parseArgs({
      options: {
        steps: { type: 'string', default: '10000,25000,50000,75000' },
        'step-s': { type: 'string', default: '60' },
        'devices-per-site': { type: 'string', default: '2500' },
        'drain-s': { type: 'string', default: '90' },
        'raw-copy-rows': { type: 'string', default: '300000' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
})();
const STEPS = values.steps.split(',').map(Number);
const STEP_S = Number(values['step-s']);
const DPS = Number(values['devices-per-site']);
const DRAIN_S = Number(values['drain-s']);
const RAW_ROWS = Number(values['raw-copy-rows']);
const whole = (x: number, lo: number, hi: number) => Number.isInteger(x) && x >= lo && x <= hi;
if (
  !STEPS.length || !STEPS.every((r) => whole(r, 1, 1_000_000)) || !STEPS.every((r, i) => i === 0 || r > STEPS[i - 1]!) ||
  !whole(STEP_S, 5, 3600) || !whole(DPS, 1, 20_000) || !whole(DRAIN_S, 0, 3600) || !whole(RAW_ROWS, 0, 10_000_000)
) {
  console.error(`${USAGE}\n  steps: ascending whole samples/s; step-s 5–3600; devices-per-site 1–20000; drain-s 0–3600; raw-copy-rows 0–10000000`);
  process.exit(2);
}
const SITES = Math.ceil(STEPS.at(-1)! / DPS);
const RESEND_AFTER_MS = 15_000;
/** a step kept up when its newest stored sample was never older than this (p99) */
const KEPT_UP_FRESHNESS_S = 5;
const RESEND_WINDOW = 20;

// ---- the database and the control plane -------------------------------------------------------
let testDb: TestDatabase | null = null;
const dataDir = mkdtempSync(join(tmpdir(), 'hcp-bench-ingest-'));
if (process.env.DATABASE_URL) testDb = await createTestDatabase(process.env.DATABASE_URL, 'hcp_bench_ingest');
const ADMIN = newSecret();
const cp = startTs('control-plane', 'control-plane/main.ts', [], {
  ...(testDb ? { DATABASE_URL: testDb.url } : { DATABASE_URL: undefined, HCP_DATA_DIR: dataDir }),
  HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', LOG_LEVEL: 'info', HCP_ECONOMICS: 'off', HCP_ADMIN_KEY: ADMIN,
  HCP_RATE_LIMIT_PER_S: '1000000', HCP_RATE_LIMIT_BURST: '1000000', HCP_MAX_SITES: String(SITES + 10), HCP_HEARTBEAT_MS: '5000', HCP_STALE_AFTER_MS: '60000',
});
const exit = async (code: number) => {
  await cp.kill('SIGTERM').catch(() => {});
  await testDb?.drop().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(code);
};
const ready = await cp.waitForLog((l) => l.msg === 'control plane listening', 'listening', 120_000).catch((err: Error) => (console.error(err.message), null));
if (!ready) {
  console.error(cp.output());
  await exit(1);
}
const http = ready!.http as string;
const grpcAddr = ready!.grpc as string;
const mqttUrl = ready!.mqtt as string;

// ---- raw COPY, the ceiling ----------------------------------------------------------------------
const ASIC_COLUMNS = [
  'time', 'site_id', 'device_id', 'hashrate_5s_ths', 'hashrate_avg_ths', 'power_w', 'board_temperatures_c', 'chip_temperatures_c',
  'max_chip_temperature_c', 'fan_rpm', 'accepted_shares', 'rejected_shares', 'hardware_errors', 'mining_state', 'power_target_w',
];
async function rawCopy(url: string, rows: number): Promise<number | null> {
  if (rows === 0) return null;
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe('CREATE TABLE bench_raw_copy (LIKE asic_telemetry INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)');
    const t0 = Date.now() - 3_600_000;
    const lines = function* () {
      const chunk: string[] = [];
      for (let i = 0; i < rows; i++) {
        const site = `bench-${String(i % SITES).padStart(4, '0')}`;
        const device = `asic-${site}-${String(Math.floor(i / SITES) % DPS + 1).padStart(5, '0')}`;
        const ts = new Date(t0 + Math.floor(i / (SITES * DPS)) * 1000).toISOString();
        chunk.push(`${ts}\t${site}\t${device}\t270\t270\t3645\t{60,61,62}\t{70,71,75}\t75\t{4000,4100,4050,4020}\t10\t1\t2\tmining\t\\N\n`);
        if (chunk.length === 1000) {
          yield chunk.join('');
          chunk.length = 0;
        }
      }
      if (chunk.length) yield chunk.join('');
    };
    const started = performance.now();
    const w = (await sql.unsafe(`COPY bench_raw_copy (${ASIC_COLUMNS.join(', ')}) FROM STDIN`).writable()) as Writable;
    await pipeline(lines(), w);
    const s = (performance.now() - started) / 1000;
    const [n] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM bench_raw_copy`;
    if (n!.n !== rows) throw new Error(`raw COPY stored ${n!.n} of ${rows} rows`);
    return Math.round(rows / s);
  } finally {
    await sql.unsafe('DROP TABLE IF EXISTS bench_raw_copy').catch(() => {});
    await sql.end();
  }
}
const rawCopyPerS = testDb ? await rawCopy(testDb.url, RAW_ROWS) : null;
if (rawCopyPerS !== null) console.error(`raw COPY: ${rawCopyPerS} rows/s (${RAW_ROWS} rows)`);

// ---- light agents ------------------------------------------------------------------------------
interface Held { payload: Buffer; sentAt: number; rows: number; step: number }
interface LightAgent {
  site: string;
  publishing: boolean;
  /** batches not yet covered by TelemetryCommitted, by seq */
  held: Map<number, Held>;
  publish(step: number): void;
  resend(): void;
  close(): void;
}
const siteOf = (i: number) => `bench-${String(i).padStart(4, '0')}`;
let resent = 0;

function lightAgent(i: number, token: string): LightAgent {
  const site = siteOf(i);
  const stream = `bench-${site}-${Date.now().toString(36)}`;
  const ids = Array.from({ length: DPS }, (_, k) => `asic-${site}-${String(k + 1).padStart(5, '0')}`);
  // one template of the site's samples; each batch gets the time it is sampled
  const samples: AsicSample[] = ids.map((id) => asic(id, 0, 270, 3645));
  const client = new AgentGatewayClient(grpcAddr, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'hcp.bench.agent': i });
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  const call: ClientDuplexStream<AgentMessage, ControlMessage> = client.connect(md);
  call.on('error', () => {});
  const mq: MqttClient = mqtt.connect(mqttUrl, { username: site, password: token, clientId: `hcp-agent-${site}-bench`, reconnectPeriod: 1000 });
  mq.on('error', (e) => console.error('mqtt', site, e.message));
  let seq = 0;
  let beat = 0;
  const held = new Map<number, Held>();
  const spoolState = () => ({ stream, firstSeq: held.size ? Math.min(...held.keys()) : seq + 1, nextSeq: seq + 1, bytes: 0 });
  call.on('data', (m: ControlMessage) => {
    if (m.body?.$case !== 'telemetryCommitted' || m.body.value.stream !== stream) return;
    for (const s of held.keys()) if (s <= m.body.value.seq) held.delete(s);
  });
  call.write({
    body: {
      $case: 'hello',
      value: {
        siteId: site, agentVersion: 'bench', agentSession: stream, hostname: 'bench', spool: spoolState(),
        devices: ids.map((id) => ({ id, kind: DeviceKind.DEVICE_KIND_ASIC, model: 'Antminer S21 XP', endpoint: '', serial: '', ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: 0, driver: 'bench' })),
      },
    },
  });
  const send = (n: number, h: Held) => {
    h.sentAt = Date.now();
    mq.publish(topics.telemetry(site), h.payload, { qos: 1 });
  };
  const a: LightAgent = {
    site,
    publishing: false,
    held,
    publish(step) {
      if (!mq.connected) return;
      const t = Date.now();
      for (const s of samples) s.tsMs = t;
      const n = ++seq;
      const payload = Buffer.from(TelemetryBatch.encode({ siteId: site, seq: n, sentAtMs: t, agentSession: stream, stream, gpus: [], asics: samples }).finish());
      const h: Held = { payload, sentAt: t, rows: DPS, step };
      held.set(n, h);
      send(n, h);
      offered[step] = (offered[step] ?? 0) + DPS;
    },
    resend() {
      const t = Date.now();
      let k = 0;
      for (const [n, h] of held) {
        if (k >= RESEND_WINDOW) break;
        if (t - h.sentAt < RESEND_AFTER_MS) continue;
        send(n, h);
        resent++;
        k++;
      }
      call.write({ body: { $case: 'spoolState', value: spoolState() } });
      call.write({ body: { $case: 'heartbeat', value: { seq: ++beat, tsMs: t, devicesReporting: DPS, devicesTotal: DPS } } });
    },
    close() {
      call.cancel();
      client.close();
      mq.end(true);
    },
  };
  return a;
}

const offered: number[] = [];
const tokens: string[] = [];
for (let i = 0; i < SITES; i++) tokens.push(await makeKey(http, { role: 'agent', site: siteOf(i) }, ADMIN));
const agents = tokens.map((t, i) => lightAgent(i, t));
const status = async () => (await (await fetch(`${http}/api/v1/status`, { headers: bearer(ADMIN) })).json()) as { fleet: { devices_total: number } };
const connectStart = performance.now();
// every agent's Hello taken (its devices known): telemetry before it is dropped as unknown_device
for (;;) {
  const total = (await status().catch(() => null))?.fleet.devices_total ?? 0;
  if (total >= SITES * DPS) break;
  if (performance.now() - connectStart > 120_000) {
    console.error(`only ${total} of ${SITES * DPS} devices announced after 120 s`);
    await exit(1);
  }
  await new Promise((r) => setTimeout(r, 250));
}
console.error(`${SITES} light agents, ${SITES * DPS} devices announced in ${round1((performance.now() - connectStart) / 1000)} s`);
const resender = setInterval(() => agents.forEach((a) => a.resend()), 1000);

// ---- readings ----------------------------------------------------------------------------------
async function metrics(): Promise<Map<string, number>> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const committedOf = (m: Map<string, number>) => (m.get('hcp_ingest_samples_total{kind="asic"}') ?? 0) + (m.get('hcp_ingest_samples_total{kind="gpu"}') ?? 0);
const refusedOf = (m: Map<string, number>) => m.get('hcp_ingest_rejected_total{reason="backpressure"}') ?? 0;
const CLK_TCK = 100;
function procStat(pid: number): { cpuS: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(f[11]) + Number(f[12])) / CLK_TCK;
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { cpuS, rssMb: rssKb / 1024 };
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

interface StepFigures {
  offered_per_s: number;
  committed_per_s: number;
  loss: number;
  lost_samples: number;
  refused_batches: number;
  freshness_p50_s: number;
  freshness_p99_s: number;
  freshness_max_s: number;
  rest_p50_ms: number;
  rest_p99_ms: number;
  rest_max_ms: number;
  cp_cpu_pct: number;
  cp_rss_p50_mb: number;
  cp_rss_max_mb: number;
  buffered_bytes_max: number;
  bench_cpu_pct: number;
  sites: number;
}
const steps: StepFigures[] = [];
const pid = cp.child.pid!;

for (const [si, rate] of STEPS.entries()) {
  const active = agents.slice(0, Math.ceil(rate / DPS));
  console.error(`step ${si + 1}/${STEPS.length}: ${rate} samples/s from ${active.length} sites for ${STEP_S} s`);
  const timers: NodeJS.Timeout[] = [];
  // staggered across the second, as independent sites are
  active.forEach((a, k) => {
    timers.push(setTimeout(() => {
      a.publish(si);
      timers.push(setInterval(() => a.publish(si), 1000));
    }, Math.floor((k * 1000) / active.length)));
  });
  const m0 = await metrics();
  const p0 = procStat(pid);
  const c0 = selfCpu();
  const t0 = performance.now();
  const fresh: number[] = [];
  const rest: number[] = [];
  const rss: number[] = [];
  let bufferedMax = 0;
  const until = t0 + STEP_S * 1000;
  const warm = t0 + Math.min(5000, STEP_S * 200);
  // REST, one call after another
  const restLoop = (async () => {
    while (performance.now() < until) {
      const s = performance.now();
      const r = await fetch(`${http}/api/v1/status`, { headers: bearer(ADMIN) }).catch(() => null);
      await r?.arrayBuffer();
      if (performance.now() >= warm) rest.push(performance.now() - s);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  while (performance.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    const m = await metrics().catch(() => null);
    if (m && performance.now() >= warm) {
      const newest = m.get('hcp_ingest_newest_sample_timestamp_seconds') ?? 0;
      if (newest > 0) fresh.push(Date.now() / 1000 - newest);
      bufferedMax = Math.max(bufferedMax, m.get('hcp_ingest_buffered_bytes') ?? 0);
      rss.push(procStat(pid).rssMb);
    }
  }
  for (const t of timers) clearInterval(t);
  await restLoop;
  const s = (performance.now() - t0) / 1000;
  const m1 = await metrics();
  const p1 = procStat(pid);
  steps.push({
    offered_per_s: Math.round((offered[si] ?? 0) / s),
    committed_per_s: Math.round((committedOf(m1) - committedOf(m0)) / s),
    loss: 0,
    lost_samples: 0,
    refused_batches: refusedOf(m1) - refusedOf(m0),
    freshness_p50_s: round1(pct(fresh, 50)),
    freshness_p99_s: round1(pct(fresh, 99)),
    freshness_max_s: round1(Math.max(...fresh)),
    rest_p50_ms: round1(pct(rest, 50)),
    rest_p99_ms: round1(pct(rest, 99)),
    rest_max_ms: round1(Math.max(...rest)),
    cp_cpu_pct: round1(((p1.cpuS - p0.cpuS) / s) * 100),
    cp_rss_p50_mb: Math.round(pct(rss, 50)),
    cp_rss_max_mb: Math.round(Math.max(...rss)),
    buffered_bytes_max: bufferedMax,
    bench_cpu_pct: round1(((selfCpu() - c0) / s) * 100),
    sites: active.length,
  });
  console.error(JSON.stringify({ step: si + 1, rate, ...steps.at(-1) }));
}

// ---- drain: what the spools still hold is sent again until committed, or the drain ends ---------
const drainStart = performance.now();
while (agents.some((a) => a.held.size > 0) && performance.now() - drainStart < DRAIN_S * 1000) await new Promise((r) => setTimeout(r, 500));
const drainS = round1((performance.now() - drainStart) / 1000);
clearInterval(resender);
for (const a of agents) {
  for (const h of a.held.values()) {
    steps[h.step]!.lost_samples += h.rows;
  }
}
STEPS.forEach((_, i) => {
  const st = steps[i]!;
  const offeredSamples = offered[i] ?? 0;
  st.loss = offeredSamples ? Number((st.lost_samples / offeredSamples).toFixed(4)) : 0;
});
for (const a of agents) a.close();

const keptUp = (st: StepFigures) => st.loss === 0 && st.committed_per_s >= 0.95 * st.offered_per_s && st.freshness_p99_s <= KEPT_UP_FRESHNESS_S;
const sustainedAt = steps.map((st, i) => ({ st, i })).filter(({ st }) => keptUp(st)).at(-1);
const result = {
  bench: 'ingest',
  database: testDb ? 'postgres' : 'pglite',
  devices_per_site: DPS,
  step_s: STEP_S,
  sustained_per_s: sustainedAt ? STEPS[sustainedAt.i]! : 0,
  ratio: sustainedAt && rawCopyPerS ? Number((sustainedAt.st.committed_per_s / rawCopyPerS).toFixed(2)) : null,
  freshness_p99_s: sustainedAt?.st.freshness_p99_s ?? null,
  rest_p99_ms: sustainedAt?.st.rest_p99_ms ?? null,
  raw_copy_rows_per_s: rawCopyPerS,
  resent_batches: resent,
  drain_s: drainS,
  steps: steps.map((st, i) => ({ rate: STEPS[i], ...st })),
};
await cp.kill('SIGTERM');
await testDb?.drop().catch(() => {});
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify(result));
process.exit(0);
