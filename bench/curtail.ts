// npm run bench:curtail -- --agents 1000 [--rounds 30] [--devices 4] [--sample-ms 1000]
//
// Holds N light agent streams open against a real control-plane process (real gRPC, each agent
// on its own HTTP/2 connection, and its own MQTT login reporting its ASICs as they change: a
// curtail is an operator claim, and the site's reconciler sends commands only for ASICs that
// telemetry shows mining) and issues fleet-wide curtails through REST; between rounds the claims
// are released and the ASICs come back, unmeasured. For each round it
// measures the time from the REST call to the last agent's ack, as the agents see it (same
// clock as the caller), and to the last result the control plane records, as a command client
// watching hcp.v1.Fleet/WatchCommands sees it. (`?wait=true` on `all: true` would also wait for
// the seeded sites, which are offline here: their curtails wait for them until the deadline.)
// Uses DATABASE_URL's server (in a database of its own, dropped at the end) when set, else the
// embedded PGlite in a temp directory. Prints a JSON line as its last line.
import { credentials } from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CommandOutcome } from '../proto/gen/hcp/v1/commands.js';
import { CommandState, FleetClient, type CommandView } from '../proto/gen/hcp/v1/fleet.js';
import { AgentGatewayClient, DeviceKind, type ControlMessage } from '../proto/gen/hcp/v1/gateway.js';
import { newSecret } from '../control-plane/auth/secrets.js';
import { bearer, makeKey } from '../test/harness/auth.js';
import { createTestDatabase } from '../test/harness/postgres.js';
import { startTs } from '../test/harness/processes.js';
import { Metadata } from '@grpc/grpc-js';
import mqtt from 'mqtt';
import { MiningState, TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { asic } from '../test/harness/samples.js';
import { pct, round1 } from './stats.js';

const USAGE = 'usage: npm run bench:curtail -- [--agents 1000] [--rounds 30] [--devices 4] [--sample-ms 1000]\n  agents: 1–20000; rounds: 1–1000; devices: 1–1000 per agent; sample-ms: 200–60000, each agent\'s telemetry cadence';
let values: { agents: string; rounds: string; devices: string; 'sample-ms': string };
try {
  ({ values } = parseArgs({
    options: { agents: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '30' }, devices: { type: 'string', default: '4' }, 'sample-ms': { type: 'string', default: '1000' } },
    strict: true,
  }) as never);
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const N = Number(values.agents);
const ROUNDS = Number(values.rounds);
const DEVICES = Number(values.devices);
/** how often each agent reports (a cgminer-polled site: every 5 s) */
const SAMPLE_MS = Number(values['sample-ms']);
const within = (x: number, hi: number) => Number.isInteger(x) && x >= 1 && x <= hi;
if (!(within(N, 20_000) && within(ROUNDS, 1000) && within(DEVICES, 1000) && within(SAMPLE_MS, 60_000) && SAMPLE_MS >= 200)) {
  console.error(USAGE);
  process.exit(2);
}


const dataDir = mkdtempSync(join(tmpdir(), 'hcp-bench-'));
// A fresh admin key for this run; each light agent gets its own site credential through the API
// (the bench's one client key is not rate-limited: it makes a thousand keys in a row).
const ADMIN = newSecret();
/** the bench cannot go on: says why, and leaves nothing behind */
async function fail(why: string): Promise<never> {
  console.error(why);
  await cp.kill('SIGTERM').catch(() => {});
  await testDb?.drop().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(1);
}
const testDb = process.env.DATABASE_URL ? await createTestDatabase(process.env.DATABASE_URL, 'hcp_bench_curtail') : null;
const cp = startTs('control-plane', 'control-plane/main.ts', [], {
  ...(testDb ? { DATABASE_URL: testDb.url } : {}),
  HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_DATA_DIR: dataDir, LOG_LEVEL: 'info', HCP_HEARTBEAT_MS: '5000',
  HCP_STALE_AFTER_MS: '60000', HCP_ADMIN_KEY: ADMIN, HCP_RATE_LIMIT_PER_S: '1000000', HCP_RATE_LIMIT_BURST: '1000000', HCP_MAX_SITES: String(N + 10),
});
// LOG_LEVEL=warn hides the listening line; ask the API where it is instead.
const ready = await cp.waitForLog((l) => typeof l.http === 'string' || l.msg === 'control plane listening', 'listening', 60_000).catch(() => null);
if (!ready) await fail(cp.output());
const http = ready!.http as string;
const grpc = ready!.grpc as string;
const mqttUrl = ready!.mqtt as string;

interface LightAgent {
  site: string;
  /** why its stream last ended (it is opened again, as a real agent's is); null if it never did */
  ended: string | null;
  /** its stream is open and the control plane has answered its Hello */
  streamUp: boolean;
  reconnects: number;
  mqttUp(): boolean;
  acks: Map<string, number>;
  results: number;
  /** ASICs mining, as last reported */
  mining: number;
  close(): void;
}

/** the agents' MQTT errors by message (mqtt.js reconnects after each) */
const mqttErrors = new Map<string, number>();
const siteOf = (i: number) => `bench-${String(i).padStart(5, '0')}`;
function lightAgent(i: number, token: string): LightAgent {
  const site = siteOf(i);
  // A channel option unique per agent keeps grpc-js from sharing one HTTP/2 connection
  // between all the clients, as real sites would not.
  const client = new AgentGatewayClient(grpc, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'hcp.bench.agent': i });
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  const acks = new Map<string, number>();
  const ids = Array.from({ length: DEVICES }, (_, k) => `asic-${site}-${String(k + 1).padStart(5, '0')}`);
  const mq = mqtt.connect(mqttUrl, { username: site, password: token, clientId: `hcp-agent-${site}-bench`, reconnectPeriod: 1000 });
  mq.on('error', (e) => mqttErrors.set(e.message, (mqttErrors.get(e.message) ?? 0) + 1));
  const on = new Map(ids.map((id) => [id, true]));
  let seq = 0;
  // what a real agent does after a command: sample, and publish the new states
  const report = () => {
    const t = Date.now();
    const asics = ids.map((id) => ({ ...asic(id, t, on.get(id) ? 270 : 0, on.get(id) ? 3645 : 35), miningState: on.get(id) ? MiningState.MINING_STATE_MINING : MiningState.MINING_STATE_SLEEPING }));
    a.mining = [...on.values()].filter(Boolean).length;
    mq.publish(topics.telemetry(site), Buffer.from(TelemetryBatch.encode({ siteId: site, seq: ++seq, sentAtMs: t, agentSession: `s-${i}`, gpus: [], asics }).finish()), { qos: 1 });
  };
  // every --sample-ms, as a sampling agent would (a batch that beats the Hello is dropped as unknown)
  const sampling = setInterval(() => mq.connected && report(), SAMPLE_MS);
  let closing = false;
  let stream: ReturnType<typeof client.connect>;
  const a: LightAgent = {
    site, acks, results: 0, mining: DEVICES, ended: null, streamUp: false, reconnects: 0, mqttUp: () => mq.connected,
    close: () => {
      closing = true;
      clearInterval(sampling);
      stream.cancel();
      client.close();
      mq.end(true);
    },
  };
  const onData = (m: ControlMessage) => {
    if (m.body?.$case === 'helloAck') {
      a.streamUp = true;
      attempt = 0;
    }
    if (m.body?.$case !== 'command') return;
    // when this agent has the command: taken first, since the bench is a thousand agents on one
    // thread and whatever one does before this delays the next one's reading
    const at = performance.now();
    const id = m.body.value.commandId;
    const action = m.body.value.action;
    if (action?.$case === 'setMining') for (const d of action.value.deviceIds.length ? action.value.deviceIds : ids) on.set(d, action.value.enabled);
    acks.set(id, at);
    // the answers and the new states after every agent has read its command: written here, a
    // thousand agents' answers (two gRPC writes and an MQTT publish each, 100–150 µs) came before
    // the last agent's reading, which real agents, each on its own machine, do not wait for
    setImmediate(() => {
      stream.write({ body: { $case: 'commandAck', value: { commandId: id } } });
      stream.write({
        body: {
          $case: 'commandResult',
          value: { commandId: id, outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED, reasonCode: 'ok', message: '', devices: [], appliedAtMs: Date.now() },
        },
      });
      a.results++;
      report();
    });
  };
  // As a real agent does (agent/grpc/gateway-client.ts): a stream that ends or fails is opened
  // again with a new Hello, after a capped exponential backoff with full jitter (0.5 s doubling
  // to 15 s, back to the start at a HelloAck). While thousands of agents log in at once, a
  // control plane busy with the ones before resets some connections and fails some Hellos.
  let attempt = 0;
  const open = () => {
    const s = (stream = client.connect(md));
    let again = false;
    const lost = (why: string) => {
      a.streamUp = false;
      a.ended = why;
      if (again || closing) return;
      again = true;
      a.reconnects++;
      const ceiling = Math.min(15_000, 500 * 2 ** attempt);
      attempt = Math.min(attempt + 1, 16);
      setTimeout(() => !closing && open(), Math.random() * ceiling);
    };
    s.on('data', onData);
    s.on('error', (e: Error & { details?: string }) => lost(e.details || e.message));
    s.on('end', () => lost('ended by the server'));
    s.write({
      body: {
        $case: 'hello',
        value: {
          siteId: site, agentVersion: 'bench', agentSession: `s-${i}`, hostname: 'bench',
          devices: Array.from({ length: DEVICES }, (_, k) => ({
            id: `asic-${site}-${String(k + 1).padStart(5, '0')}`, kind: DeviceKind.DEVICE_KIND_ASIC, model: 'Antminer S21 XP', endpoint: '', serial: '',
            ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: 0, driver: 'bench',
          })),
        },
      },
    });
  };
  open();
  return a;
}

