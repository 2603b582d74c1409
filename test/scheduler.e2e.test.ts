// The scheduler end to end on `npm start` as it ships (scripts/start.ts on real PostgreSQL): the
// control plane, three agent processes with 10 H100s and 50 S21 XPs each, and the market and grid
// simulators with the economic engine deciding every 10 s. All 30 GPUs are filled with batch and
// training work, then a realtime inference workload arrives: it runs within seconds by evicting
// only the lowest-priority work needed, at the site where that costs least; the evicted work
// waits, and runs again once the realtime run completes. Ctrl-C then stops the whole tree.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { describePg } from './harness/pg.js';
import { freePort } from './harness/ports.js';
import { startTs, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';

interface Allocation { device_id: string; site: string; live: boolean }
interface HistoryEntry { time: string; from: string | null; to: string; site: string | null; device_ids: string[] | null; reason: string | null }
interface Workload {
  id: string; state: string; priority: number; workload_type: string; site: string | null; preempted_count: number;
  allocations: Allocation[]; history: HistoryEntry[];
}
interface GpuView { id: string; site: string; online: boolean; latest: { state: string; workload_id: string | null } | null }
interface CommandView { id: string; site: string; type: string; actor: string; workload_id: string | null; params: { device_ids?: string[] } }

const SITES = ['texas-1', 'texas-2', 'canada-1'] as const;
const GPUS = 30;

// Every site full, and one site (canada-1) where eviction is cheapest: two 1-GPU priority-9 runs
// there free exactly the 2 GPUs the realtime run needs. texas-2's priority-9 run alone is not
// enough, and adding its priority-8 neighbour makes texas-2 dearer (ranked by the most important
// victim); texas-1's weakest is priority 8. Pinning the fillers with `site` keeps the layout exact.
interface Filler { site: (typeof SITES)[number]; gpus: number; priority: number; type: 'ai_inference_batch' | 'ai_training' }
const FILLERS: Filler[] = [
  ...Array.from({ length: 4 }, (): Filler => ({ site: 'canada-1', gpus: 2, priority: 5, type: 'ai_inference_batch' })),
  { site: 'canada-1', gpus: 1, priority: 9, type: 'ai_inference_batch' },
  { site: 'canada-1', gpus: 1, priority: 9, type: 'ai_inference_batch' },
  ...Array.from({ length: 4 }, (): Filler => ({ site: 'texas-2', gpus: 2, priority: 6, type: 'ai_inference_batch' })),
  { site: 'texas-2', gpus: 1, priority: 9, type: 'ai_inference_batch' },
  { site: 'texas-2', gpus: 1, priority: 8, type: 'ai_training' },
  ...Array.from({ length: 4 }, (): Filler => ({ site: 'texas-1', gpus: 2, priority: 7, type: 'ai_inference_batch' })),
  { site: 'texas-1', gpus: 2, priority: 8, type: 'ai_training' },
];
const REALTIME_S = 15;

/** every live descendant of pid (the agents, the feeds and the control plane under start.ts) */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of rows) if (parent === p) { out.push(child); walk(child); }
  };
  walk(pid);
  return out;
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describePg('scheduler end to end on npm start', (pg) => {
  let start: Proc | undefined;
  let dataDir = '';
  let base = '';
  let tree: number[] = [];
  const fillers = new Map<string, Filler>();
  let victims: string[] = [];
  let rt = '';

  let adminKey = '';
  const get = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${adminKey}` } });
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };
  const submit = async (body: Record<string, unknown>): Promise<string> => {
    const r = await fetch(`${base}/api/v1/workloads`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` }, body: JSON.stringify(body) });
    const b = (await r.json()) as { id: string };
    expect(r.status, JSON.stringify(b)).toBe(201);
    return b.id;
  };
  const workload = (id: string) => get<Workload>(`/api/v1/workloads/${id}`);
  const gpus = async () => (await get<{ devices: GpuView[] }>('/api/v1/devices?kind=gpu')).devices;
  const allWorkloads = async () => Promise.all((await get<{ workloads: Array<{ id: string }> }>('/api/v1/workloads?limit=1000')).workloads.map((w) => workload(w.id)));
  const inState = (id: string, state: string, message: string, timeoutMs = 15_000) =>
    waitFor(async () => {
      const w = await workload(id);
      return w.state === state ? w : null;
    }, { timeoutMs, intervalMs: 200, message });
  const liveGpus = (w: Workload) => w.allocations.filter((a) => a.live).map((a) => a.device_id).sort();

  /** the live allocations of every workload, refusing a GPU held twice */
  const holders = async (): Promise<Map<string, string>> => {
    const held = new Map<string, string>();
    for (const w of await allWorkloads()) {
      for (const g of liveGpus(w)) {
        expect(held.get(g), `${g} is in live allocations of both ${held.get(g)} and ${w.id}`).toBeUndefined();
        held.set(g, w.id);
      }
    }
    return held;
  };
  /** telemetry agrees with the allocations: each held GPU busy with its holder, the others idle */
  const telemetryMatches = (message: string) =>
    waitFor(async () => {
      const held = await holders();
      const all = await gpus();
      const ok = all.length === GPUS && all.every((g) => g.online && (held.has(g.id)
        ? g.latest?.state === 'busy' && g.latest.workload_id === held.get(g.id)
        : g.latest?.state === 'idle' && !g.latest.workload_id));
      return ok ? { held, gpus: all } : null;
    }, { timeoutMs: 15_000, intervalMs: 250, message });

  beforeAll(async () => {
    const [http, grpc, mqtt] = [await freePort(), await freePort(), await freePort()];
    base = `http://127.0.0.1:${http}`;
    dataDir = mkdtempSync(join(tmpdir(), 'hcp-sched-e2e-'));
    start = startTs('npm-start', 'scripts/start.ts', [], {
      DATABASE_URL: pg.url, HCP_DATA_DIR: dataDir, HCP_HTTP_PORT: String(http), HCP_GRPC_PORT: String(grpc), HCP_MQTT_PORT: String(mqtt),
    });
    // start.ts allows the control plane 60 s and the sites another 60 s
    await start.waitForLog((l) => l.raw === 'HCP is running.', 'all sites online', 130_000);
    tree = descendants(start.child.pid!);
    // the control plane, three agents and the feeds
    expect(tree.length, execFileSync('ps', ['-o', 'pid,args', '--ppid', String(start.child.pid)], { encoding: 'utf8' })).toBeGreaterThanOrEqual(5);
    const cpLog = readFileSync(join(dataDir, 'logs', 'control-plane.log'), 'utf8');
    expect(cpLog).toContain('"msg":"control plane listening"');
    expect(start.output()).toContain('PostgreSQL at DATABASE_URL');
    // npm start made the admin key, printed it and keeps it where only its user can read it
    adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
    expect(statSync(join(dataDir, 'admin.key')).mode & 0o777).toBe(0o600);
    await start.waitForLog((l) => String(l.raw ?? '').includes(adminKey), 'the admin key printed');
    expect((await fetch(`${base}/api/v1/status`)).status).toBe(401);
  }, 150_000);

  afterAll(async () => {
    // the last test stops the tree with Ctrl-C; this is for a run that failed before it
    if (start && start.child.exitCode === null && start.child.signalCode === null) {
      start.child.kill('SIGINT');
      await Promise.race([start.exited(), new Promise((r) => setTimeout(r, 20_000).unref())]);
    }
    for (const pid of [start?.child.pid, ...tree]) if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  const showLogs = () => onTestFailed(() => {
    for (const name of ['control-plane', 'agent-canada-1']) {
      try {
        const lines = readFileSync(join(dataDir, 'logs', `${name}.log`), 'utf8').trim().split('\n');
        console.error(`--- ${name}.log (last 40 lines)\n${lines.slice(-40).join('\n')}`);
      } catch { /* not written */ }
    }
  });

  it('fills all 30 GPUs with batch and training work, each GPU busy with the one workload allocated it', async () => {
    showLogs();
    expect(FILLERS.reduce((n, f) => n + f.gpus, 0)).toBe(GPUS);
    for (const f of FILLERS) {
      const id = await submit({
        customer_id: 'cust-001', workload_type: f.type, priority: f.priority, site: f.site, duration_s: 3600,
        requirements: { gpu_type: 'H100', gpu_count: f.gpus },
      });
      fillers.set(id, f);
    }
    await waitFor(async () => {
      const running = (await get<{ workloads: Array<{ id: string }> }>('/api/v1/workloads?state=running&limit=1000')).workloads;
      return running.length === fillers.size && running.every((w) => fillers.has(w.id));
    }, { timeoutMs: 30_000, intervalMs: 250, message: 'every filler running' });
    const { held } = await telemetryMatches('all 30 GPUs busy with their workloads in telemetry');
    expect(held.size).toBe(GPUS);
    for (const [id, f] of fillers) {
      const w = await workload(id);
      expect(w.site).toBe(f.site);
      expect(liveGpus(w)).toHaveLength(f.gpus);
      expect(liveGpus(w).every((g) => g.startsWith(`gpu-${f.site}-`))).toBe(true);
    }
    const status = await get<{ sites: Array<{ id: string; gpus_busy: number }> }>('/api/v1/status');
    for (const s of SITES) expect(status.sites.find((x) => x.id === s)?.gpus_busy, s).toBe(10);
  }, 60_000);

  it('a realtime workload runs within seconds by evicting only the two priority-9 runs at canada-1; they wait', async () => {
    showLogs();
    victims = [...fillers].filter(([, f]) => f.site === 'canada-1' && f.priority === 9).map(([id]) => id).sort();
    const victimGpus = (await Promise.all(victims.map(workload))).flatMap(liveGpus).sort();
    expect(victimGpus).toHaveLength(2);

    rt = await submit({
      customer_id: 'cust-002', workload_type: 'ai_inference_realtime', priority: 1, duration_s: REALTIME_S,
      requirements: { gpu_type: 'H100', gpu_count: 2 },
    });
    // "must start within seconds even when the fleet is full"
    const r = await inState(rt, 'running', 'realtime workload running', 10_000);
    expect(r.site).toBe('canada-1');
    expect(liveGpus(r)).toEqual(victimGpus);
    expect(r.history.map((h) => h.to)).toEqual(['scheduled', 'running']);
    expect(r.history[0]!.reason!.replace('placed by preempting ', '').split(', ').sort()).toEqual(victims);

    for (const v of victims) {
      const w = await inState(v, 'pending', `evicted ${v} waiting`, 10_000);
      expect(w.preempted_count).toBe(1);
      expect(liveGpus(w)).toEqual([]);
      expect(w.history.map((h) => `${h.from}->${h.to}`)).toEqual([
        'pending->scheduled', 'scheduled->running', 'running->preempted', 'preempted->pending',
      ]);
      expect(w.history[2]!.reason).toContain(`preempted by ${rt}`);
    }
    // nothing else was touched: not texas-2's priority-9 run, not the equal- or higher-priority work
    for (const id of fillers.keys()) {
      if (victims.includes(id)) continue;
      const w = await workload(id);
      expect(w.state, id).toBe('running');
      expect(w.preempted_count, id).toBe(0);
    }
    // the evicted GPUs now carry the realtime workload in telemetry; nothing is held twice
    const { held, gpus: all } = await telemetryMatches('the evicted GPUs busy with the realtime workload');
    for (const g of victimGpus) expect(all.find((x) => x.id === g)?.latest?.workload_id).toBe(rt);
    expect(held.size).toBe(GPUS);
  }, 60_000);

  it('when the realtime run completes, the evicted work runs again on the freed GPUs', async () => {
    showLogs();
    const done = await inState(rt, 'completed', 'realtime run completed', (REALTIME_S + 20) * 1000);
    expect(liveGpus(done)).toEqual([]);
    const completedAt = Date.parse(done.history.find((h) => h.to === 'completed')!.time);
    for (const v of victims) {
      const w = await inState(v, 'running', `evicted ${v} running again`, 20_000);
      expect(w.site).toBe('canada-1');
      expect(w.history.map((h) => h.to)).toEqual(['scheduled', 'running', 'preempted', 'pending', 'scheduled', 'running']);
      // it waited: placed again only after the realtime run had finished
      expect(Date.parse(w.history[4]!.time)).toBeGreaterThanOrEqual(completedAt);
      expect(w.preempted_count).toBe(1);
    }
    const { held } = await telemetryMatches('all 30 GPUs busy with the batch work again');
    expect(held.size).toBe(GPUS);
    expect([...new Set(held.values())].sort()).toEqual([...fillers.keys()].sort());
  }, 60_000);

  it('the economic engine and grid simulator never commanded a GPU: allocate and release came only from the scheduler', async () => {
    const { commands } = await get<{ commands: CommandView[] }>('/api/v1/commands?limit=1000');
    const gpuIds = new Set((await gpus()).map((g) => g.id));
    expect(gpuIds.size).toBe(GPUS);
    const placements = commands.filter((c) => c.type === 'allocate' || c.type === 'release');
    // 30 fillers + the realtime run + 2 re-placements allocated; 2 evictions + 1 completion released
    expect(placements.filter((c) => c.type === 'allocate')).toHaveLength(FILLERS.length + 1 + victims.length);
    expect(placements.filter((c) => c.type === 'release')).toHaveLength(victims.length + 1);
    expect(placements.every((c) => c.actor === 'scheduler')).toBe(true);
    for (const c of commands.filter((x) => x.type !== 'allocate' && x.type !== 'release')) {
      expect((c.params.device_ids ?? []).filter((d) => gpuIds.has(d)), `${c.type} ${c.id} by ${c.actor}`).toEqual([]);
    }
  });

  it('Ctrl-C stops the control plane, the agents and the feeds; nothing is left running', async () => {
    expect(tree.every(alive)).toBe(true);
    start!.child.kill('SIGINT');
    const exit = await Promise.race([start!.exited(), new Promise<null>((r) => setTimeout(() => r(null), 30_000).unref())]);
    expect(exit, 'start.ts exited within 30 s of SIGINT').toEqual({ code: 0, signal: null });
    await waitFor(() => tree.every((p) => !alive(p)), { timeoutMs: 5_000, message: 'no orphaned child process' });
    await expect(fetch(`${base}/health`)).rejects.toThrow();
  }, 40_000);
});
