// A real Mosquitto (Debian's `mosquitto`) for tests of HCP_BROKER=external: one loopback
// listener on a random port, logins only (a password file made with `mosquitto_passwd -b`, no
// anonymous clients), a plugin-free ACL file in the shape docs/scaling.md gives for production,
// and persistence in a temporary directory, so stop() then start() is a broker outage after which
// the persistent sessions (and the QoS 1 messages queued for them) are still there. kill9() is a
// crash: what was not yet autosaved is lost, as on a real machine.
//
// The ACL is the repository's deploy/mosquitto/acl (what docker-compose.scale.yml mounts): the
// ingest user reads every site's telemetry and status and the feeds; an agent's user name is its
// site id, so `pattern … %u` lets it write its own site's topics and no other; the feeds user
// publishes prices and frequency.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait-for.js';

export const INGEST_USER = 'hcp_ingest';
export const FEEDS_USER = 'hcp_feeds';

export interface MosquittoOptions {
  /** user name → password; the ingest and feeds users are added with generated passwords */
  users?: Record<string, string>;
  /** QoS 1 messages Mosquitto keeps for one offline persistent session (max_queued_messages) */
  maxQueued?: number;
  /** seconds between saves of the persistence file (autosave_interval) */
  autosaveS?: number;
}

export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  /** the ingest user's password (user INGEST_USER), and the file holding it (for HCP_MQTT_PASSWORD_FILE) */
  readonly ingestPassword: string;
  readonly ingestPasswordFile: string;
  readonly feedsPassword: string;
  /** adds or changes a login and makes the running broker read the password file again (SIGHUP) */
  addUser(username: string, password: string): Promise<void>;
  /** SIGTERM and wait: Mosquitto saves its persistence file on the way out */
  stop(): Promise<void>;
  /** the same port, config and persistence again */
  start(): Promise<void>;
  /** SIGKILL: a crash */
  kill9(): Promise<void>;
  running(): boolean;
  /** the last lines Mosquitto logged, for failure messages */
  output(): string;
  /** stops it and removes its directory; idempotent */
  close(): Promise<void>;
}

export function mosquittoBinary(): string {
  const found = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find(existsSync);
  if (!found) throw new Error('mosquitto is not installed: apt-get install mosquitto (bash .ci/run installs it)');
  return found;
}

function passwdBinary(): string {
  const found = ['/usr/bin/mosquitto_passwd', '/usr/sbin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd'].find(existsSync);
  if (!found) throw new Error('mosquitto_passwd is not installed: apt-get install mosquitto');
  return found;
}

