// The scheduler's lifecycle: the I/O around the pure placement (placement.ts). It keeps the wait
// queue in memory (loaded from the database at start), runs a pass whenever something changed
// (a submit, freed GPUs, a site back), and carries out each placement through the command path:
// evicted work is released first, ASICs are lowered when the budget needs it, then Allocate is
// sent. A workload is `running` only when the agent confirms its Allocate (operations.onFinal).
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
// A timer completes runs whose duration_s elapsed (all that are due in one transaction, every
// COMPLETE_MS, since a GPU held past its run is capacity lost), and requeues the work of sites
// that stayed offline longer than the grace period. The passes are coalesced and spaced, so a burst of
// submits costs one pass, and ingest (same event loop) is never held for long: one pass places
// at most policy.maxPlacements workloads.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { NewClaim, ClaimsService } from '../claims/service.js';
import type { CommandBus, NewCommand } from '../commands/bus.js';
import type { CommandRecord } from '../commands/model.js';
import { DEFAULT_DEADLINE_S, SCHEDULER_ACTOR } from '../commands/operations.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import {
  customerQuotas, dueCompletions, getWorkload, liveAtSite, liveHolders, pendingWorkloads, reserveMany, transitionMany, transitionWorkload,
  type LiveHolderRow, type Transitioned, type WorkloadRow,
} from '../db/workload-store.js';
import { HcpError, notFound } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { planPass, type ClusterView, type HolderView, type Placement, type Policy } from './placement.js';
import { WorkloadQueue, type QueuedWorkload } from './queue.js';
import { isFinished, type WorkloadState, type WorkloadType } from './workload-state.js';

export interface SchedulerDeps {
  db: Db;
  registry: Registry;
  bus: () => CommandBus;
  metrics: Metrics;
  audit: AuditWriter;
  log: Logger;
  policy: Policy;
  /** a site offline this long has its workloads requeued elsewhere */
  siteGraceMs: number;
  /** a workload whose allocate failed this many times is failed */
  maxAllocateAttempts: number;
  /** minimum spacing of passes */
  passIntervalMs: number;
  /** completion and site-loss checks */
  tickMs: number;
  /** orchestrator_active_workloads: moved by a transition that happened, or counted again without one */
  refreshActive: (change?: { from: WorkloadState | undefined; to: WorkloadState }) => Promise<void>;
  /** the scheduler's ASIC headroom is a claim (claims/model.ts) */
  claims: ClaimsService;
  /** demand response the site is committed to right now, kW: it comes off the site's capacity */
  commitmentsKw?: (siteId: string) => number;
  now?: () => number;
}

