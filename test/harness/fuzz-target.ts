// The control plane the fuzz suites drive: a real child process on the real PostgreSQL (so a
// crash shows as an exit), a key of every role, a site whose agent stream answers every command
// (so ?wait and wait=true calls end), and the checks every case ends with: the process is alive
// and logged nothing that says it lost control of an input.
import { expect } from 'vitest';
import { TEST_ADMIN_KEY, makeKey } from './auth.js';
import { device, openAgentStream, type TestAgentStream } from './grpc-agent.js';
import { startControlPlaneProcess, type ControlPlaneProcess } from './processes.js';
import { waitFor } from './wait-for.js';

/** the site the fuzzers command (its agent applies everything) and whose telemetry topic they publish on */
export const FUZZ_SITE = 'fuzz-1';
export const FUZZ_GPUS = ['gpu-fuzz-1-0001', 'gpu-fuzz-1-0002', 'gpu-fuzz-1-0003', 'gpu-fuzz-1-0004'];
export const FUZZ_ASICS = ['asic-fuzz-1-00001', 'asic-fuzz-1-00002', 'asic-fuzz-1-00003', 'asic-fuzz-1-00004'];

export type FuzzRole = 'admin' | 'operator' | 'customer' | 'viewer' | 'agent' | 'feed';
export const FUZZ_ROLES: readonly FuzzRole[] = ['admin', 'operator', 'customer', 'viewer', 'agent', 'feed'];

export interface FuzzTarget {
  cp: ControlPlaneProcess;
  /** a key of every role; the agent key is fuzz-1's credential */
  keys: Record<FuzzRole, string>;
  /** fuzz-1's agent stream, answering every command */
  agent: TestAgentStream;
  /** the status fuzz-1's stream ended with, if it did: no fuzz case may close another site's stream */
  agentEnded(): string | null;
  /** index into the child's log lines: problems are looked for after a mark */
  mark(): number;
  /**
   * throws when the child has exited or logged a problem after `since`; with `rid`, only the
   * problems logged for that request count (a line that arrives late belongs to its own case,
   * not to the one being checked when it arrives)
   */
  assertHealthy(since?: number, rid?: string, alsoAllowed?: readonly RegExp[]): void;
  /** /metrics, parsed */
  metrics(): Promise<Metrics>;
  close(): Promise<void>;
}

/** Prometheus samples by `name{labels}`; `sum(name)` adds every label set of a metric */
export interface Metrics {
  samples: Map<string, number>;
  sum(name: string): number;
  get(name: string, labels?: Record<string, string>): number;
}

export function parseMetrics(text: string): Metrics {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    samples.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return {
    samples,
    sum: (name) => {
      let n = 0;
      for (const [k, v] of samples) if (k === name || k.startsWith(`${name}{`)) n += v;
      return n;
    },
    get: (name, labels = {}) => {
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
      return samples.get(want ? `${name}{${want}}` : name) ?? 0;
    },
  };
}

/**
 * What no input may make the control plane log: fatal lines, anything unhandled or uncaught,
 * output that is not a JSON log line and looks like a Node warning or a stack, and error lines
 * (level 50) other than those `allowedErrors` names. An error line means a part of the control
 * plane met something it did not handle: a 500 ("request failed"), a failed gRPC call ("fleet call
 * failed"), a write that failed on a value it was let through.
 */
export function logProblems(lines: ReadonlyArray<Record<string, unknown>>, allowedErrors: readonly RegExp[] = []): string[] {
  const problems: string[] = [];
  for (const l of lines) {
    const text = JSON.stringify(l);
    if (typeof l.raw === 'string') {
      if (/unhandled|uncaught|warning|error|fatal|^\s+at /i.test(l.raw)) problems.push(`non-JSON output: ${l.raw.slice(0, 400)}`);
      continue;
    }
    const level = Number(l.level);
    if (level >= 60) problems.push(`fatal: ${text.slice(0, 600)}`);
    else if (/unhandled|uncaught/i.test(text)) problems.push(`unhandled: ${text.slice(0, 600)}`);
    else if (level >= 50 && !allowedErrors.some((re) => re.test(String(l.msg)))) problems.push(`error line: ${brief(l)}`);
  }
  return problems;
}

