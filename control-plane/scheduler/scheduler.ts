// The scheduler's lifecycle: the I/O around the pure placement (placement.ts). It keeps the wait
// queue in memory (loaded from the database at start), runs a pass whenever something changed
// (a submit, freed GPUs, a site back), and has the workload service (workloads/service.ts), the
// one owner of workload transitions, carry out each placement: evicted work is released first,
// ASICs are lowered when the budget needs it, then Allocate is sent. What happens to workloads
// it hears as workload.changed (control-plane/events.ts): a workload back to pending is queued,
// one that left scheduled or running lets its GPUs go. A workload is `running` only when the
// agent confirms its Allocate (the service's follow-up of the command).
//
// Ordering makes hand-over safe without waiting: the agent applies one site's commands serially,
// in the order they were stored (AgentGateway / bus.siteConnected), so a Release stored before an
// Allocate on the same GPUs is applied first.
//
// The live allocations (holders) and customer quotas are kept in memory: each pass used to
// reload them, a join over every live allocation. The memory follows the scheduler's own
// decisions and the agents' answers; it is reloaded from the database when a reservation finds a
// GPU taken (an operator's explicit allocate, or memory that drifted) and every RESYNC_MS. The
// unique live-allocation index, not this memory, is what keeps a GPU out of two allocations.
//
// A timer has the service complete runs whose duration_s elapsed (all that are due in one
// transaction, every COMPLETE_MS, since a GPU held past its run is capacity lost), and requeue
// the work of sites that stayed offline longer than the grace period. The passes are coalesced
// and spaced, so a burst of submits costs one pass, and ingest (same event loop) is never held
// for long: one pass places at most policy.maxPlacements workloads.
//
// A singleton loop (ha/lease.ts): passes, ticks and completion sweeps run only while this
// replica leads, under the lease's fence (ha/fence.ts). A replica that gains the lease reloads
// the queue and the holders from the database, and while it leads re-reads the pending
// workloads every RESYNC_MS: another replica's REST submit is learnt there.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { NewClaim, ClaimsService } from '../claims/service.js';
import type { CommandBus, NewCommand } from '../commands/bus.js';
import { SCHEDULER_ACTOR } from '../commands/operations.js';
import type { Db } from '../db/client.js';
import { customerQuotas, liveHolders, pendingWorkloads, type LiveHolderRow, type WorkloadRow } from '../db/workload-store.js';
import type { ControlPlaneEvents, EventStream } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { WorkloadService } from '../workloads/service.js';
import { planPass, type ClusterView, type HolderView, type Placement, type Policy } from './placement.js';
import { WorkloadQueue, type QueuedWorkload } from './queue.js';
import { holdsGpus, type WorkloadType } from './workload-state.js';
import { ALWAYS_LEADING, type Leadership } from '../ha/lease.js';

export interface SchedulerDeps {
  /** reads only: the queue and holders at start and at each resync */
  db: Db;
  registry: Registry;
  bus: CommandBus;
  events: EventStream;
  /** carries out every workload transition the scheduler decides */
  workloads: WorkloadService;
  metrics: Metrics;
  log: Logger;
  policy: Policy;
  /** a site offline this long has its workloads requeued elsewhere */
  siteGraceMs: number;
  /** minimum spacing of passes */
  passIntervalMs: number;
  /** completion and site-loss checks */
  tickMs: number;
  /** the scheduler's ASIC headroom is a claim (claims/model.ts) */
  claims: ClaimsService;
  /** demand response the site is committed to right now, kW: it comes off the site's capacity */
  commitmentsKw?: (siteId: string) => number;
  now?: () => number;
  /** runs only while this replica leads; default: always */
  leader?: Pick<Leadership, 'leading' | 'fenced' | 'onChange'>;
}

/** a GPU whose allocate failed is left alone this long (a release that did not apply, a fault) */
const QUARANTINE_MS = 30_000;
/** how long a lowered ASIC counts at its new draw before telemetry is trusted again */
const POWER_OVERRIDE_MS = 30_000;
/** holders and quotas are reloaded from the database at least this often */
const RESYNC_MS = 10_000;
/** spacing of completion sweeps; a run's GPUs stay held at most this long past its duration_s */
const COMPLETE_MS = 200;
/** headroom claims are ids `sched.<allocate command id>.<target W | off>` */
const HEADROOM_PREFIX = 'sched.';
/** how long the ASICs have to reach their headroom before the placement is given up */
const HEADROOM_WAIT_MS = 35_000;

