// The chaos suite's parts (test/chaos/*.test.ts): real processes and real servers that a
// scenario stops, kills -9 and starts again, and a checker that holds every stored row against
// what the agents sent.
//
// - The broker is a real Mosquitto (test/harness/mosquitto.ts), the control plane and the agents
//   are processes (`tsx control-plane/main.ts`, `tsx agent/main.ts`, as test/harness/processes.ts
//   and scripts/start.ts run them), and a database that must go away is a throwaway PostgreSQL
//   cluster of its own (startStoppableCluster); the shared cluster on 5432 is never stopped.
// - What the agents sent is seen by a tap: a plain, persistent MQTT subscription to every site's
//   telemetry beside ingest's shared one. It records each batch by (site, stream, seq) — the
//   identity the contract gives a batch (proto/hcp/v1/telemetry.proto) — with its samples. A
//   batch re-sent from a spool is the same batch, so it is counted once. Seqs run on within a
//   stream, so a seq the tap never saw between two it did is a gap. The tap can miss what the broker
//   gave ingest (Mosquitto 2.0.11 did, for batches published the moment it came back). A gap's
//   batches are taken from the ingest ledger and the rows stored in the gap's span of time; a
//   seq the ledger does not know is a lost batch, a full batch of rows missing.
// - The checker reads every telemetry row and compares: each expected sample (device, time) is
//   present once, missing, or duplicated.
//
// Scale (HCP_CHAOS_SCALE): `ci` (default; what `npm test` runs, each scenario within ~2 min) or
// `full` (`npm run chaos`: 60 s outages, 10k samples/s). HCP_CHAOS_OUTAGE_S overrides the outage.
// Each scenario prints one line `{"chaos":"<name>",…figures}` (reportChaos); scripts/chaos.ts adds
// them up.
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import postgres from 'postgres';
import { TelemetryBatch } from '../../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../../proto/topics.js';
import { TEST_ADMIN_KEY } from '../harness/auth.js';
import { INGEST_USER, type Mosquitto } from '../harness/mosquitto.js';
import { freePort } from '../harness/ports.js';
import { startTs, type Proc } from '../harness/processes.js';
import { waitFor, within } from '../harness/wait-for.js';

const execFileAsync = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Scale and figures

export interface ChaosScale {
  name: 'ci' | 'full';
  /** the broker outage, and the database outage */
  outageS: number;
  /** samples per second across the fleet during the database outage */
  dbSamplesPerS: number;
  /** agents (sites) in a scenario */
  agents: number;
  /** a scenario's vitest timeout */
  testTimeoutMs: number;
}

export function chaosScale(env: NodeJS.ProcessEnv = process.env): ChaosScale {
  const full = env.HCP_CHAOS_SCALE === 'full';
  if (env.HCP_CHAOS_SCALE !== undefined && env.HCP_CHAOS_SCALE !== 'ci' && !full) {
    throw new Error(`HCP_CHAOS_SCALE: must be ci or full (got ${JSON.stringify(env.HCP_CHAOS_SCALE)})`);
  }
  const outage = env.HCP_CHAOS_OUTAGE_S === undefined ? (full ? 60 : 15) : Number(env.HCP_CHAOS_OUTAGE_S);
  if (!Number.isFinite(outage) || outage < 3 || outage > 3600) throw new Error(`HCP_CHAOS_OUTAGE_S: must be 3 to 3600 seconds (got ${JSON.stringify(env.HCP_CHAOS_OUTAGE_S)})`);
  return {
    name: full ? 'full' : 'ci',
    outageS: outage,
    dbSamplesPerS: full ? 10_000 : 2_000,
    agents: full ? 4 : 2,
    // setup and the drain after the outage: a few times the outage, at least 2 minutes
    testTimeoutMs: Math.max(120_000, outage * 4_000 + 60_000),
  };
}

export interface ChaosFigures {
  rows_expected: number;
  rows_present: number;
  rows_duplicated: number;
  commands_lost: number;
  commands_duplicated: number;
  failover_s: number | null;
  [more: string]: unknown;
}