/** a log line's message, component and error first, the rest after */
function brief(l: Record<string, unknown>): string {
  const { msg, component, err, level: _l, time: _t, pid: _p, name: _n, ...rest } = l;
  const e = err as { type?: string; message?: string } | undefined;
  return `${String(component ?? '')}: ${String(msg)}${e ? ` (${e.type}: ${e.message})` : ''} ${JSON.stringify(rest).slice(0, 300)}`;
}

export async function startFuzzTarget(databaseUrl: string, o: { env?: Record<string, string>; allowedErrors?: readonly RegExp[] } = {}): Promise<FuzzTarget> {
  const cp = await startControlPlaneProcess(databaseUrl, {
    // The default per-key rate (50/s, burst 100) would answer most fuzz cases 429 and exercise
    // nothing behind it; fuzz-rest.test.ts checks the limit itself on a control plane of its own.
    HCP_RATE_LIMIT_PER_S: '1000000',
    HCP_RATE_LIMIT_BURST: '1000000',
    HCP_ECONOMICS_INTERVAL_MS: '600000',
    ...o.env,
  });
  const agentKey = await makeKey(cp.http, { role: 'agent', site: FUZZ_SITE });
  const keys: Record<FuzzRole, string> = {
    admin: TEST_ADMIN_KEY,
    operator: await makeKey(cp.http, { role: 'operator', name: 'fuzz-operator' }),
    customer: await makeKey(cp.http, { role: 'customer', name: 'fuzz-customer', customer_id: 'cust-001' }),
    viewer: await makeKey(cp.http, { role: 'viewer', name: 'fuzz-viewer' }),
    agent: agentKey,
    feed: await makeKey(cp.http, { role: 'feed', name: 'fuzz-feed' }),
  };
  const agent = openAgentStream(
    cp.grpc,
    { siteId: FUZZ_SITE, session: 'fuzz-1-session', token: agentKey, devices: [...FUZZ_GPUS.map((id) => device(id, 'gpu')), ...FUZZ_ASICS.map((id) => device(id, 'asic'))] },
    'apply',
  );
  await waitFor(() => agent.received.some((m) => m.body?.$case === 'helloAck'), { message: 'fuzz-1 HelloAck', timeoutMs: 10_000 });
  let hb = 0;
  const heartbeat = setInterval(() => agent.heartbeat(++hb), 400);
  let ended: string | null = null;
  void agent.error.then((e) => (ended = `${e.code} ${e.details} ${e.metadata?.get('hcp-reason')}`));
  const allowed = o.allowedErrors ?? [];
  return {
    cp,
    keys,
    agent,
    agentEnded: () => ended,
    mark: () => cp.proc.lines.length,
    assertHealthy(since = 0, rid, alsoAllowed = []) {
      const child = cp.proc.child;
      expect(child.exitCode, `the control plane exited:\n${cp.proc.output()}`).toBeNull();
      expect(child.signalCode, 'the control plane was killed').toBeNull();
      const lines = cp.proc.lines.slice(since);
      const problems = logProblems(rid === undefined ? lines : lines.filter((l) => l.rid === rid), [...allowed, ...alsoAllowed]);
      if (problems.length) throw new Error(`the control plane logged ${problems.length} problem(s):\n${problems.slice(0, 5).join('\n')}`);
    },
    async metrics() {
      const r = await fetch(`${cp.http}/metrics`);
      expect(r.status).toBe(200);
      return parseMetrics(await r.text());
    },
    async close() {
      clearInterval(heartbeat);
      agent.close();
      await cp.proc.kill();
    },
  };
}
