// npm run bench:agent -- [--seconds 60] [--warmup-s 15] [--only NAME,NAME]
//
// The built agent (dist/hcp-agent, built first when stale) as a site runs it, against a real
// control-plane process (PGlite in a temp directory, or DATABASE_URL's server in a database of
// its own) with its own site credential. For each configuration it waits out a warm-up, then
// reads the agent's /proc every second for --seconds: RSS (p50 and max) and CPU (user + system
// over the window, % of one core). samples_per_s is what the control plane stored from that site
// over the window (hcp_ingest_samples_total). The cgminer configuration polls miners simulated in
// another process (bench/cgminer-fleet.ts) over TCP at a 5 s cadence; its read time per cycle is
// the agent's own hcp_agent_read_seconds histogram over the measured window (read_s_p99 is the
// upper bound of the bucket holding the 99th percentile, read_s_max that of the highest used).
// sim-5000-asics-as-unit is the first configuration again, with the environment
// deploy/systemd/hcp-agent.service gives the agent.
// heap_used_mb, heap_total_mb, new_space_mb and external_mb are the agent's own V8 figures at the
// end of the window (its /metrics). Prints one JSON line last: { bench: "agent", configs: [{ name,
// devices, rss_p50_mb, rss_max_mb, cpu_pct, samples_per_s, … }] }.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { newSecret } from '../control-plane/auth/secrets.js';
import { makeKey } from '../test/harness/auth.js';
import { AGENT_BINARY, AGENT_BUNDLE, ensureAgentBinary } from '../test/harness/agent-binary.js';
import { createTestDatabase, type TestDatabase } from '../test/harness/postgres.js';
import { ROOT, startBinary, startTs, type Proc } from '../test/harness/processes.js';
import { unitEnvironment } from '../test/harness/systemd-unit.js';
import { waitFor } from '../test/harness/wait-for.js';
import { pct, round1 } from './stats.js';

interface Config {
  name: string;
  gpus: number;
  asics: number;
  /** miners in another process, polled over the cgminer TCP API */
  cgminer?: number;
  intervalMs: number;
  /** with the environment deploy/systemd/hcp-agent.service gives it (UV_THREADPOOL_SIZE, MALLOC_ARENA_MAX) */
  unit?: boolean;
}
const CONFIGS: Config[] = [
  { name: 'sim-5000-asics', gpus: 0, asics: 5000, intervalMs: 1000 },
  { name: 'sim-5000-asics-as-unit', gpus: 0, asics: 5000, intervalMs: 1000, unit: true },
  { name: 'sim-1000-asics-100-gpus', gpus: 100, asics: 1000, intervalMs: 1000 },
  { name: 'cgminer-miners', gpus: 0, asics: 0, cgminer: 5000, intervalMs: 5000 },
];

const USAGE = `usage: npm run bench:agent -- [--seconds 60] [--warmup-s 15] [--cgminer-miners 5000] [--heap-snapshot-dir DIR] [--only ${CONFIGS.map((c) => c.name).join(',')}]`;
let values: { seconds: string; 'warmup-s': string; only?: string; 'cgminer-miners': string; 'heap-snapshot-dir'?: string };
try {
  ({ values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, 'warmup-s': { type: 'string', default: '15' }, only: { type: 'string' }, 'cgminer-miners': { type: 'string', default: '5000' }, 'heap-snapshot-dir': { type: 'string' } }, strict: true }) as never);
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const SECONDS = Number(values.seconds);
const WARMUP_S = Number(values['warmup-s']);
const MINERS = Number(values['cgminer-miners']);
const only = values.only?.split(',').filter(Boolean);
const chosen = only ? CONFIGS.filter((c) => only.includes(c.name)) : CONFIGS;
if (!(Number.isInteger(SECONDS) && SECONDS >= 5 && SECONDS <= 3600) || !(Number.isInteger(WARMUP_S) && WARMUP_S >= 0 && WARMUP_S <= 600)
  || !(Number.isInteger(MINERS) && MINERS >= 1 && MINERS <= 20_000) || chosen.length === 0 || (only && chosen.length !== only.length)) {
  console.error(`${USAGE}\n  seconds: 5–3600; warmup-s: 0–600; cgminer-miners: 1–20000; only: names from the list`);
  process.exit(2);
}

/** the unit's environment (its HCP_AGENT_STATE_DIR loses to each configuration's --state-dir) */
const unitEnv = unitEnvironment();

console.error('building dist/hcp-agent when stale …');
ensureAgentBinary();