// Final states as a command client sees them. Watched before the agents connect: opened after
// 5,000 of them, its connection waited behind theirs in the accept queue, and saw nothing.
const finalAt = new Map<string, { at: number; state: CommandState }>();
const fleet = new FleetClient(grpc, credentials.createInsecure());
const adminMd = new Metadata();
adminMd.set('authorization', `Bearer ${ADMIN}`);
const watch = fleet.watchCommands({ site: '' }, adminMd);
let watchEvents = 0;
watch.on('data', (v: CommandView) => {
  watchEvents++;
  if (v.state === CommandState.COMMAND_STATE_SUCCEEDED || v.state === CommandState.COMMAND_STATE_FAILED || v.state === CommandState.COMMAND_STATE_EXPIRED) {
    finalAt.set(v.id, { at: performance.now(), state: v.state });
  }
});
/** why the watch ended, if it did: a round that times out says so */
let watchEnded: string | null = null;
watch.on('error', (e: Error) => void (watchEnded ??= e.message));
watch.on('end', () => void (watchEnded ??= 'ended by the server'));

const tokens: string[] = [];
for (let i = 0; i < N; i++) tokens.push(await makeKey(http, { role: 'agent', site: siteOf(i) }, ADMIN));
const t0 = performance.now();
/** how long the agents may take to be online: 120 s, or 50 ms an agent past 2,400 */
const CONNECT_MS = Math.max(120_000, N * 50);
const agents: LightAgent[] = [];
for (let i = 0; i < N; i++) {
  agents.push(lightAgent(i, tokens[i]!));
  // a hundred at a time; past a thousand, more slowly: each new agent's Hello, MQTT login and
  // first batch queue behind the ones already reporting
  if (i % 100 === 99) await new Promise((r) => setTimeout(r, N > 1000 ? 200 : 20));
}
type Status = { fleet: { sites_online: number; devices_online: number } };
/** the fleet as REST sees it; a connection reset is asked again (a control plane that exited ends the bench with its output) */
const status = async (): Promise<Status> => {
  for (let tries = 1; ; tries++) {
    try {
      return (await (await fetch(`${http}/api/v1/status`, { headers: bearer(ADMIN) })).json()) as Status;
    } catch (err) {
      if (cp.child.exitCode !== null || cp.child.signalCode !== null) await fail(`the control plane exited (${cp.child.exitCode ?? cp.child.signalCode})\n${cp.output().slice(-4000)}`);
      if (tries >= 10) throw err;
      console.error(`GET /api/v1/status: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}; asking again`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
};
for (;;) {
  const s = await status();
  if (s.fleet.sites_online >= N && s.fleet.devices_online >= N * DEVICES) break;
  if (performance.now() - t0 > CONNECT_MS) {
    // what kept them out: the agents' side (streams the control plane ended, MQTT sessions not
    // up) and the control plane's warnings, counted by message
    const why = new Map<string, number>();
    for (const a of agents) {
      const k = !a.streamUp ? `stream: ${(a.ended ?? 'no HelloAck yet').replace(/\(\d{4}-[^)]*\)/g, '(…)')}` : a.mqttUp() ? null : 'mqtt: not connected';
      if (k) why.set(k, (why.get(k) ?? 0) + 1);
    }
    const warned = new Map<string, number>();
    for (const l of cp.lines) {
      if (Number(l.level) < 40) continue;
      const k = `${String(l.msg)}${l.reason ? ` (${String(l.reason)})` : ''}`;
      warned.set(k, (warned.get(k) ?? 0) + 1);
    }
    const list = (m: Map<string, number>) => [...m].sort((x, y) => y[1] - x[1]).slice(0, 12).map(([k, n]) => `  ${n} × ${k.slice(0, 300)}`).join('\n');
    await fail(`only ${s.fleet.sites_online} of ${N} agents online after ${CONNECT_MS / 1000} s (${s.fleet.devices_online} of ${N * DEVICES} devices)\nagents:\n${list(why)}\nMQTT errors the agents saw:\n${list(mqttErrors)}\ncontrol plane warnings and errors:\n${list(warned)}`);
  }
  // once a second: GET /api/v1/status carries every site, and at 5,000 sites asking five times a
  // second was a fifth of the control plane's thread, spent on the bench's own question
  await new Promise((r) => setTimeout(r, 1000));
}
const connectS = (performance.now() - t0) / 1000;
console.error(`${N} agents connected in ${connectS.toFixed(1)} s (${agents.reduce((n, a) => n + a.reconnects, 0)} streams opened again); ${ROUNDS} rounds of fleet-wide curtail`);


const ackMs: number[] = [];
/** to the first agent's ack: the spread between it and the last is the fan-out over 1,000 streams */
const firstAckMs: number[] = [];
const restMs: number[] = [];
const resultMs: number[] = [];
const submitMs: number[] = [];
for (let r = 0; r < ROUNDS + 2; r++) {
  const start = performance.now();
  const res = await fetch(`${http}/api/v1/curtail`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...bearer(ADMIN) },
    body: JSON.stringify({ all: true, reason: `bench round ${r}` }),
  });
  const body = (await res.json()) as { commands: Array<{ id: string; site: string; state: string }>; claims: Array<{ id: string }> };
  const answered = performance.now();
  const ours = body.commands.filter((c) => c.site.startsWith('bench-'));
  if (ours.length !== N) {
    await fail(`round ${r}: ${ours.length} commands for ${N} agents (HTTP ${res.status})`);
  }
  const bySite = new Map(ours.map((c) => [c.site, c.id]));
  const deadline = performance.now() + 30_000;
  let lastAck = 0;
  let firstAck = 0;
  let lastResult = 0;
  for (;;) {
    lastAck = 0;
    firstAck = Infinity;
    lastResult = 0;
    let missing = 0;
    let unacked = 0;
    let unfinished = 0;
    for (const a of agents) {
      const id = bySite.get(a.site)!;
      const t = a.acks.get(id);
      const f = finalAt.get(id);
      if (t === undefined) unacked++;
      if (f === undefined) unfinished++;
      if (t === undefined || f === undefined) {
        missing++;
        continue;
      }
      if (f.state !== CommandState.COMMAND_STATE_SUCCEEDED) {
        await fail(`round ${r}: ${id} for ${a.site} ended ${CommandState[f.state]}`);
      }
      lastAck = Math.max(lastAck, t);
      firstAck = Math.min(firstAck, t);
      lastResult = Math.max(lastResult, f.at);
    }
    if (missing === 0) break;
    if (performance.now() > deadline) {
      // what the control plane says of one command the watcher has not seen finish
      const unseen = ours.find((c) => !finalAt.has(c.id));
      const asked = unseen ? await fetch(`${http}/api/v1/commands/${unseen.id}`, { headers: bearer(ADMIN) }).then((x) => x.text()).catch((e: Error) => e.message) : '';
      // and of its command watchers
      const watchers = await fetch(`${http}/metrics`).then((x) => x.text()).then((t) => t.split('\n').filter((l) => l.startsWith('hcp_command_watch')).join(', ')).catch((e: Error) => e.message);
      await fail(`round ${r}: ${missing} agents without an ack or a final state after 30 s (${unacked} without the command, ${unfinished} whose final state the watcher has not seen; the watch: ${watchEnded ?? 'open'}, ${watchEvents} events and ${finalAt.size} final states seen in all; the control plane: ${watchers})${unseen ? `\nGET /api/v1/commands/${unseen.id}: ${asked.slice(0, 600)}` : ''}`);
    }
    await new Promise((res) => setTimeout(res, 5));
  }
  // the first two rounds warm up JIT and connection pools and are not counted
  if (r >= 2) {
    ackMs.push(lastAck - start);
    firstAckMs.push(firstAck - start);
    resultMs.push(lastResult - start);
    submitMs.push(answered - start);
  }
  const plain = performance.now();
  await fetch(`${http}/api/v1/sites/${agents[0]!.site}`, { headers: bearer(ADMIN) });
  if (r >= 2) restMs.push(performance.now() - plain);
  // unmeasured: the curtail claims go, and every ASIC comes back (capacity 0: no ramp limit)
  for (const c of body.claims) await fetch(`${http}/api/v1/claims/${c.id}`, { method: 'DELETE', headers: bearer(ADMIN) });
  const back = performance.now() + 60_000;
  while (agents.some((a) => a.mining < DEVICES)) {
    if (performance.now() > back) {
      await fail(`round ${r}: ASICs not back 60 s after the claims were released`);
    }
    await new Promise((res) => setTimeout(res, 10));
  }
  // and telemetry has told the control plane so
  await new Promise((res) => setTimeout(res, 300));
}

watch.cancel();
fleet.close();
for (const a of agents) a.close();
await cp.kill('SIGTERM');
await testDb?.drop();
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify({
  bench: 'curtail',
  agents: N,
  rounds: ROUNDS,
  sample_ms: SAMPLE_MS,
  database: process.env.DATABASE_URL ? 'postgres' : 'pglite',
  p50_ms: round1(pct(ackMs, 50)),
  p99_ms: round1(pct(ackMs, 99)),
  max_ms: round1(Math.max(...ackMs)),
  first_ack_p50_ms: round1(pct(firstAckMs, 50)),
  rest_answer_p50_ms: round1(pct(submitMs, 50)),
  all_results_p50_ms: round1(pct(resultMs, 50)),
  all_results_p99_ms: round1(pct(resultMs, 99)),
  idle_get_p50_ms: round1(pct(restMs, 50)),
  connect_s: round1(connectS),
  /** agent streams opened again while the fleet connected and during the rounds */
  stream_reconnects: agents.reduce((n, a) => n + a.reconnects, 0),
}));
process.exit(0);
