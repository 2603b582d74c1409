// `npm start`: the whole system on one machine. The control plane (embedded PGlite under ./data
// and its own Aedes broker), three simulated sites, each a separate agent process, exactly as
// they would run apart, and the market and grid simulators (sim-hardware/feeds-main.ts) on a
// clock 144× real time, so a day's prices pass in 10 minutes and the engine decides every 10 s.
// HCP_MARKET_SIM=off / HCP_GRID_SIM=off leave those feeds to whoever publishes them. Full JSON logs go to data/logs/<name>.log; warnings and errors are echoed
// here. Ctrl-C stops the agents first, then the control plane.
//
// Everything runs authenticated, as a deployment does: the admin key comes from HCP_ADMIN_KEY,
// or data/admin.key (made on the first run, mode 0600); each agent gets its own site credential
// and the feeds a feed credential, made through the API and kept in data/ so a restart reuses
// them. The broker stays open to anonymous readers and price/frequency publishers on loopback
// (Mosquitto 2.0's convention), so the README's mosquitto_pub examples work.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { CONTROL_PLANE_NODE_FLAGS } from '../control-plane/node-flags.js';
import { ensureWebBuilt } from './build-web.js';

const root = resolve(import.meta.dirname, '..');
const env = process.env;
const httpPort = Number(env.HCP_HTTP_PORT ?? 8080);
const grpcPort = Number(env.HCP_GRPC_PORT ?? 50051);
const mqttPort = Number(env.HCP_MQTT_PORT ?? 1883);
const host = '127.0.0.1';
const dataDir = resolve(env.HCP_DATA_DIR ?? join(root, 'data'));
const logDir = join(dataDir, 'logs');
mkdirSync(logDir, { recursive: true });
const KEY = /^hcp_[A-Za-z0-9_-]{20,200}$/;

/** writes a secret where only this user can read it */
function writeSecret(file: string, secret: string): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}
const readSecret = (file: string) => {
  const v = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  return KEY.test(v) ? v : null;
};