/** a GPU whose allocate failed is left alone this long (a release that did not apply, a fault) */
const QUARANTINE_MS = 30_000;
/** how long a lowered ASIC counts at its new draw before telemetry is trusted again */
const POWER_OVERRIDE_MS = 30_000;
/** holders and quotas are reloaded from the database at least this often */
const RESYNC_MS = 10_000;
/** spacing of completion sweeps; a run's GPUs stay held at most this long past its duration_s */
const COMPLETE_MS = 200;
/** the running count is checked against the database this often */
const RECOUNT_MS = 60_000;
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
  /** evicted workloads whose Release is not answered yet: requeued when it is */
  const evicting = new Set<string>();
  let quotas = new Map<string, number | null>();
  let resyncAt = 0;
  let recountAt = performance.now() + RECOUNT_MS;
  let closed = false;
  let dirty = true;
  let running: Promise<void> | null = null;
  let lastPassAt = 0;
  let passTimer: NodeJS.Timeout | null = null;

  // Start: what was pending is queued again; a preemption whose release was never answered
  // (control plane stopped) is requeued.
  for (const r of await pendingWorkloads(d.db)) queue.add(toQueued(r));
  for (const r of await d.db.query<{ id: string }>(`SELECT id FROM workloads WHERE state = 'preempted'`)) await requeue(r.id, 'control plane restarted during preemption');
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

  async function requeue(id: string, reason: string): Promise<void> {
    const t = await transitionWorkload(d.db, id, ['preempted'], 'pending', reason);
    if (!t) return;
    const w = await getWorkload(d.db, id);
    if (w?.state === 'pending') {
      queue.add(toQueued(w));
      m.decisions.inc({ kind: 'requeue' });
    }
    poke();
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
    const ids = new Map(placements.map((p) => [p.workload.id, `cmd-${randomUUID()}`]));
    const { reserved, busy } = await reserveMany(d.db, placements.map((p) => ({
      workloadId: p.workload.id, siteId: p.siteId, deviceIds: p.gpuIds, commandId: ids.get(p.workload.id)!,
      reason: p.preempt.length ? `placed by preempting ${p.preempt.join(', ')}` : 'placed',
    })));
    if (busy.size) {
      dirty = true;
      resyncAt = 0; // a GPU memory thought free was taken
    }
    for (const p of placements) {
      if (!reserved.has(p.workload.id)) {
        if (!busy.has(p.workload.id)) queue.remove(p.workload.id); // cancelled or placed by an operator meanwhile
        continue;
      }
      queue.remove(p.workload.id);
      const w = p.workload;
      holders.set(w.id, { id: w.id, customerId: w.customerId, type: w.type, priority: w.priority, state: 'scheduled', startedAtMs: null, siteId: p.siteId, gpuIds: p.gpuIds });
      allocateOf.set(w.id, ids.get(w.id)!);
      m.decisions.inc({ kind: 'place' });
      try {
        await allocate(p, ids.get(p.workload.id)!, commands);
      } catch (err) {
        log.error({ err, workload: p.workload.id }, 'placement failed');
      }
    }
    if (commands.length) await d.bus().submit(commands);
    if (placements.length === d.policy.maxPlacements) dirty = true;
    m.pass.observe((performance.now() - t0) / 1000);
  }

  async function evict(placements: Placement[], commands: NewCommand[]): Promise<void> {
    const by = new Map<string, Placement>();
    for (const p of placements) for (const v of p.preempt) by.set(v, p);
    if (by.size === 0) return;
    const dl = now() + DEFAULT_DEADLINE_S.release * 1000;
    const moved = await transitionMany(d.db, [...by].map(([v, { workload: w }]) => ({ id: v, reason: `preempted by ${w.id} (${w.type}, priority ${w.priority})` })), 'running', 'preempted', { releaseAllocations: true });
    for (const [v, p] of by) {
      const t = moved.get(v);
      const gpus = t?.released.map((r) => r.resource_id) ?? [];
      const held = holders.get(v)?.gpuIds ?? [];
      dropHolder(v);
      if (!t) continue; // it ended meanwhile; its GPUs are free anyway
      evicting.add(v);
      await d.refreshActive({ from: t.from, to: 'preempted' });
      m.decisions.inc({ kind: 'preempt' });
      d.audit.write({ actor: SCHEDULER_ACTOR, action: 'workload.preempted', subject: v, details: { by: p.workload.id, site: p.siteId } });
      commands.push(releaseCommand(v, p.siteId, gpus.length ? gpus : held, dl));
    }
  }

  async function allocate(p: Placement, allocateId: string, commands: NewCommand[]): Promise<void> {
    const w = p.workload;
    const allocate: NewCommand = {
      id: allocateId, siteId: p.siteId, actor: SCHEDULER_ACTOR, workloadId: w.id, deadlineMs: now() + DEFAULT_DEADLINE_S.allocate * 1000,
      payload: { type: 'allocate', workloadId: w.id, deviceIds: p.gpuIds },
    };
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
    if (commands.length) await d.bus().submit(commands.splice(0));
    const made = await d.claims.setMany(wanted);
    void Promise.all(made.map((c) => d.claims.waitConverged(c.id, HEADROOM_WAIT_MS))).then(async (done) => {
      if (closed) return;
      if (done.every(Boolean)) {
        await d.bus().submit([allocate]);
        return;
      }
      for (const id of p.power!.lower.map((l) => l.id).concat(p.power!.off)) powerOverride.delete(id);
      for (const c of made) await d.claims.release(c.id, SCHEDULER_ACTOR, 'ASIC headroom was not confirmed');
      const t = await transitionWorkload(d.db, w.id, ['scheduled'], 'pending', 'ASIC headroom was not confirmed', { releaseAllocations: true, allocateCommandId: allocateId });
      if (t) {
        dropHolder(w.id);
        await enqueueIfPending(w.id);
      }
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
    const allocateIds = [...new Set(mine.map((c) => c.id.slice(HEADROOM_PREFIX.length, c.id.lastIndexOf('.'))))];
    const live = new Set((await d.db.query<{ allocate_command_id: string }>(
      `SELECT allocate_command_id FROM workloads WHERE allocate_command_id = ANY($1::text[]) AND state IN ('scheduled', 'running')`, [allocateIds],
    )).map((r) => r.allocate_command_id));
    for (const c of mine) {
      const allocateId = c.id.slice(HEADROOM_PREFIX.length, c.id.lastIndexOf('.'));
      if (!live.has(allocateId)) await d.claims.release(c.id, SCHEDULER_ACTOR, 'the run that needed the headroom ended');
    }
  }

  const releaseCommand = (workloadId: string, siteId: string, deviceIds: string[], deadlineMs: number): NewCommand => ({
    id: `cmd-${randomUUID()}`, siteId, actor: SCHEDULER_ACTOR, workloadId, deadlineMs, payload: { type: 'release', workloadId, deviceIds },
  });

  async function enqueueIfPending(id: string): Promise<void> {
    const w = await getWorkload(d.db, id);
    if (w?.state !== 'pending') return;
    if (w.allocate_attempts >= d.maxAllocateAttempts) {
      if (await transitionWorkload(d.db, id, ['pending'], 'failed', `allocate failed ${w.allocate_attempts} times`)) queue.remove(id);
      return;
    }
    queue.add(toQueued(w));
    poke();
  }

  /** releases a finished or evicted run's GPUs on its site */
  function releasesFor(id: string, t: Pick<Transitioned, 'released'>): NewCommand[] {
    const bySite = new Map<string, string[]>();
    for (const r of t.released) bySite.set(r.facility_id, [...(bySite.get(r.facility_id) ?? []), r.resource_id]);
    const dl = now() + DEFAULT_DEADLINE_S.release * 1000;
    return [...bySite].map(([site, ids]) => releaseCommand(id, site, ids, dl));
  }

  async function releaseAfter(id: string, t: Pick<Transitioned, 'released'>): Promise<void> {
    const cmds = releasesFor(id, t);
    if (cmds.length) await d.bus().submit(cmds);
  }

  /** every run whose duration_s elapsed: completed in one transaction, released in one submit */
  async function completeDue(): Promise<void> {
    const due = await dueCompletions(d.db);
    if (due.length === 0) return;
    const done = await transitionMany(d.db, due.map((id) => ({ id, reason: 'duration elapsed' })), 'running', 'completed', { releaseAllocations: true });
    const cmds: NewCommand[] = [];
    for (const [id, t] of done) {
      dropHolder(id);
      m.decisions.inc({ kind: 'complete' });
      await d.refreshActive({ from: t.from, to: 'completed' });
      cmds.push(...releasesFor(id, t));
    }
    if (cmds.length) await d.bus().submit(cmds);
    if (done.size) poke();
  }

  async function tick(): Promise<void> {
    const nowMs = now();
    for (const s of d.registry.sites()) {
      if (s.online || (s.lastSeenMs !== null && nowMs - s.lastSeenMs < d.siteGraceMs)) continue;
      for (const w of await liveAtSite(d.db, s.id)) {
        const reason = `site ${s.id} offline for more than ${Math.round(d.siteGraceMs / 1000)} s`;
        let t = await transitionWorkload(d.db, w.id, ['running'], 'preempted', reason, { releaseAllocations: true });
        if (t) await transitionWorkload(d.db, w.id, ['preempted'], 'pending', `requeued: ${reason}`);
        else t = await transitionWorkload(d.db, w.id, ['scheduled'], 'pending', `requeued: ${reason}`, { releaseAllocations: true });
        if (!t) continue;
        dropHolder(w.id);
        await d.refreshActive({ from: t.from, to: 'pending' });
        log.warn({ workload: w.id, site: s.id }, 'requeued from an offline site');
        m.decisions.inc({ kind: 'requeue' });
        // held for the site: when it returns its GPUs are freed before anything new lands there
        await releaseAfter(w.id, t);
        await enqueueIfPending(w.id);
      }
    }
    await releaseFinishedHeadroom().catch((err) => log.error({ err }, 'could not release finished headroom claims'));
    if (dirty) poke();
    if (performance.now() >= recountAt) {
      recountAt = performance.now() + RECOUNT_MS;
      await d.refreshActive();
    }
  }

  function poke(): void {
    dirty = true;
    if (closed || running || passTimer) return;
    const wait = Math.max(0, lastPassAt + d.passIntervalMs - performance.now());
    passTimer = setTimeout(runPasses, wait);
  }

  function runPasses(): void {
    passTimer = null;
    if (closed || running) return;
    running = (async () => {
      while (dirty && !closed) {
        dirty = false;
        lastPassAt = performance.now();
        try {
          await pass();
        } catch (err) {
          log.error({ err }, 'scheduling pass failed');
        }
        if (dirty) await new Promise((r) => setTimeout(r, d.passIntervalMs));
      }
    })().finally(() => {
      running = null;
    });
  }

  let ticking: Promise<void> | null = null;
  const tickTimer = setInterval(() => {
    if (ticking || closed) return;
    ticking = tick().catch((err) => log.error({ err }, 'scheduler tick failed')).finally(() => {
      ticking = null;
    });
  }, d.tickMs);
  tickTimer.unref();
  let completing: Promise<void> | null = null;
  const completeTimer = setInterval(() => {
    if (completing || closed) return;
    completing = completeDue().catch((err) => log.error({ err }, 'completion sweep failed')).finally(() => {
      completing = null;
    });
  }, Math.min(d.tickMs, COMPLETE_MS));
  completeTimer.unref();
  // Freed GPUs and returning sites are also chances to place; the registry sweep is the clock.
  const retry = setInterval(() => queue.size && poke(), Math.max(d.tickMs, 1000));
  retry.unref();
  poke();

  return {
    queueSize: () => queue.size,

    /** a workload was stored as pending */
    submitted(row: WorkloadRow): void {
      if (row.state !== 'pending' || closed) return;
      queue.add(toQueued(row));
      poke();
    },

    /** POST /api/v1/workloads/:id/cancel */
    async cancel(id: string, actor: string): Promise<WorkloadRow> {
      const w = await getWorkload(d.db, id);
      if (!w) throw notFound('workload', id);
      const state = w.state as WorkloadState;
      if (isFinished(state)) throw new HcpError('conflict', `workload ${id} is already ${state}`, 'workload_finished', { state });
      const t = await transitionWorkload(d.db, id, [state], 'cancelled', `cancelled by ${actor}`, { releaseAllocations: true });
      if (!t) return this.cancel(id, actor); // it moved meanwhile: decide again on its new state
      queue.remove(id);
      dropHolder(id);
      evicting.delete(id);
      m.decisions.inc({ kind: 'cancel' });
      d.audit.write({ actor, action: 'workload.cancelled', subject: id, details: { from: t.from } });
      await releaseAfter(id, t);
      poke();
      await d.refreshActive({ from: t.from, to: 'cancelled' });
      return (await getWorkload(d.db, id))!;
    },

    /** after operations.onFinal: requeue what went back to pending, place on freed GPUs */
    async onCommandFinal(r: CommandRecord): Promise<void> {
      const p = r.payload;
      if (p.type === 'allocate') {
        const mine = allocateOf.get(p.workloadId) === r.id;
        if (r.state === 'succeeded') {
          const h = holders.get(p.workloadId);
          if (mine && h) holders.set(h.id, { ...h, state: 'running', startedAtMs: r.finishedAtMs ?? now() });
          else if (!mine && !r.actor.startsWith(SCHEDULER_ACTOR)) resyncAt = 0; // an operator's placement: learn it
        } else {
          if (mine) dropHolder(p.workloadId);
          const until = now() + QUARANTINE_MS;
          if (r.reasonCode === 'device_busy' || r.state === 'failed') for (const g of p.deviceIds) quarantine.set(g, until);
          await enqueueIfPending(p.workloadId);
        }
      } else if (p.type === 'release') {
        // Only an eviction's release requeues; a completion's or a cancel's moved the workload
        // already, and an operator's ended it (operations.onFinal).
        if (evicting.delete(p.workloadId)) await requeue(p.workloadId, `evicted; GPUs released (${r.state})`);
        else if (!r.actor.startsWith(SCHEDULER_ACTOR)) dropHolder(p.workloadId);
      }
      if (p.type === 'release' || p.type === 'allocate') poke();
    },

    poke,

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
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