/** the scenario's figures as one JSON line (scripts/chaos.ts reads these) */
export function reportChaos(name: string, f: ChaosFigures): void {
  console.log(JSON.stringify({ chaos: name, ...f }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** a scenario's own pacing (an outage lasts this long); never a wait for a condition */
export const hold = (s: number) => sleep(s * 1000);

// ---------------------------------------------------------------------------------------------
// The tap and the checker

export interface SeenBatch {
  site: string;
  seq: number;
  samples: Array<[device: string, tsMs: number]>;
}

export interface TelemetryTap {
  /** batches seen, by `${site}/${stream}` then seq */
  readonly streams: Map<string, Map<number, SeenBatch>>;
  /** batches seen more than once (a re-send from a spool, a QoS 1 redelivery) */
  readonly repeats: () => number;
  /** streams per site: a site's agent keeps one stream across its restarts (the spool) */
  streamsOf(site: string): string[];
  batches(): number;
  close(): Promise<void>;
}

/** subscribes to every site's telemetry as a plain, persistent subscriber (the ingest login reads all) */
export async function startTap(broker: Mosquitto, clientId = 'chaos-tap'): Promise<TelemetryTap> {
  const streams = new Map<string, Map<number, SeenBatch>>();
  let repeats = 0;
  const client: MqttClient = await mqtt.connectAsync(broker.url, {
    clientId, username: INGEST_USER, password: broker.ingestPassword, protocolVersion: 5, clean: false,
    properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 250,
  });
  client.on('message', (_topic, payload) => {
    let b: TelemetryBatch;
    try {
      b = TelemetryBatch.decode(payload);
    } catch {
      return;
    }
    const key = `${b.siteId}/${b.stream || b.agentSession}`;
    let s = streams.get(key);
    if (!s) streams.set(key, (s = new Map()));
    if (s.has(b.seq)) {
      repeats++;
      return;
    }
    s.set(b.seq, { site: b.siteId, seq: b.seq, samples: [...b.gpus.map((g) => [g.deviceId, g.tsMs] as [string, number]), ...b.asics.map((a) => [a.deviceId, a.tsMs] as [string, number])] });
  });
  await client.subscribeAsync(topics.allTelemetry, { qos: 1 });
  return {
    streams,
    repeats: () => repeats,
    streamsOf: (site) => [...streams.keys()].filter((k) => k.startsWith(`${site}/`)),
    batches: () => [...streams.values()].reduce((n, s) => n + s.size, 0),
    close: () => client.endAsync().then(() => undefined),
  };
}

export interface RowCheck {
  /** samples in the batches the tap saw, plus those of batches missing between seen seqs */
  rows_expected: number;
  rows_present: number;
  rows_missing: number;
  rows_duplicated: number;
  /** batches lost: in a gap of the tap's and vouched for by nothing (not in the ingest ledger) */
  batches_missing: number;
  /** the first few runs of seqs the tap never saw, `<site>/<stream>:<from>-<to>` */
  gaps: string[];
  streams: number;
}

/** every sample of every seen batch against the stored rows; the tap's gaps against the ledger and the rows in their time span */
export async function checkRows(databaseUrl: string, tap: TelemetryTap): Promise<RowCheck> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const stored = new Map<string, number>();
    const bySite = new Map<string, Array<[tsMs: number, n: number]>>();
    for (const table of ['gpu_telemetry', 'asic_telemetry']) {
      const rows = await sql.unsafe<Array<{ s: string; d: string; t: string; n: number }>>(
        `SELECT site_id AS s, device_id AS d, round(extract(epoch FROM time) * 1000)::bigint::text AS t, count(*)::int AS n FROM ${table} GROUP BY 1, 2, 3`,
      );
      for (const r of rows) {
        stored.set(rowKey(r.d, Number(r.t)), r.n);
        let l = bySite.get(r.s);
        if (!l) bySite.set(r.s, (l = []));
        l.push([Number(r.t), r.n]);
      }
    }
    // the ingest ledger (one row per committed batch), where the schema has it
    const ledger = new Map<string, number>();
    const [has] = await sql<Array<{ t: string | null }>>`SELECT to_regclass('telemetry_batches')::text AS t`;
    if (has?.t) {
      for (const r of await sql<Array<{ k: string; rows: number }>>`SELECT site_id || '/' || stream || '/' || seq::text AS k, rows FROM telemetry_batches`) ledger.set(r.k, r.rows);
    }
    return compareRows(tap.streams, stored, (run) => {
      // rows the ledger says the unseen batches hold (a batch it does not know: lost, a full batch's worth)
      let expected = 0;
      let lost = 0;
      for (let q = run.from; q <= run.to; q++) {
        const n = ledger.get(`${run.stream}/${q}`);
        if (n === undefined) {
          lost++;
          expected += run.perBatch;
        } else expected += n;
      }
      // what is stored in their span of time: only these batches made samples of this site then
      const inSpan = (bySite.get(run.site) ?? []).filter(([t]) => t > run.afterMs && t < run.beforeMs);
      const distinct = inSpan.length;
      const total = inSpan.reduce((a, [, n]) => a + n, 0);
      return { expected, present: Math.min(distinct, expected), duplicated: total - distinct, lost };
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export const rowKey = (device: string, tsMs: number) => `${device}@${tsMs}`;

/** a run of seqs the tap never saw between two it did, with the time span their samples must lie in */
export interface GapRun {
  /** `<site>/<stream>` */
  stream: string;
  site: string;
  from: number;
  to: number;
  /** the largest batch of the stream */
  perBatch: number;
  afterMs: number;
  beforeMs: number;
}

/** what a gap holds: by default everything in it is lost (no other evidence) */
export type GapResolver = (run: GapRun) => { expected: number; present: number; duplicated: number; lost: number };
const allLost: GapResolver = (r) => ({ expected: r.perBatch * (r.to - r.from + 1), present: 0, duplicated: 0, lost: r.to - r.from + 1 });

/**
 * The seen batches against the stored rows (rowKey → how many rows). A run of seqs the tap never
 * saw between two it did is a gap: the resolver says what it should hold and what is stored (the
 * tap can miss a batch the broker delivered to ingest: a session restored after a broker
 * restart); a seq in a gap that nothing vouches for is a lost batch (batches_missing).
 */
export function compareRows(streams: ReadonlyMap<string, ReadonlyMap<number, SeenBatch>>, stored: ReadonlyMap<string, number>, resolveGap: GapResolver = allLost): RowCheck {
  let expected = 0;
  let present = 0;
  let duplicated = 0;
  let batchesMissing = 0;
  const gaps: string[] = [];
  for (const [key, s] of streams) {
    if (s.size === 0) continue;
    const seqs = [...s.keys()].sort((a, b) => a - b);
    const perBatch = Math.max(...[...s.values()].map((b) => b.samples.length));
    const times = (q: number) => s.get(q)?.samples.map(([, t]) => t) ?? [];
    for (let q = seqs[0]!; q <= seqs.at(-1)!; q++) {
      const b = s.get(q);
      if (!b) {
        let to = q;
        while (!s.has(to + 1)) to++;
        // the span between the nearest seen batches with samples on either side
        let before = q - 1;
        while (before >= seqs[0]! && times(before).length === 0) before--;
        let after = to + 1;
        while (after <= seqs.at(-1)! && times(after).length === 0) after++;
        const run: GapRun = {
          stream: key, site: [...s.values()][0]!.site, from: q, to, perBatch,
          afterMs: times(before).length ? Math.max(...times(before)) : -Infinity,
          beforeMs: times(after).length ? Math.min(...times(after)) : Infinity,
        };
        const g = resolveGap(run);
        expected += g.expected;
        present += g.present;
        duplicated += g.duplicated;
        batchesMissing += g.lost;
        if (gaps.length < 5) gaps.push(`${key}:${q}-${to}`);
        q = to;
        continue;
      }
      for (const [d, t] of b.samples) {
        expected++;
        const n = stored.get(rowKey(d, t)) ?? 0;
        if (n > 0) {
          present++;
          duplicated += n - 1;
        }
      }
    }
  }
  return { rows_expected: expected, rows_present: present, rows_missing: expected - present, rows_duplicated: duplicated, batches_missing: batchesMissing, gaps, streams: streams.size };
}

/**
 * waits until every expected row is stored (or the deadline passes) and returns the last check;
 * the tap goes on seeing live batches meanwhile, so it compares a snapshot taken when called:
 * the batches seen so far, no later ones
 */
export async function settleRows(databaseUrl: string, tap: TelemetryTap, timeoutMs: number): Promise<RowCheck & { settle_s: number }> {
  const frozen: TelemetryTap = { ...tap, streams: new Map([...tap.streams].map(([k, v]) => [k, new Map(v)])) };
  const t0 = Date.now();
  let last: RowCheck = await within(checkRows(databaseUrl, frozen), 60_000, 'the stored rows, before settling');
  await waitFor(
    async () => {
      last = await checkRows(databaseUrl, frozen);
      return last.rows_present === last.rows_expected;
    },
    { timeoutMs, intervalMs: 1000, message: 'every sample stored' },
  ).catch(() => undefined);
  return { ...last, settle_s: Math.round((Date.now() - t0) / 100) / 10 };
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface ControlPlaneHandle {
  readonly http: string;
  readonly grpc: string;
  proc(): Proc;
  /** kill -9 */
  kill9(): Promise<void>;
  /** the same ports, database, broker login and MQTT client id again */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The control plane as a process on fixed ports (a restart comes back where the agents dial),
 * HCP_BROKER=external on the given Mosquitto with a fixed ingest client id (a restart picks its
 * persistent session up again).
 */
export async function startChaosControlPlane(o: { databaseUrl: string; broker: Mosquitto; name?: string; env?: Record<string, string> }): Promise<ControlPlaneHandle> {
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const name = o.name ?? 'control-plane';
  const env = {
    DATABASE_URL: o.databaseUrl, HCP_HTTP_PORT: String(httpPort), HCP_GRPC_PORT: String(grpcPort), HCP_HEARTBEAT_MS: '500', HCP_STALE_AFTER_MS: '3000',
    HCP_ADMIN_KEY: TEST_ADMIN_KEY, HCP_BROKER: 'external', HCP_MQTT_URL: o.broker.url, HCP_MQTT_PASSWORD_FILE: o.broker.ingestPasswordFile,
    HCP_MQTT_CLIENT_ID: `hcp-ingest-${name}`, HCP_ECONOMICS: 'off', HCP_RATE_LIMIT_PER_S: '1000', HCP_RATE_LIMIT_BURST: '1000', ...o.env,
  };
  let proc: Proc | null = null;
  const start = async () => {
    proc = startTs(name, 'control-plane/main.ts', [], env);
    await proc.waitForLog((l) => l.msg === 'control plane listening', 'listening', 60_000);
  };
  await start();
  return {
    http: `http://127.0.0.1:${httpPort}`,
    grpc: `127.0.0.1:${grpcPort}`,
    proc: () => proc!,
    kill9: async () => void (await proc?.kill('SIGKILL')),
    stop: async () => void (await proc?.kill('SIGTERM')),
    start,
  };
}

export interface AgentHandle {
  readonly site: string;
  readonly stateDir: string;
  /** every process this agent has been, oldest first */
  readonly procs: Proc[];
  proc(): Proc;
  kill9(): Promise<void>;
  stop(): Promise<void>;
  /** a new process with the same site, credential and state dir */
  start(env?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

/**
 * A site's agent as a process (`tsx agent/main.ts`, as `npm run agent` runs it), with its own
 * state dir kept across restarts, logging in to the broker with its site credential.
 */
export async function startAgent(o: {
  site: string; token: string; grpc: string; broker: Mosquitto; gpus: number; asics: number; sampleIntervalMs: number; args?: string[];
  /** every process's environment */
  env?: Record<string, string>;
  /** the first process's only (a test hook the restart must not have) */
  firstEnv?: Record<string, string>;
}): Promise<AgentHandle> {
  const stateDir = mkdtempSync(join(tmpdir(), `hcp-chaos-${o.site}-`));
  const procs: Proc[] = [];
  const start = async (env: Record<string, string> = {}) => {
    const p = startTs(`agent-${o.site}`, 'agent/main.ts', [
      '--site', o.site, '--control-plane', o.grpc, '--mqtt', o.broker.url, '--sim-gpus', String(o.gpus), '--sim-asics', String(o.asics),
      '--sample-interval-ms', String(o.sampleIntervalMs), '--sim-startup-s', '2', '--state-dir', stateDir, ...(o.args ?? []),
    ], { HCP_AGENT_TOKEN: o.token, ...o.env, ...env });
    procs.push(p);
    await p.waitForLog((l) => l.msg === 'agent started', 'agent started', 60_000);
  };
  await start(o.firstEnv);
  const current = () => procs.at(-1)!;
  return {
    site: o.site,
    stateDir,
    procs,
    proc: current,
    kill9: async () => void (await current().kill('SIGKILL')),
    stop: async () => void (await current().kill('SIGTERM')),
    start,
    async close() {
      for (const p of procs) await p.kill('SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** a site credential over REST, and the broker login of the same name and secret */
export async function siteCredential(http: string, broker: Mosquitto, site: string): Promise<string> {
  const r = await fetch(`${http}/api/v1/keys`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'agent', site }),
  });
  if (r.status !== 201) throw new Error(`POST /api/v1/keys for ${site}: ${r.status} ${await r.text()}`);
  const token = ((await r.json()) as { secret: string }).secret;
  await broker.addUser(site, token);
  return token;
}

/** sites the seed data has; more are created by their credential */
export const chaosSites = (n: number) => Array.from({ length: n }, (_, i) => `chaos-${i + 1}`);

// ---------------------------------------------------------------------------------------------
// A PostgreSQL that can be stopped and started

export interface StoppableCluster {
  /** the `hcp` database on it */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  kill9(): Promise<void>;
  running(): Promise<boolean>;
  close(): Promise<void>;
}

interface RunAs { prefix: string[]; uid?: number; gid?: number }

/** initdb and postgres refuse to run as root; as root they run as the `postgres` user */
function runAs(): RunAs {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) throw new Error('running as root and there is no `postgres` user to run a throwaway cluster as');
  return { prefix: ['/usr/sbin/runuser', '-u', 'postgres', '--'], uid: Number(uid), gid: Number(gid) };
}

function pgBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSafe(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql: apt-get install postgresql (bash .ci/run does)');
  return join(root, versions[0]!, 'bin');
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * A throwaway cluster of this scenario's own, on a random port, that stop() and start() take
 * down and bring back with its data (test/harness/postgres.ts's throwaway cluster is removed at
 * stop). Durability settings stay at their defaults except fsync (a process stop loses nothing).
 */
export async function startStoppableCluster(): Promise<StoppableCluster> {
  const bin = pgBin();
  const as = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'hcp-chaos-pg-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid!);
  const run = async (argv: string[]) => {
    const [file, ...args] = [...as.prefix, ...argv];
    try {
      await execFileAsync(file!, args, { cwd: dir, timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${argv.join(' ')}: ${(e.stderr || e.stdout || e.message).trim()}`, { cause: err });
    }
  };
  await run([join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const options = [`-p ${port}`, `-k '${dir}'`, '-c listen_addresses=127.0.0.1', '-c fsync=off', '-c max_connections=100'].join(' ');
  const start = () => run([join(bin, 'pg_ctl'), '-D', data, '-l', logFile, '-w', '-t', '30', '-o', options, 'start']);
  const stopWith = (mode: 'fast' | 'immediate') => run([join(bin, 'pg_ctl'), '-D', data, '-m', mode, '-w', 'stop']).catch(() => undefined);
  await start();
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const sql = postgres(admin, { max: 1, onnotice: () => {} });
  await sql.unsafe('CREATE DATABASE hcp');
  await sql.end();
  const killSync = () => {
    try {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      /* not running */
    }
  };
  process.once('exit', killSync);
  let closing: Promise<void> | null = null;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/hcp`,
    port,
    stop: () => stopWith('fast'),
    start,
    kill9: () => stopWith('immediate'),
    running: async () => {
      const s = postgres(admin, { max: 1, connect_timeout: 2, onnotice: () => {} });
      try {
        await s`select 1`;
        return true;
      } catch {
        return false;
      } finally {
        await s.end({ timeout: 1 }).catch(() => undefined);
      }
    },
    close() {
      closing ??= (async () => {
        process.removeListener('exit', killSync);
        await stopWith('immediate');
        rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

/** a line of a process's log, by message */
export const logged = (p: Proc, msg: string, pred: (l: Record<string, unknown>) => boolean = () => true) => p.lines.filter((l) => l.msg === msg && pred(l));

/** the metric's value in a Prometheus text page (0 when absent) */
export async function metricOf(url: string, name: string, labels = ''): Promise<number> {
  // a control plane that stops answering fails the read here, not the whole test at its timeout
  const text = await (await fetch(url, { signal: AbortSignal.timeout(15_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