// ---- the control plane -----------------------------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'hcp-bench-agent-'));
let testDb: TestDatabase | null = null;
if (process.env.DATABASE_URL) testDb = await createTestDatabase(process.env.DATABASE_URL, 'hcp_bench_agent');
const ADMIN = newSecret();
const cp = startTs('control-plane', 'control-plane/main.ts', [], {
  ...(testDb ? { DATABASE_URL: testDb.url } : { DATABASE_URL: undefined, HCP_DATA_DIR: join(dir, 'cp') }),
  HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', LOG_LEVEL: 'info', HCP_ECONOMICS: 'off', HCP_ADMIN_KEY: ADMIN,
  HCP_RATE_LIMIT_PER_S: '100000', HCP_RATE_LIMIT_BURST: '100000', HCP_STALE_AFTER_MS: '30000',
});
const children: Proc[] = [cp];
const exit = async (code: number) => {
  for (const p of children.reverse()) await p.kill('SIGTERM').catch(() => {});
  await testDb?.drop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
};
process.on('SIGINT', () => void exit(130));
// a failure anywhere still stops the processes this run started and drops its database
process.on('unhandledRejection', (err) => {
  console.error(err instanceof Error ? err.message : err);
  void exit(1);
});
const ready = await cp.waitForLog((l) => l.msg === 'control plane listening', 'listening', 120_000).catch(() => null);
if (!ready) {
  console.error(cp.output());
  await exit(1);
}
const http = ready!.http as string;
const grpc = (ready!.grpc as string).replace(/^.*?:\/\//, '');
const mqttUrl = ready!.mqtt as string;

// ---- measuring -------------------------------------------------------------------------------
const TICK_S = 100; // USER_HZ on Linux
const procStat = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return { cpuTicks: Number(rest[11]) + Number(rest[12]), rssMb: (Number(rest[21]) * 4096) / 1048576 };
};
const metricText = async (url: string) => (await fetch(url)).text();
/** samples the control plane stored; per kind, not per site, so the configurations run one at a time */
const samplesStored = async () =>
  (await metricText(`${http}/metrics`)).split('\n').filter((l) => l.startsWith('hcp_ingest_samples_total')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
/** the upper bound of the bucket holding quantile q of a Prometheus histogram, and of the highest used */
/** a Prometheus histogram's cumulative bucket counts */
const buckets = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}_bucket`)).map((l) => ({
  le: l.match(/le="([^"]+)"/)![1]!, n: Number(l.split(' ').pop()),
}));
/**
 * Over the window between two readings: how many observations, and the upper bound of the
 * bucket holding the 99th percentile and of the highest bucket used
 */
const histogramBetween = (from: ReturnType<typeof buckets>, to: ReturnType<typeof buckets>) => {
  const d = to.map((b, i) => ({ le: b.le, n: b.n - (from[i]?.n ?? 0) }));
  const total = d.at(-1)?.n ?? 0;
  const at = (q: number) => (total ? d.find((b) => b.n >= q * total)?.le ?? null : null);
  return { count: total, p99: at(0.99), max: total ? d.find((b) => b.n === total)?.le ?? null : null };
};

const results: Array<Record<string, unknown>> = [];
for (const c of chosen.map((x) => (x.cgminer ? { ...x, cgminer: MINERS } : x))) {
  const site = `bench-${c.name}`;
  const token = await makeKey(http, { role: 'agent', site }, ADMIN);
  const tokenFile = join(dir, `${site}.token`);
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const args = ['--site', site, '--control-plane', grpc, '--mqtt', mqttUrl, '--token-file', tokenFile, '--state-dir', join(dir, site),
    '--sample-interval-ms', String(c.intervalMs), '--log-level', 'info'];
  let miners: Proc | null = null;
  if (c.cgminer) {
    const out = join(dir, `${site}.endpoints`);
    miners = startTs('cgminer-fleet', 'bench/cgminer-fleet.ts', ['--asics', String(c.cgminer), '--out', out, '--site', site]);
    children.push(miners);
    await miners.waitForLog((l) => l.msg === 'miners listening', 'miners listening', 120_000);
    const config = join(dir, `${site}.json`);
    writeFileSync(config, JSON.stringify({ asicDriver: 'cgminer', asicEndpoints: readFileSync(out, 'utf8') }));
    args.push('--config', config);
  } else {
    args.push('--sim-gpus', String(c.gpus), '--sim-asics', String(c.asics), '--sim-startup-s', '1');
  }
  console.error(`${c.name}: starting the agent`);
  const snapDir = values['heap-snapshot-dir'];
  // With a snapshot asked for, the binary's own bundle (dist/hcp-agent.cjs) under this node: the
  // single executable (Node 20.20) leaves an empty file on SIGUSR2 and never writes it, and the
  // sources under tsx are not the same heap (tsx's keepNames gives every closure a property
  // array of its own: 30 of 92 MB at 5,000 ASICs).
  const agent = snapDir
    ? startBinary(`agent-${site}`, process.execPath, ['--require', join(ROOT, 'bench/heap-snapshot-preload.cjs'), AGENT_BUNDLE, ...args], { HCP_AGENT_TOKEN: undefined, HCP_HEAP_SNAPSHOT_DIR: snapDir })
    : startBinary(`agent-${site}`, AGENT_BINARY, args, { HCP_AGENT_TOKEN: undefined, ...(c.unit ? unitEnv : {}) });
  children.push(agent);
  const started = await agent.waitForLog((l) => l.msg === 'agent started', 'agent started', 180_000).catch(() => null);
  if (!started) {
    console.error(agent.output().slice(-3000));
    await exit(1);
  }
  const agentHttp = started!.http as string;
  const pid = agent.child.pid!;
  const before = await samplesStored();
  const stored = await waitFor(async () => (await samplesStored()) > before, { timeoutMs: 120_000, intervalMs: 500, message: `${site}: samples stored` })
    .then(() => true, (err: Error) => (console.error(err.message), false));
  if (!stored) {
    // reported, not fatal: a cgminer fleet this machine's simulators cannot serve in time
    const reads = histogramBetween([], buckets(await metricText(`${agentHttp}/metrics`), 'hcp_agent_read_seconds'));
    results.push({ name: c.name, devices: c.gpus + c.asics + (c.cgminer ?? 0), interval_ms: c.intervalMs, error: 'no samples stored within 120 s', read_cycles: reads.count });
    await agent.kill('SIGTERM');
    await miners?.kill('SIGTERM');
    continue;
  }
  console.error(`${c.name}: warm-up ${WARMUP_S} s, then ${SECONDS} s measured`);
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));

  const rss: number[] = [];
  const first = procStat(pid);
  const samples0 = await samplesStored();
  const reads0 = buckets(await metricText(`${agentHttp}/metrics`), 'hcp_agent_read_seconds');
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    rss.push(procStat(pid).rssMb);
  }
  const s = (performance.now() - t0) / 1000;
  const last = procStat(pid);
  const samples = (await samplesStored()) - samples0;
  const endText = await metricText(`${agentHttp}/metrics`);
  const reads = histogramBetween(reads0, buckets(endText, 'hcp_agent_read_seconds'));
  // where the RSS goes, at the end of the window: the agent's own V8 figures (prom-client's defaults)
  const gaugeMb = (line: string) => {
    const l = endText.split('\n').find((x) => x.startsWith(line));
    return l ? round1(Number(l.split(' ').pop()) / 1048576) : null;
  };
  const devices = c.gpus + c.asics + (c.cgminer ?? 0);
  const sorted = [...rss].sort((a, b) => a - b);
  const r: Record<string, unknown> = {
    name: c.name, devices, interval_ms: c.intervalMs,
    rss_p50_mb: round1(pct(sorted, 50)), rss_max_mb: round1(sorted.at(-1)!),
    cpu_pct: round1(((last.cpuTicks - first.cpuTicks) / TICK_S / s) * 100),
    samples_per_s: Math.round(samples / s),
    expected_samples_per_s: Math.round((devices * 1000) / c.intervalMs),
    read_cycles: reads.count, read_s_p99: reads.p99, read_s_max: reads.max,
    heap_used_mb: gaugeMb('nodejs_heap_size_used_bytes'), heap_total_mb: gaugeMb('nodejs_heap_size_total_bytes'),
    new_space_mb: gaugeMb('nodejs_heap_space_size_total_bytes{space="new"}'), external_mb: gaugeMb('nodejs_external_memory_bytes'),
  };
  if (snapDir) {
    const had = new Set(readdirSync(snapDir));
    agent.child.kill('SIGUSR2');
    // bench/heap-snapshot-preload.cjs renames the file into place once it is whole
    const file = await waitFor(() => readdirSync(snapDir).find((f) => !had.has(f) && f.endsWith('.heapsnapshot')), { timeoutMs: 900_000, intervalMs: 1000, message: 'heap snapshot written' })
      .catch(async (err: Error) => {
        // a top-level rejection would leave the processes running: stop them first
        console.error(err.message);
        return exit(1) as never;
      });
    r.heap_snapshot = join(snapDir, file);
    console.error(`${c.name}: heap snapshot ${r.heap_snapshot} (tsx bench/heap-summary.ts FILE)`);
  }
  console.error(JSON.stringify(r));
  results.push(r);
  await agent.kill('SIGTERM');
  await miners?.kill('SIGTERM');
}

console.log(JSON.stringify({ bench: 'agent', database: testDb ? 'postgres' : 'pglite', seconds: SECONDS, warmup_s: WARMUP_S, configs: results }));
await exit(0);