export function toQueued(r: WorkloadRow): QueuedWorkload {
  const req = (typeof r.requirements === 'string' ? JSON.parse(r.requirements) : r.requirements) as Record<string, unknown>;
  return {
    id: r.id, customerId: r.customer_id, type: r.workload_type as WorkloadType, priority: Number(r.priority), gpuType: r.gpu_type, gpuCount: Number(r.gpu_count),
    minMemoryMib: Number(req.min_gpu_memory_mib ?? 0), site: typeof req.site === 'string' ? req.site : null, seq: Number(r.seq), submittedAtMs: new Date(r.created_at).getTime(),
  };
}

function toHolder(r: LiveHolderRow): HolderView {
  return {
    id: r.id, customerId: r.customer_id, type: r.workload_type as WorkloadType, priority: Number(r.priority), state: r.state as 'running',
    startedAtMs: r.started_at ? new Date(r.started_at).getTime() : null, siteId: r.facility_id, gpuIds: r.gpu_ids,
  };
}

export async function createScheduler(d: SchedulerDeps) {
  // 0 kW means no budget (a site that registered itself); a demand-response commitment lowers a
  // real one, down to nothing left for new load
  const capacityW = (siteId: string, kw: number): number => (kw > 0 ? Math.max(1, (kw - (d.commitmentsKw?.(siteId) ?? 0)) * 1000) : 0);

  const now = d.now ?? Date.now;
  const log = d.log;
  const leader = d.leader ?? ALWAYS_LEADING;
  const queue = new WorkloadQueue();
  const quarantine = new Map<string, number>();
  const powerOverride = new Map<string, { w: number; untilMs: number }>();
  const m = {
    decisions: new Counter({ name: 'hcp_scheduler_decisions_total', help: 'Scheduler decisions, by kind (place, preempt, complete, cancel, requeue)', labelNames: ['kind'] as const, registers: [d.metrics.registry] }),
    pass: new Histogram({ name: 'hcp_scheduler_pass_seconds', help: 'Duration of one scheduling pass (plan and store)', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [d.metrics.registry] }),
    plan: new Histogram({ name: 'hcp_scheduler_plan_seconds', help: 'Time one pass spends deciding (pure placement, holds the event loop)', buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1], registers: [d.metrics.registry] }),
    queued: new Gauge({ name: 'hcp_scheduler_queue_depth', help: 'Workloads waiting for GPUs', registers: [d.metrics.registry], collect() { this.set(queue.size); } }),
  };
  // what the database's live allocations say, kept current between reloads (see top)
  const holders = new Map<string, HolderView>();
  /** the Allocate that carries each holder placed by this scheduler */
  const allocateOf = new Map<string, string>();
  /** workloads being reserved by the current pass: their move to scheduled is this scheduler's own */
  const placing = new Set<string>();
  let quotas = new Map<string, number | null>();
  let resyncAt = 0;
  let closed = false;
  let dirty = true;
  let running: Promise<void> | null = null;
  let lastPassAt = 0;
  let passTimer: NodeJS.Timeout | null = null;

  // What the workload service did: a workload back in the queue, one placed by an operator (learnt
  // at the next resync), one confirmed running, one that let its GPUs go.
  function onWorkloadChanged(e: ControlPlaneEvents['workload.changed']): void {
    const c = e.command;
    if (c?.payload.type === 'allocate' && (c.state === 'failed' || c.reasonCode === 'device_busy')) quarantineGpus(c.payload.deviceIds);
    if (e.to === 'pending') {
      if (e.from === 'preempted' && e.command) m.decisions.inc({ kind: 'requeue' }); // an eviction's release answered
      dropHolder(e.workloadId);
      if (e.row && !closed) queue.add(toQueued(e.row));
      else queue.remove(e.workloadId);
      poke();
    } else if (e.to === 'scheduled') {
      if (placing.has(e.workloadId)) return;
      queue.remove(e.workloadId);
      resyncAt = 0; // an operator's placement: learn it
    } else if (e.to === 'running') {
      const h = holders.get(e.workloadId);
      if (h && c && allocateOf.get(e.workloadId) === c.id) holders.set(h.id, { ...h, state: 'running', startedAtMs: c.finishedAtMs ?? now() });
      else resyncAt = 0;
    } else if (!holdsGpus(e.to)) {
      if (e.to === 'cancelled' && !e.command) m.decisions.inc({ kind: 'cancel' });
      queue.remove(e.workloadId);
      dropHolder(e.workloadId);
      poke();
    }
  }
  const quarantineGpus = (ids: string[]) => {
    const until = now() + QUARANTINE_MS;
    for (const g of ids) quarantine.set(g, until);
  };
  const unsubscribe = [
    d.events.on('workload.changed', onWorkloadChanged),
    // a GPU whose allocate failed is left alone for a while, whether or not the answer moved its
    // workload (a late one does not); freed GPUs are a chance to place
    d.events.on('command.changed', ({ record: r }) => {
      const p = r.payload;
      if (p.type !== 'allocate' && p.type !== 'release') return;
      if (r.state === 'pending' || r.state === 'sent' || r.state === 'acked') return;
      if (p.type === 'allocate' && (r.state === 'failed' || r.reasonCode === 'device_busy')) quarantineGpus(p.deviceIds);
      poke();
    }),
  ];

  // Start: what was pending is queued again (the service requeued interrupted preemptions).
  for (const r of await pendingWorkloads(d.db)) queue.add(toQueued(r));
  await resync();
  log.info({ queued: queue.size }, 'scheduler started');

  async function resync(): Promise<void> {
    const [rows, q] = await Promise.all([liveHolders(d.db), customerQuotas(d.db)]);
    holders.clear();
    for (const r of rows) holders.set(r.id, toHolder(r));
    quotas = q;
    resyncAt = performance.now() + RESYNC_MS;
  }

  function dropHolder(id: string): void {
    holders.delete(id);
    allocateOf.delete(id);
  }

  function view(nowMs: number, holders: HolderView[]): ClusterView {
    const holderOf = new Map<string, string>();
    for (const h of holders) for (const g of h.gpuIds) holderOf.set(g, h.id);
    const idle = d.policy.idleGpuPowerW;
    return {
      sites: d.registry.sites().map((s) => ({ id: s.id, online: s.online, capacityW: capacityW(s.id, s.powerCapacityKw) })),
      gpus: d.registry.devices({ kind: 'gpu' }).map((g) => {
        const q = quarantine.get(g.id);
        if (q !== undefined && q <= nowMs) quarantine.delete(g.id);
        const holder = holderOf.get(g.id) ?? null;
        const sampled = g.gpu?.powerW ?? idle;
        return {
          id: g.id, siteId: g.siteId, model: g.model, memoryMib: g.memoryTotalMib ?? 0, ratedPowerW: g.ratedPowerW,
          healthy: g.online && (g.gpu?.xidErrors ?? 0) === 0 && !(q !== undefined && q > nowMs),
          powerW: holder ? Math.max(sampled, g.ratedPowerW) : sampled, holder,
        };
      }),
      asics: d.registry.devices({ kind: 'asic' }).map((a) => {
        const o = powerOverride.get(a.id);
        if (o && o.untilMs <= nowMs) powerOverride.delete(a.id);
        const sampled = a.online ? a.asic?.powerW ?? 0 : 0;
        return { id: a.id, siteId: a.siteId, ratedPowerW: a.ratedPowerW, powerW: o && o.untilMs > nowMs ? Math.min(o.w, sampled || o.w) : sampled };
      }),
      holders,
      quotas,
    };
  }

  async function pass(): Promise<void> {
    if (queue.size === 0) return;
    const t0 = performance.now();
    if (performance.now() >= resyncAt) await resync();
    const nowMs = now();
    const p0 = performance.now();
    const placements = planPass(view(nowMs, [...holders.values()]), queue.ordered(nowMs, d.policy.agingMs), d.policy, nowMs);
    m.plan.observe((performance.now() - p0) / 1000);
    const commands: NewCommand[] = [];
    // Evictions first, then every reservation of the pass, each in one transaction, then the
    // commands in one submit, in that order.
    try {
      await evict(placements, commands);
    } catch (err) {
      log.error({ err }, 'eviction failed');
    }
    for (const p of placements) placing.add(p.workload.id);
    const { allocates, busy } = await d.workloads.reserve(placements.map((p) => ({
      workloadId: p.workload.id, siteId: p.siteId, gpuIds: p.gpuIds,
      reason: p.preempt.length ? `placed by preempting ${p.preempt.join(', ')}` : 'placed',
    }))).finally(() => placing.clear());
    if (busy.size) {
      dirty = true;
      resyncAt = 0; // a GPU memory thought free was taken
    }
    for (const p of placements) {
      const cmd = allocates.get(p.workload.id);
      if (!cmd) {
        if (!busy.has(p.workload.id)) queue.remove(p.workload.id); // cancelled or placed by an operator meanwhile
        continue;
      }
      queue.remove(p.workload.id);
      const w = p.workload;
      holders.set(w.id, { id: w.id, customerId: w.customerId, type: w.type, priority: w.priority, state: 'scheduled', startedAtMs: null, siteId: p.siteId, gpuIds: p.gpuIds });
      allocateOf.set(w.id, cmd.id);
      m.decisions.inc({ kind: 'place' });
      try {
        await allocate(p, cmd, commands);
      } catch (err) {
        log.error({ err, workload: p.workload.id }, 'placement failed');
      }
    }
    if (commands.length) await d.bus.submit(commands);
    if (placements.length === d.policy.maxPlacements) dirty = true;
    m.pass.observe((performance.now() - t0) / 1000);
  }

  async function evict(placements: Placement[], commands: NewCommand[]): Promise<void> {
    const by = new Map<string, Placement>();
    for (const p of placements) for (const v of p.preempt) by.set(v, p);
    if (by.size === 0) return;
    const { releases, evicted } = await d.workloads.evict([...by].map(([v, p]) => ({
      workloadId: v, siteId: p.siteId, heldGpuIds: holders.get(v)?.gpuIds ?? [], by: { workloadId: p.workload.id, type: p.workload.type, priority: p.workload.priority },
    })));
    // the moved ones were dropped when the service said so; one that ended meanwhile has its GPUs free anyway
    for (const v of by.keys()) dropHolder(v);
    for (let i = 0; i < evicted.size; i++) m.decisions.inc({ kind: 'preempt' });
    commands.push(...releases);
  }

  async function allocate(p: Placement, allocate: NewCommand, commands: NewCommand[]): Promise<void> {
    const w = p.workload;
    const allocateId = allocate.id;
    if (!p.power || (p.power.lower.length === 0 && p.power.off.length === 0)) {
      commands.push(allocate);
      return;
    }
    // Headroom first: scheduler claims lower (or switch off) the ASICs, and the Allocate goes
    // only once telemetry shows them there (the site's reconciler sends the commands). The
    // claims last as long as the run holds the GPUs (releaseFinishedHeadroom).
    const until = now() + POWER_OVERRIDE_MS;
    const byTarget = new Map<number, string[]>();
    for (const l of p.power.lower) byTarget.set(l.targetW, [...(byTarget.get(l.targetW) ?? []), l.id]);
    const reason = `GPU headroom for ${w.id} (${w.type}, ${w.gpuCount} GPUs)`;
    const wanted: NewClaim[] = [];
    for (const [targetW, ids] of byTarget) {
      wanted.push({ id: `${HEADROOM_PREFIX}${allocateId}.${targetW}`, siteId: p.siteId, source: 'scheduler', deviceIds: ids, want: { kind: 'mining', enabled: true, powerTargetW: targetW }, reason, actor: SCHEDULER_ACTOR, expiresAtMs: null });
      for (const id of ids) powerOverride.set(id, { w: targetW, untilMs: until });
    }
    if (p.power.off.length) {
      wanted.push({ id: `${HEADROOM_PREFIX}${allocateId}.off`, siteId: p.siteId, source: 'scheduler', deviceIds: p.power.off, want: { kind: 'mining', enabled: false, powerTargetW: null }, reason, actor: SCHEDULER_ACTOR, expiresAtMs: null });
      for (const id of p.power.off) powerOverride.set(id, { w: 0, untilMs: until });
    }
    log.info({ workload: w.id, site: p.siteId, lower: p.power.lower.length, off: p.power.off.length, saves_w: p.power.savesW }, 'lowering ASICs for GPU headroom');
    // Evictions already queued go out first; the allocate follows once the ASICs are there.
    if (commands.length) await d.bus.submit(commands.splice(0));
    const made = await d.claims.setMany(wanted);
    void Promise.all(made.map((c) => d.claims.waitConverged(c.id, HEADROOM_WAIT_MS))).then(async (done) => {
      if (closed) return;
      if (done.every(Boolean)) {
        await d.bus.submit([allocate]);
        return;
      }
      for (const id of p.power!.lower.map((l) => l.id).concat(p.power!.off)) powerOverride.delete(id);
      for (const c of made) await d.claims.release(c.id, SCHEDULER_ACTOR, 'ASIC headroom was not confirmed');
      // back to the queue (the service says so, and the queue hears it)
      await d.workloads.placementAbandoned(w.id, allocateId, 'ASIC headroom was not confirmed');
    }).catch((err) => log.error({ err, workload: w.id }, 'headroom follow-up failed'));
  }

  /**
   * Headroom claims whose run no longer holds its GPUs (completed, cancelled, evicted, requeued,
   * failed) end, and the ASICs go back to what the claims below want. Found by the Allocate id
   * the claim carries, in the database, so it holds across a restart.
   */
  async function releaseFinishedHeadroom(): Promise<void> {
    const mine = d.claims.list().filter((c) => c.source === 'scheduler' && c.id.startsWith(HEADROOM_PREFIX));
    if (!mine.length) return;
    const allocateOf = (c: { id: string }) => c.id.slice(HEADROOM_PREFIX.length, c.id.lastIndexOf('.'));
    const live = await d.workloads.liveAllocateIds([...new Set(mine.map(allocateOf))]);
    for (const c of mine) {
      if (!live.has(allocateOf(c))) await d.claims.release(c.id, SCHEDULER_ACTOR, 'the run that needed the headroom ended');
    }
  }

  /** every run whose duration_s elapsed, completed by the service */
  async function completeDue(): Promise<void> {
    const done = await d.workloads.completeDue();
    for (let i = 0; i < done.length; i++) m.decisions.inc({ kind: 'complete' });
  }

  /** the pending workloads of the table join the queue (another replica's submits, a new term) */
  let requeuedAt = performance.now();
  async function reloadQueue(): Promise<void> {
    requeuedAt = performance.now();
    for (const r of await pendingWorkloads(d.db)) if (!queue.has(r.id) && !placing.has(r.id)) queue.add(toQueued(r));
    resyncAt = 0;
    poke();
  }

  async function tick(): Promise<void> {
    if (performance.now() - requeuedAt >= RESYNC_MS) await reloadQueue();
    const nowMs = now();
    for (const s of d.registry.sites()) {
      if (s.online || (s.lastSeenMs !== null && nowMs - s.lastSeenMs < d.siteGraceMs)) continue;
      const requeued = await d.workloads.siteLost(s.id, `site ${s.id} offline for more than ${Math.round(d.siteGraceMs / 1000)} s`);
      for (let i = 0; i < requeued.length; i++) m.decisions.inc({ kind: 'requeue' });
    }
    await releaseFinishedHeadroom().catch((err) => log.error({ err }, 'could not release finished headroom claims'));
    if (dirty) poke();
  }

  function poke(): void {
    dirty = true;
    if (closed || running || passTimer) return;
    const wait = Math.max(0, lastPassAt + d.passIntervalMs - performance.now());
    passTimer = setTimeout(runPasses, wait);
  }

  function runPasses(): void {
    passTimer = null;
    if (closed || running || !leader.leading()) return;
    running = leader.fenced(async () => {
      while (dirty && !closed && leader.leading()) {
        dirty = false;
        lastPassAt = performance.now();
        try {
          await pass();
        } catch (err) {
          log.error({ err }, 'scheduling pass failed');
        }
        if (dirty) await new Promise((r) => setTimeout(r, d.passIntervalMs));
      }
    }).finally(() => {
      running = null;
    });
  }

  let ticking: Promise<void> | null = null;
  const tickTimer = setInterval(() => {
    if (ticking || closed || !leader.leading()) return;
    ticking = leader.fenced(tick).catch((err) => log.error({ err }, 'scheduler tick failed')).finally(() => {
      ticking = null;
    });
  }, d.tickMs);
  tickTimer.unref();
  let completing: Promise<void> | null = null;
  const completeTimer = setInterval(() => {
    if (completing || closed || !leader.leading()) return;
    completing = leader.fenced(completeDue).catch((err) => log.error({ err }, 'completion sweep failed')).finally(() => {
      completing = null;
    });
  }, Math.min(d.tickMs, COMPLETE_MS));
  completeTimer.unref();
  // Freed GPUs and returning sites are also chances to place; the registry sweep is the clock.
  const retry = setInterval(() => queue.size && poke(), Math.max(d.tickMs, 1000));
  retry.unref();
  const offLeader = leader.onChange((leading) => {
    if (leading && !closed) void leader.fenced(reloadQueue).catch((err) => log.error({ err }, 'could not reload the queue for a new term'));
  });
  poke();

  return {
    queueSize: () => queue.size,

    poke,

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const off of unsubscribe) off();
      offLeader();
      clearInterval(tickTimer);
      clearInterval(completeTimer);
      clearInterval(retry);
      if (passTimer) clearTimeout(passTimer);
      await running;
      await ticking;
      await completing;
      for (const name of ['hcp_scheduler_decisions_total', 'hcp_scheduler_pass_seconds', 'hcp_scheduler_plan_seconds', 'hcp_scheduler_queue_depth']) d.metrics.registry.removeSingleMetric(name);
    },
  };
}

export type Scheduler = Awaited<ReturnType<typeof createScheduler>>;
