// npm run bench:schedule -- [--workloads 10000] [--rate 200] [--sites 125] [--gpus 8]
//
// Submits workloads through REST at a steady rate against a real control-plane process whose
// fleet is light agents (real gRPC streams, one HTTP/2 connection each) holding sites × gpus
// H100s, answering Allocate/Release/SetMining at once, while every site publishes a telemetry
// batch (its GPUs and ASICs) over MQTT each second. The mix is realtime, batch and training with
// short duration_s, sized to keep the fleet busy (some preemption happens).
// Figures:
//   submit_p99_ms             REST latency of POST /api/v1/workloads (goal ≤ 50 ms at 200/s)
//   submit_to_running_p99_ms  submit → the agent receives the workload's first Allocate and
//                             confirms it (the control plane marks it running on that result)
//   decisions_per_s           placements per second of scheduler pass time (its capacity)
//   placements_per_s_wall     placements per second of wall time over the run
//   plan_max_ms / ingest_lag_p99_s  how long a pass holds the event loop, and ingest lag meanwhile
// Uses DATABASE_URL's server when set, in a database of its own that is dropped at the end (the
// server's default database may not let its role create tables: PostgreSQL 15's public schema),
// else the embedded PGlite in a temp directory. Prints a JSON line
// as its last line.
import { credentials } from '@grpc/grpc-js';
import mqtt from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CommandOutcome } from '../proto/gen/hcp/v1/commands.js';
import { AgentGatewayClient, DeviceKind, type ControlMessage } from '../proto/gen/hcp/v1/gateway.js';
import { GpuState, MiningState, TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { newSecret } from '../control-plane/auth/secrets.js';
import { bearer, makeKey } from '../test/harness/auth.js';
import { createTestDatabase } from '../test/harness/postgres.js';
import { startTs } from '../test/harness/processes.js';
import { Metadata } from '@grpc/grpc-js';
import { pct, round1 } from './stats.js';

const { values } = parseArgs({
  options: {
    workloads: { type: 'string', default: '10000' }, rate: { type: 'string', default: '200' },
    sites: { type: 'string', default: '125' }, gpus: { type: 'string', default: '8' }, asics: { type: 'string', default: '8' },
  },
});
const TOTAL = Number(values.workloads);
const RATE = Number(values.rate);
const SITES = Number(values.sites);
const GPUS = Number(values.gpus);
const ASICS = Number(values.asics);
if (!(TOTAL > 0 && RATE > 0 && SITES > 0 && GPUS > 0 && ASICS >= 0)) {
  console.error('usage: npm run bench:schedule -- --workloads N --rate R --sites S --gpus G --asics A');
  process.exit(2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dataDir = mkdtempSync(join(tmpdir(), 'hcp-bench-'));
// A fresh admin key for this run, which submits at --rate: its rate limit is lifted. Each light
// agent has its own site credential, on gRPC and as its MQTT login.
const ADMIN = newSecret();
const testDb = process.env.DATABASE_URL ? await createTestDatabase(process.env.DATABASE_URL, 'hcp_bench_schedule') : null;
async function fail(why: string): Promise<never> {
  console.error(why);
  await cp.kill('SIGTERM').catch(() => {});
  await testDb?.drop().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(1);
}
const cp = startTs('control-plane', 'control-plane/main.ts', [], {
  ...(testDb ? { DATABASE_URL: testDb.url } : {}),
  HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_DATA_DIR: dataDir, LOG_LEVEL: 'info', HCP_HEARTBEAT_MS: '5000',
  HCP_STALE_AFTER_MS: '60000', HCP_ADMIN_KEY: ADMIN, HCP_RATE_LIMIT_PER_S: '1000000', HCP_RATE_LIMIT_BURST: '1000000', HCP_MAX_SITES: String(SITES + 10),
});
const ready = await cp.waitForLog((l) => l.msg === 'control plane listening', 'listening', 60_000).catch(() => null);
if (!ready) await fail(cp.output());
const http = ready!.http as string;
const grpc = ready!.grpc as string;
const mqttUrl = ready!.mqtt as string;

const siteId = (i: number) => `bench-${String(i).padStart(4, '0')}`;
const gpuId = (s: string, k: number) => `gpu-${s}-${String(k + 1).padStart(4, '0')}`;
const asicId = (s: string, k: number) => `asic-${s}-${String(k + 1).padStart(5, '0')}`;
/** first Allocate confirmed by an agent, per workload */
const allocatedAt = new Map<string, number>();
let allocates = 0;
const busy = new Map<string, string>(); // gpu → workload, as the agents hold them

const tokens: string[] = [];
for (let i = 0; i < SITES; i++) tokens.push(await makeKey(http, { role: 'agent', site: siteId(i) }, ADMIN));

function lightAgent(i: number) {
  const site = siteId(i);
  const client = new AgentGatewayClient(grpc, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'hcp.bench.agent': i });
  const md = new Metadata();
  md.set('authorization', `Bearer ${tokens[i]}`);
  const stream = client.connect(md);
  stream.on('data', (m: ControlMessage) => {
    if (m.body?.$case !== 'command') return;
    const c = m.body.value;
    stream.write({ body: { $case: 'commandAck', value: { commandId: c.commandId } } });
    const a = c.action;
    let devices: Array<{ deviceId: string; state: string; workloadId: string; powerTargetW: number }> = [];
    if (a?.$case === 'allocate') {
      allocates++;
      if (!allocatedAt.has(a.value.workloadId)) allocatedAt.set(a.value.workloadId, performance.now());
      for (const g of a.value.deviceIds) busy.set(g, a.value.workloadId);
      devices = a.value.deviceIds.map((deviceId) => ({ deviceId, state: 'busy', workloadId: a.value.workloadId, powerTargetW: 0 }));
    } else if (a?.$case === 'release') {
      for (const g of a.value.deviceIds) if (busy.get(g) === a.value.workloadId) busy.delete(g);
      devices = a.value.deviceIds.map((deviceId) => ({ deviceId, state: 'idle', workloadId: '', powerTargetW: 0 }));
    }
    stream.write({ body: { $case: 'commandResult', value: { commandId: c.commandId, outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED, reasonCode: 'ok', message: '', devices, appliedAtMs: Date.now() } } });
  });
  stream.on('error', () => {});
  stream.write({
    body: {
      $case: 'hello',
      value: {
        siteId: site, agentVersion: 'bench', agentSession: `s-${i}`, hostname: 'bench',
        devices: [
          ...Array.from({ length: GPUS }, (_, k) => ({ id: gpuId(site, k), kind: DeviceKind.DEVICE_KIND_GPU, model: 'NVIDIA H100 80GB HBM3', endpoint: '', serial: '', ratedPowerW: 700, ratedHashrateThs: 0, memoryTotalMib: 81559, driver: 'bench' })),
          ...Array.from({ length: ASICS }, (_, k) => ({ id: asicId(site, k), kind: DeviceKind.DEVICE_KIND_ASIC, model: 'Antminer S21 XP', endpoint: '', serial: '', ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: 0, driver: 'bench' })),
        ],
      },
    },
  });
  return { close: () => { stream.cancel(); client.close(); } };
}

const agents = [];
for (let i = 0; i < SITES; i++) {
  agents.push(lightAgent(i));
  if (i % 50 === 49) await sleep(20);
}

// Telemetry: every site, every second, one batch of all its devices.
const pubs = await Promise.all(Array.from({ length: SITES }, (_, i) =>
  mqtt.connectAsync(mqttUrl, { clientId: `hcp-agent-${siteId(i)}-bench`, username: siteId(i), password: tokens[i] })));
let seq = 0;
let telemetryBatches = 0;
const publishAll = async () => {
  const t = Date.now();
  seq++;
  await Promise.all(Array.from({ length: SITES }, (_, i) => {
    const site = siteId(i);
    const batch = TelemetryBatch.encode({
      siteId: site, seq, sentAtMs: t, agentSession: `s-${i}`,
      gpus: Array.from({ length: GPUS }, (_, k) => {
        const w = busy.get(gpuId(site, k)) ?? '';
        return {
          deviceId: gpuId(site, k), tsMs: t, utilizationPct: w ? 92 : 2, memoryUsedMib: w ? 70000 : 0, memoryTotalMib: 81559, temperatureC: w ? 65 : 45, powerW: w ? 640 : 105,
          smClockMhz: w ? 1980 : 1000, state: w ? GpuState.GPU_STATE_BUSY : GpuState.GPU_STATE_IDLE, workloadId: w, memoryTemperatureC: 50, powerLimitW: 700, energyMj: 0, xidErrors: 0,
        };
      }),
      asics: Array.from({ length: ASICS }, (_, k) => ({
        deviceId: asicId(site, k), tsMs: t, hashrate5sThs: 270, hashrateAvgThs: 270, powerW: 3645, boardTemperaturesC: [60, 61, 62], chipTemperaturesC: [70, 71, 72],
        fanRpm: [4000, 4000, 4000, 4000], acceptedShares: 1, rejectedShares: 0, hardwareErrors: 0, miningState: MiningState.MINING_STATE_MINING, powerTargetW: 0,
      })),
    }).finish();
    telemetryBatches++;
    return pubs[i]!.publishAsync(topics.telemetry(site), Buffer.from(batch), { qos: 1 });
  }));
};
let telemetryOn = true;
const telemetryLoop = (async () => {
  while (telemetryOn) {
    const t = performance.now();
    await publishAll();
    await sleep(Math.max(0, 1000 - (performance.now() - t)));
  }
})();

const metricsText = async () => (await fetch(`${http}/metrics`)).text(); // /metrics is open
const metric = (text: string, name: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
};
const t0 = performance.now();
for (;;) {
  const s = (await (await fetch(`${http}/api/v1/status`, { headers: bearer(ADMIN) })).json()) as { sites: Array<{ id: string; gpus_online: number }> };
  const online = s.sites.filter((x) => x.id.startsWith('bench-')).reduce((n, x) => n + x.gpus_online, 0);
  if (online >= SITES * GPUS) break;
  if (performance.now() - t0 > 120_000) {
    await fail(`only ${online} of ${SITES * GPUS} GPUs online after 120 s`);
  }
  await sleep(200);
}
console.error(`${SITES} sites, ${SITES * GPUS} GPUs online in ${((performance.now() - t0) / 1000).toFixed(1)} s; submitting ${TOTAL} workloads at ${RATE}/s`);

// A seeded mix, so runs compare.
let rnd = 42;
const rand = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
function workload(i: number) {
  const r = rand();
  const [type, priority, gpus, duration] = r < 0.2
    ? ['ai_inference_realtime', pick(1, 2), 1, pick(1, 2)]
    : r < 0.8 ? ['ai_inference_batch', pick(3, 8), pick(1, 2), pick(1, 3)] : ['ai_training', pick(5, 9), pick(2, 4), pick(1, 3)];
  return { customer_id: 'cust-001', workload_type: type, priority, requirements: { gpu_type: 'H100', gpu_count: gpus }, duration_s: duration, idempotency_key: `bench-${i}` };
}

const before = await metricsText();
const submitMs: number[] = [];
const submittedAt = new Map<string, number>();
let failures = 0;
const inflight: Promise<void>[] = [];
const start = performance.now();
for (let i = 0; i < TOTAL; i++) {
  const due = start + (i * 1000) / RATE;
  const wait = due - performance.now();
  if (wait > 1) await sleep(wait);
  const body = JSON.stringify(workload(i));
  inflight.push((async () => {
    const t = performance.now();
    const res = await fetch(`${http}/api/v1/workloads`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(ADMIN) }, body });
    const w = (await res.json()) as { id?: string };
    submitMs.push(performance.now() - t);
    if (res.status !== 201 || !w.id) failures++;
    else submittedAt.set(w.id, t);
  })());
}
await Promise.all(inflight);
const submitWall = (performance.now() - start) / 1000;
console.error(`submitted in ${submitWall.toFixed(1)} s (${failures} refused); waiting for every workload to run`);
const deadline = performance.now() + 180_000;
while ([...submittedAt.keys()].some((id) => !allocatedAt.has(id))) {
  if (performance.now() > deadline) break;
  await sleep(200);
}
const end = performance.now();
const after = await metricsText();
const notRun = [...submittedAt.keys()].filter((id) => !allocatedAt.has(id)).length;
const toRunning = [...submittedAt].flatMap(([id, t]) => (allocatedAt.has(id) ? [allocatedAt.get(id)! - t] : []));
const placed = metric(after, 'hcp_scheduler_decisions_total{kind="place"}') - metric(before, 'hcp_scheduler_decisions_total{kind="place"}');
const passS = metric(after, 'hcp_scheduler_pass_seconds_sum') - metric(before, 'hcp_scheduler_pass_seconds_sum');
const passes = metric(after, 'hcp_scheduler_pass_seconds_count') - metric(before, 'hcp_scheduler_pass_seconds_count');
const planS = metric(after, 'hcp_scheduler_plan_seconds_sum') - metric(before, 'hcp_scheduler_plan_seconds_sum');
// the largest plan bucket that saw an observation bounds the longest single decision phase
const planMax = (() => {
  let max = NaN;
  let prev = 0;
  for (const l of after.split('\n')) {
    const m = /^hcp_scheduler_plan_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(l);
    if (!m) continue;
    const n = Number(m[2]);
    if (n > prev && Number.isNaN(max)) max = Number(m[1]);
    if (n > prev) max = Number(m[1]);
    prev = n;
  }
  return max;
})();
const ingestLagP99 = (() => {
  const buckets: Array<[number, number]> = [];
  for (const l of after.split('\n')) {
    const m = /^hcp_ingest_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(l);
    if (m) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  }
  const total = buckets.at(-1)?.[1] ?? 0;
  return buckets.find(([, n]) => n >= 0.99 * total)?.[0] ?? NaN;
})();

telemetryOn = false;
await telemetryLoop;
for (const p of pubs) await p.endAsync();
for (const a of agents) a.close();
await cp.kill('SIGTERM');
await testDb?.drop();
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify({
  bench: 'schedule',
  database: process.env.DATABASE_URL ? 'postgres' : 'pglite',
  workloads: TOTAL, rate_per_s: RATE, gpus: SITES * GPUS, sites: SITES, refused: failures, never_ran: notRun,
  submit_p50_ms: round1(pct(submitMs, 50)),
  submit_p99_ms: round1(pct(submitMs, 99)),
  submit_to_running_p50_ms: round1(pct(toRunning, 50)),
  submit_to_running_p99_ms: round1(pct(toRunning, 99)),
  decisions_per_s: Math.round(placed / Math.max(passS, 1e-9)),
  placements_per_s_wall: Math.round(placed / ((end - start) / 1000)),
  placements: placed, allocates_seen: allocates, passes,
  plan_avg_ms: round1((planS / Math.max(passes, 1)) * 1000), plan_max_ms_bucket: planMax * 1000,
  ingest_lag_p99_s_bucket: ingestLagP99, telemetry_batches: telemetryBatches,
}));
process.exit(0);