/** as root, Mosquitto drops to the `mosquitto` user (mosquitto.conf(5) "user"): its files must be that user's */
function brokerUser(): { name: string; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('mosquitto:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) return null;
  return { name: 'mosquitto', uid: Number(uid), gid: Number(gid) };
}

/** the repository's ACL (deploy/mosquitto/acl), the one docker-compose.scale.yml mounts */
export const ACL = readFileSync(join(import.meta.dirname, '../../deploy/mosquitto/acl'), 'utf8');

function config(o: { port: number; dir: string; maxQueued: number; autosaveS: number; user: string | null }): string {
  return [
    `listener ${o.port} 127.0.0.1`,
    'protocol mqtt',
    'allow_anonymous false',
    `password_file ${join(o.dir, 'passwd')}`,
    `acl_file ${join(o.dir, 'acl')}`,
    'persistence true',
    `persistence_location ${o.dir}/`,
    `autosave_interval ${o.autosaveS}`,
    'persistent_client_expiration 1h',
    `max_queued_messages ${o.maxQueued}`,
    'max_inflight_messages 100',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    ...(o.user ? [`user ${o.user}`] : []),
    '',
  ].join('\n');
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

export async function startMosquitto(o: MosquittoOptions = {}): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  const passwd = passwdBinary();
  const owner = brokerUser();
  const dir = mkdtempSync(join(tmpdir(), 'hcp-mosquitto-'));
  const secret = () => randomBytes(24).toString('base64url');
  const ingestPassword = secret();
  const feedsPassword = secret();
  const passwdFile = join(dir, 'passwd');
  const ingestPasswordFile = join(dir, 'ingest.password');
  writeFileSync(ingestPasswordFile, `${ingestPassword}\n`, { mode: 0o600 });
  writeFileSync(passwdFile, '', { mode: 0o600 });
  writeFileSync(join(dir, 'acl'), ACL, { mode: 0o600 });
  const setPassword = (user: string, password: string) => execFileSync(passwd, ['-b', passwdFile, user, password], { stdio: 'pipe' });
  setPassword(INGEST_USER, ingestPassword);
  setPassword(FEEDS_USER, feedsPassword);
  for (const [u, p] of Object.entries(o.users ?? {})) setPassword(u, p);
  const own = () => {
    if (!owner) return;
    for (const f of ['', 'passwd', 'acl', 'mosquitto.conf']) {
      const p = join(dir, f);
      if (existsSync(p)) chownSync(p, owner.uid, owner.gid);
    }
    chmodSync(dir, 0o700);
  };

  let port = 0;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const raw: string[] = [];
  const spawnBroker = async (): Promise<boolean> => {
    const proc = spawn(bin, ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    exited = new Promise((r) => proc.once('exit', () => r()));
    for (const s of [proc.stdout!, proc.stderr!]) {
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        raw.push(...d.split('\n').filter(Boolean));
        if (raw.length > 400) raw.splice(0, raw.length - 400);
      });
    }
    try {
      await waitFor(
        async () => {
          if (proc.exitCode !== null || proc.signalCode !== null) throw new Error('exited');
          return portOpen(port);
        },
        { timeoutMs: 10_000, intervalMs: 25, message: `mosquitto listening on ${port}` },
      );
      return true;
    } catch {
      proc.kill('SIGKILL');
      await exited;
      return false;
    }
  };

  // A port found free can be taken before Mosquitto binds it: try a fresh one.
  let started = false;
  for (let attempt = 0; attempt < 3 && !started; attempt++) {
    port = await freePort();
    writeFileSync(join(dir, 'mosquitto.conf'), config({ port, dir, maxQueued: o.maxQueued ?? 100_000, autosaveS: o.autosaveS ?? 1, user: owner?.name ?? null }));
    own();
    started = await spawnBroker();
  }
  if (!started) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mosquitto did not start:\n${raw.slice(-20).join('\n')}`);
  }
  const alive = () => child !== null && child.exitCode === null && child.signalCode === null;
  const killSync = () => {
    if (alive()) child!.kill('SIGKILL');
  };
  process.once('exit', killSync);
  const halt = async (signal: NodeJS.Signals) => {
    if (alive()) child!.kill(signal);
    await exited;
  };
  let closing: Promise<void> | null = null;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    ingestPassword,
    ingestPasswordFile,
    feedsPassword,
    async addUser(username, password) {
      setPassword(username, password);
      own();
      if (!alive()) return;
      const reloads = () => raw.filter((l) => l.includes('Reloading config')).length;
      const before = reloads();
      child!.kill('SIGHUP');
      // the reload is asynchronous: a login before it would still meet the old file
      await waitFor(() => reloads() > before || !alive(), { timeoutMs: 5000, message: 'mosquitto reloaded its config' });
    },
    stop: () => halt('SIGTERM'),
    async start() {
      if (alive()) return;
      if (!(await spawnBroker())) throw new Error(`mosquitto did not start again on ${port}:\n${raw.slice(-20).join('\n')}`);
    },
    kill9: () => halt('SIGKILL'),
    running: alive,
    output: () => raw.slice(-40).join('\n'),
    close() {
      closing ??= (async () => {
        process.removeListener('exit', killSync);
        await halt('SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
