// workloads submit|list|get|cancel|watch (control-plane/http/routes/workloads.ts).
import { duration, int, oneOf, required, str, UsageError } from '../args.js';
import type { Api } from '../api.js';
import type { Ctx } from '../context.js';
import { createProgress } from '../progress.js';
import { fields, json, table, when } from '../output.js';
import { commandRows, type CommandView } from './control.js';

const TYPES = ['ai_inference_realtime', 'ai_inference_batch', 'ai_training'] as const;
const STATES = ['pending', 'scheduled', 'running', 'preempted', 'completed', 'failed', 'cancelled'] as const;
const FINAL = new Set(['completed', 'failed', 'cancelled']);
const POLL_MS = 500;

interface WorkloadView {
  id: string; customer_id: string; workload_type: string; priority: number; state: string;
  requirements: { gpu_type: string; gpu_count: number; site?: string }; duration_s: number | null;
  site: string | null; preempted_count: number; created_at: string; started_at: string | null; finished_at: string | null;
}
interface HistoryEntry { time: string; from: string | null; to: string; site: string | null; device_ids: string[] | null; reason: string | null }
interface WorkloadDetail extends WorkloadView {
  allocations: Array<{ device_id: string; site: string; live: boolean }>;
  history: HistoryEntry[];
  commands: CommandView[];
}

const rows = (ws: WorkloadView[]) =>
  table(['WORKLOAD', 'CUSTOMER', 'TYPE', 'PRIO', 'GPUS', 'STATE', 'SITE', 'CREATED', 'STARTED'],
    ws.map((w) => [w.id, w.customer_id, w.workload_type, w.priority, `${w.requirements.gpu_count}×${w.requirements.gpu_type}`, w.state, w.site, when(w.created_at), when(w.started_at)]));

const historyLine = (h: HistoryEntry) =>
  `${h.time}  ${h.from ?? '(new)'} → ${h.to}${h.site ? `  at ${h.site}` : ''}${h.device_ids?.length ? ` on ${h.device_ids.join(', ')}` : ''}${h.reason ? `  (${h.reason})` : ''}`;

function detail(ctx: Ctx, w: WorkloadDetail): void {
  ctx.out(fields([
    ['id', w.id], ['customer', w.customer_id], ['type', w.workload_type], ['priority', w.priority], ['state', w.state],
    ['gpus', `${w.requirements.gpu_count}×${w.requirements.gpu_type}`], ['site', w.site], ['duration', w.duration_s === null ? 'until cancelled' : `${w.duration_s} s`],
    ['preempted', w.preempted_count], ['created', w.created_at], ['started', w.started_at], ['finished', w.finished_at],
    ['on GPUs', w.allocations.filter((a) => a.live).map((a) => a.device_id).join(', ') || null],
  ]));
  if (w.history.length) ctx.out('\nhistory:\n' + w.history.map((h) => `  ${historyLine(h)}\n`).join(''));
  if (w.commands.length) ctx.out('\ncommands:\n' + commandRows(w.commands));
}

const get = (api: Api, id: string) => api.get<WorkloadDetail>(`/api/v1/workloads/${encodeURIComponent(id)}`);

/**
 * Where a pending workload stands among the pending work this key can see: the scheduler takes
 * the best priority first, oldest first within one (control-plane/scheduler/queue.ts). Aging can
 * move a long-waiting one up, so this is where it stands by its submitted priority.
 */
async function queuePosition(api: Api, w: WorkloadView): Promise<{ position: number; of: number } | null> {
  const { workloads } = await api.get<{ workloads: WorkloadView[] }>('/api/v1/workloads', { state: 'pending', limit: 1000 });
  const ahead = workloads.filter((o) => o.id !== w.id && (o.priority < w.priority || (o.priority === w.priority && o.created_at < w.created_at)));
  return { position: ahead.length + 1, of: Math.max(workloads.length, ahead.length + 1) };
}

export async function submit(ctx: Ctx): Promise<number> {
  const v = ctx.values;
  const gpus = int(v, 'gpus', 1, 1024);
  if (gpus === undefined) throw new UsageError('--gpus is required', ctx.spec);
  const durationS = duration(v, 'duration');
  if (durationS !== undefined && !Number.isInteger(durationS)) throw new UsageError('--duration must be whole seconds');
  const body = {
    workload_type: oneOf(v, 'type', TYPES) ?? 'ai_inference_batch',
    priority: int(v, 'priority', 1, 10) ?? 5,
    requirements: { gpu_type: str(v, 'gpu-type') ?? 'h100', gpu_count: gpus },
    ...(str(v, 'customer') ? { customer_id: str(v, 'customer') } : {}),
    ...(str(v, 'site') ? { site: str(v, 'site') } : {}),
    ...(durationS !== undefined ? { duration_s: durationS } : {}),
    ...(v['min-memory-mib'] !== undefined ? { min_gpu_memory_mib: int(v, 'min-memory-mib', 0, 10_000_000) } : {}),
    ...(str(v, 'idempotency-key') ? { idempotency_key: str(v, 'idempotency-key') } : {}),
  };
  const timeoutS = int(v, 'timeout', 1, 86_400) ?? 300;
  const { body: w } = await ctx.api.post<WorkloadView>('/api/v1/workloads', body);
  if (!v.wait) {
    ctx.out(ctx.json ? json(w) : rows([w]));
    return 0;
  }
  return waitRunning(ctx, w, timeoutS);
}