// HCP_ADMIN_KEY, else the one made on an earlier run, else a new one; the control plane makes
// sure it exists (HCP_ADMIN_KEY), so it works on a fresh database too.
const adminFile = join(dataDir, 'admin.key');
let adminKey = env.HCP_ADMIN_KEY ?? readSecret(adminFile);
if (!adminKey) {
  adminKey = `hcp_${randomBytes(32).toString('base64url')}`;
  writeSecret(adminFile, adminKey);
}
const authed = (init: RequestInit = {}) => ({ ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' } });

// The demo's fleet: 10 H100s and 50 S21 XPs per site. texas-1 reads its ASICs over the cgminer
// TCP API so that path always runs; the others read the simulation in-process. S21s start up in
// 20 sim seconds here instead of the real ~4 minutes, so mining commands show quickly.
const SITES = [
  { site: 'texas-1', region: 'ercot', seed: 1, extra: ['--asic-driver', 'cgminer'] },
  { site: 'texas-2', region: 'ercot', seed: 2, extra: [] },
  { site: 'canada-1', region: 'ieso', seed: 3, extra: [] },
];

const children: Array<{ name: string; proc: ChildProcess }> = [];
let stopping = false;

function run(name: string, args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
  const flags = args[0] === 'control-plane/main.ts' ? CONTROL_PLANE_NODE_FLAGS : [];
  const proc = spawn(process.execPath, [...flags, '--import', 'tsx', ...args], {
    cwd: root,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const file = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  for (const stream of [proc.stdout!, proc.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      file.write(`${line}\n`);
      let level = 50;
      let msg = line;
      try {
        const j = JSON.parse(line) as { level?: number; msg?: string };
        level = j.level ?? 30;
        msg = j.msg ?? line;
        if (level >= 40) msg = line;
      } catch {
        /* not JSON: echo it */
      }
      if (level >= 40 && !stopping) console.log(`[${name}] ${msg}`);
    });
  }
  proc.on('exit', (code, signal) => {
    file.end();
    if (!stopping) {
      console.error(`[${name}] exited (${signal ?? code}); see ${join(logDir, `${name}.log`)}`);
      if (name === 'control-plane') void stop(1);
    }
  });
  children.push({ name, proc });
  return proc;
}

async function waitFor<T>(what: string, fn: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (stopping) throw new Error('stopping');
    const v = await fn().catch(() => null);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function stop(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping…');
  const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));
  const agents = children.filter((c) => c.name !== 'control-plane');
  for (const a of agents) a.proc.kill('SIGTERM');
  await Promise.all(agents.map((a) => exited(a.proc)));
  const cp = children.find((c) => c.name === 'control-plane');
  if (cp) {
    cp.proc.kill('SIGTERM');
    await exited(cp.proc);
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

const base = `http://${host}:${httpPort}`;
// Agents of this run must not attach to a control plane left over from another run.
if (await fetch(`${base}/health`).then(() => true, () => false)) {
  console.error(`something already answers on ${base}: is HCP already running? Stop it, or set HCP_HTTP_PORT, HCP_GRPC_PORT and HCP_MQTT_PORT.`);
  process.exit(1);
}
// the web console (web/dist), built when missing or older than its sources
try {
  await ensureWebBuilt({ log: (m) => console.log(m) });
} catch (err) {
  console.error(`HCP: the web console did not build (${(err as Error).message}); the API runs without it`);
}
console.log(`HCP: starting the control plane (${env.DATABASE_URL ? 'PostgreSQL at DATABASE_URL' : `embedded PGlite in ${dataDir}`})…`);
run('control-plane', ['control-plane/main.ts'], {
  HCP_ADMIN_KEY: adminKey,
  HCP_DATA_DIR: dataDir,
  HCP_HTTP_PORT: String(httpPort),
  HCP_GRPC_PORT: String(grpcPort),
  HCP_MQTT_PORT: String(mqttPort),
  // the demo's pace: decisions every 10 s, S21s that start in 20 s, minimum on/off of a minute,
  // and a grid restore that holds 20 s and comes back in 4 stages 5 s apart
  HCP_ECONOMICS_INTERVAL_MS: env.HCP_ECONOMICS_INTERVAL_MS ?? '10000',
  HCP_ECONOMICS_STARTUP_S: env.HCP_ECONOMICS_STARTUP_S ?? '20',
  HCP_ECONOMICS_MIN_ON_S: env.HCP_ECONOMICS_MIN_ON_S ?? '60',
  HCP_ECONOMICS_MIN_OFF_S: env.HCP_ECONOMICS_MIN_OFF_S ?? '60',
  HCP_GRID_RESTORE_HOLD_S: env.HCP_GRID_RESTORE_HOLD_S ?? '20',
  HCP_GRID_RESTORE_STAGE_S: env.HCP_GRID_RESTORE_STAGE_S ?? '5',
});
try {
  await waitFor('the control plane', async () => ((await fetch(`${base}/ready`)).ok ? true : null), 60_000);
} catch (err) {
  console.error(`the control plane did not become ready: ${(err as Error).message}; see ${join(logDir, 'control-plane.log')}`);
  await stop(1);
}

/**
 * the credential kept in `file` if the control plane still takes it for this role (and site),
 * else a new one made through the API (a live key of the same name is revoked first)
 */
async function credential(file: string, k: { role: 'agent' | 'feed'; name: string; site?: string }): Promise<void> {
  const kept = readSecret(file);
  if (kept) {
    const who = await fetch(`${base}/api/v1/whoami`, { headers: { authorization: `Bearer ${kept}` } });
    const me = who.ok ? ((await who.json()) as { role: string; site: string | null }) : null;
    if (me && me.role === k.role && (me.site ?? undefined) === k.site) return;
  }
  let made = await fetch(`${base}/api/v1/keys`, authed({ method: 'POST', body: JSON.stringify(k) }));
  if (made.status === 409) {
    const list = (await (await fetch(`${base}/api/v1/keys`, authed())).json()) as { keys: Array<{ id: string; name: string }> };
    for (const old of list.keys.filter((x) => x.name === k.name)) {
      await fetch(`${base}/api/v1/keys/${old.id}?reason=${encodeURIComponent('npm start: credential file lost')}`, authed({ method: 'DELETE' }));
    }
    made = await fetch(`${base}/api/v1/keys`, authed({ method: 'POST', body: JSON.stringify(k) }));
  }
  if (made.status !== 201) throw new Error(`could not make the ${k.name} credential: ${made.status} ${await made.text()}`);
  writeSecret(file, ((await made.json()) as { secret: string }).secret);
}

try {
  for (const s of SITES) await credential(join(dataDir, 'agents', s.site, 'token'), { role: 'agent', name: `agent-${s.site}`, site: s.site });
  await credential(join(dataDir, 'feeds.token'), { role: 'feed', name: 'feeds' });
} catch (err) {
  console.error(`HCP: ${(err as Error).message}; see ${join(logDir, 'control-plane.log')}`);
  await stop(1);
}

for (const s of SITES) {
  run(`agent-${s.site}`, [
    'agent/main.ts', '--site', s.site, '--control-plane', `${host}:${grpcPort}`, '--mqtt', `mqtt://${host}:${mqttPort}`,
    '--sim-gpus', '10', '--sim-asics', '50', '--asic-model', 's21-xp', '--seed', String(s.seed), '--sim-startup-s', '20',
    '--state-dir', join(dataDir, 'agents', s.site), '--token-file', join(dataDir, 'agents', s.site, 'token'),
    ...s.extra,
  ]);
}

const marketOn = (env.HCP_MARKET_SIM ?? 'on') !== 'off';
const gridOn = (env.HCP_GRID_SIM ?? 'on') !== 'off';
if (marketOn || gridOn) {
  run('feeds', [
    'sim-hardware/feeds-main.ts', '--mqtt', `mqtt://${host}:${mqttPort}`, '--speed', env.HCP_FEEDS_SPEED ?? '144',
    '--sites', SITES.map((s) => `${s.site}:${s.region}`).join(','),
  ], { HCP_FEEDS_TOKEN: readSecret(join(dataDir, 'feeds.token')) ?? '' });
}

interface Status {
  sites: Array<{ id: string; online: boolean; gpus_online: number; asics_online: number; hashrate_ths: number; power_w: number }>;
  fleet: { sites_online: number; devices_online: number; hashrate_ths: number; power_w: number };
}
try {
  const st = await waitFor(
    'all sites online',
    async () => {
      const s = (await (await fetch(`${base}/api/v1/status`, authed())).json()) as Status;
      const ours = s.sites.filter((x) => SITES.some((y) => y.site === x.id));
      return ours.every((x) => x.online && x.gpus_online + x.asics_online === 60) ? s : null;
    },
    60_000,
  );
  console.log(`
HCP is running.
  web console     ${base}/   (sign in with the admin key below)
  REST API        ${base}/api/v1/status   (OpenAPI: ${base}/openapi.json)
  admin key       ${adminKey}
                  (${env.HCP_ADMIN_KEY ? 'from HCP_ADMIN_KEY; curl -H "authorization: Bearer $HCP_ADMIN_KEY" …' : `kept in ${adminFile}; curl -H "authorization: Bearer $(cat ${adminFile})" …`})
  metrics         ${base}/metrics
  gRPC            ${host}:${grpcPort}   (hcp.v1.AgentGateway)
  MQTT broker     mqtt://${host}:${mqttPort}   (telemetry: hcp/v1/sites/+/telemetry)
  economics       ${base}/api/v1/economics   (market sim ${marketOn ? 'on' : 'off'}, grid sim ${gridOn ? 'on' : 'off'})
  logs            ${logDir}/
`);
  for (const s of st.sites) {
    console.log(`  ${s.id.padEnd(10)} ${s.online ? 'online ' : 'offline'}  ${s.gpus_online} GPUs, ${s.asics_online} ASICs, ${s.hashrate_ths.toFixed(0)} TH/s, ${(s.power_w / 1000).toFixed(1)} kW`);
  }
  console.log(`  fleet      ${st.fleet.sites_online} sites, ${st.fleet.devices_online} devices, ${(st.fleet.hashrate_ths / 1000).toFixed(2)} PH/s, ${(st.fleet.power_w / 1000).toFixed(1)} kW\n\nCtrl-C stops everything.`);
} catch (err) {
  if (!stopping) console.error(`not every site came online within 60 s (${(err as Error).message}); the processes keep running — see ${logDir}/`);
}
