// Real processes for end-to-end tests: spawned with tsx, their JSON log lines collected so a
// test can wait for one ("control plane listening") instead of sleeping.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { CONTROL_PLANE_NODE_FLAGS } from '../../control-plane/node-flags.js';
import { TEST_ADMIN_KEY } from './auth.js';
import { waitFor } from './wait-for.js';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: Array<Record<string, unknown>>;
  /** raw output, for failure messages */
  output(): string;
  waitForLog(pred: (l: Record<string, unknown>) => boolean, message: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * An agent keeps its state (telemetry spool, command journal, desired state) in a state dir that
 * defaults to data/agents/<site> under its working directory (agent/config.ts). Test agents run
 * in ROOT and would share it across tests and runs, so one not given a dir gets a fresh one of
 * its own, deleted when it exits.
 */
function agentState(args: string[], env: Record<string, string | undefined>): { env: Record<string, string | undefined>; dir: string | null } {
  if (args.includes('--state-dir') || env.HCP_AGENT_STATE_DIR || process.env.HCP_AGENT_STATE_DIR) return { env, dir: null };
  const dir = mkdtempSync(join(tmpdir(), 'hcp-agent-state-'));
  return { env: { ...env, HCP_AGENT_STATE_DIR: dir }, dir };
}

function cleanUp(child: ChildProcess, dir: string | null): void {
  if (dir) child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
}

export function startTs(name: string, script: string, args: string[], env: Record<string, string | undefined> = {}): Proc {
  const state = script === 'agent/main.ts' ? agentState(args, env) : { env, dir: null };
  const flags = script === 'control-plane/main.ts' ? CONTROL_PLANE_NODE_FLAGS : [];
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...state.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanUp(child, state.dir);
  return wrap(name, child);
}

/** a built binary (the agent's, test/harness/agent-binary.ts) */
export function startBinary(name: string, file: string, args: string[], env: Record<string, string | undefined> = {}): Proc {
  const state = agentState(args, env);
  const child = spawn(file, args, { cwd: ROOT, env: { ...process.env, ...state.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanUp(child, state.dir);
  return wrap(name, child);
}

// A child never outlives the test or bench that started it: one that threw out of its top level
// left a control plane running (and writing) for the rest of the session.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function wrap(name: string, child: ChildProcess): Proc {
  running.add(child);
  child.once('exit', () => running.delete(child));
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) {
    createInterface({ input: s }).on('line', (line) => {
      raw.push(line);
      if (raw.length > 2000) raw.shift();
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    });
  }
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return {
    name,
    child,
    lines,
    output: () => raw.slice(-40).join('\n'),
    async waitForLog(pred, message, timeoutMs = 30_000) {
      return waitFor(
        () => {
          if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${raw.slice(-20).join('\n')}`);
          return lines.find(pred);
        },
        { timeoutMs, intervalMs: 50, message: `${name}: ${message}` },
      );
    },
    exited: () => exit,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
}

export interface ControlPlaneProcess {
  proc: Proc;
  http: string;
  grpc: string;
  mqtt: string;
}

/**
 * The control plane as a process on the given database, every port picked by the OS, with fast
 * heartbeats and staleness for tests; `env` adds or overrides settings.
 */
export async function startControlPlaneProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<ControlPlaneProcess> {
  const proc = startTs('control-plane', 'control-plane/main.ts', [], {
    DATABASE_URL: databaseUrl, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_HEARTBEAT_MS: '500', HCP_STALE_AFTER_MS: '3000',
    HCP_ADMIN_KEY: TEST_ADMIN_KEY, ...env,
  });
  const ready = await proc.waitForLog((l) => l.msg === 'control plane listening', 'listening');
  return { proc, http: ready.http as string, grpc: ready.grpc as string, mqtt: ready.mqtt as string };
}