/** follows a submitted workload until it runs (or ends), showing its queue position and then its placement */
async function waitRunning(ctx: Ctx, submitted: WorkloadView, timeoutS: number): Promise<number> {
  const progress = createProgress();
  const until = Date.now() + timeoutS * 1000;
  let w: WorkloadDetail | null = null;
  let ran = false;
  try {
    for (let first = true; ; first = false) {
      if (!first) await new Promise((r) => setTimeout(r, POLL_MS));
      w = await get(ctx.api, submitted.id);
      const live = w.allocations.filter((a) => a.live);
      if (w.state === 'pending' || w.state === 'preempted') {
        const q = w.state === 'pending' ? await queuePosition(ctx.api, w) : null;
        progress.update(`${w.id}: ${w.state === 'preempted' ? 'preempted, going back to the queue' : `queued, position ${q!.position} of ${q!.of} pending (priority ${w.priority})`}`);
      } else if (w.state === 'scheduled') {
        progress.update(`${w.id}: placed at ${w.site ?? live[0]?.site ?? '?'} on ${live.map((a) => a.device_id).join(', ') || `${w.requirements.gpu_count} GPUs`}; waiting for the agent to start it`);
      }
      if (w.state === 'running' || w.state === 'completed') {
        ran = true;
        progress.done(`${w.id}: ${w.state} at ${w.site} on ${live.map((a) => a.device_id).join(', ') || `${w.requirements.gpu_count} GPUs`}`);
        break;
      }
      if (FINAL.has(w.state)) break;
      if (Date.now() >= until) break;
    }
  } finally {
    progress.done();
  }
  if (ctx.json) ctx.out(json(w));
  else detail(ctx, w);
  if (ran) return 0;
  const last = w.history.at(-1);
  ctx.err(FINAL.has(w.state)
    ? `hcp: workload ${w.id} is ${w.state} and did not run${last?.reason ? `: ${last.reason}` : ''}\n`
    : `hcp: gave up after ${timeoutS} s: workload ${w.id} is ${w.state}\n`);
  return 1;
}

export async function list(ctx: Ctx): Promise<number> {
  const v = ctx.values;
  const q = { state: oneOf(v, 'state', STATES), customer_id: str(v, 'customer'), limit: int(v, 'limit', 1, 1000) };
  let cursor = str(v, 'cursor');
  if (cursor !== undefined && !/^\d{1,18}$/.test(cursor)) throw new UsageError('--cursor must be a next_cursor from an earlier page', ctx.spec);
  const all: WorkloadView[] = [];
  let body: { workloads: WorkloadView[]; next_cursor: string | null };
  for (;;) {
    body = await ctx.api.get('/api/v1/workloads', { ...q, cursor });
    all.push(...body.workloads);
    cursor = body.next_cursor ?? undefined;
    if (!v.all || !cursor) break;
  }
  if (v.all) body = { workloads: all, next_cursor: null };
  if (ctx.json) return ctx.out(json(body)), 0;
  ctx.out(rows(all));
  if (body.next_cursor) ctx.err(`next page: hcp workloads list --cursor ${body.next_cursor} (or --all)\n`);
  return 0;
}

export async function show(ctx: Ctx): Promise<number> {
  const w = await get(ctx.api, ctx.positionals[0]!);
  if (ctx.json) ctx.out(json(w));
  else detail(ctx, w);
  return 0;
}

export async function cancel(ctx: Ctx): Promise<number> {
  const { body: w } = await ctx.api.post<WorkloadView>(`/api/v1/workloads/${encodeURIComponent(ctx.positionals[0]!)}/cancel`, {});
  ctx.out(ctx.json ? json(w) : rows([w]));
  return 0;
}

/** prints each history entry as it appears (--json: one JSON object a line) until the workload ends */
export async function watch(ctx: Ctx): Promise<number> {
  const interval = int(ctx.values, 'interval', 100, 60_000) ?? 1000;
  const id = ctx.positionals[0]!;
  let seen = 0;
  for (let first = true; ; first = false) {
    if (!first) await new Promise((r) => setTimeout(r, interval));
    const w = await get(ctx.api, id);
    for (const h of w.history.slice(seen)) ctx.out(ctx.json ? `${JSON.stringify(h)}\n` : `${historyLine(h)}\n`);
    seen = w.history.length;
    if (FINAL.has(w.state)) return 0;
  }
}


