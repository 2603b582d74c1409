// The one owner of the workload lifecycle. Every move of workloads.state is made here, checked
// against the state machine (scheduler/workload-state.ts) before the store is asked, and said on
// the event stream as workload.changed once it is stored:
//   - submit (REST), cancel (REST), an operator's allocate and release (REST, gRPC Fleet);
//   - the scheduler's placements, evictions, completions (duration elapsed) and lost sites: the
//     scheduler plans (scheduler/placement.ts, pure) and asks this service to carry them out;
//   - the agents' answers to Allocate and Release (a follow-up the command bus awaits before the
//     command's waiters hear of it, so a caller of ?wait=true sees the workload moved).
//
// Every Allocate and Release this service issues says why in the command's details
// ({ workload: <purpose> }, stored with the command row), so the answer is followed up by what
// the command was for, also after a control-plane restart, never by who sent it.
//
// orchestrator_active_workloads is kept in memory: counted once at start, then moved by every
// transition into or out of running, which the database reports exactly once each (a count(*)
// per command result cost a round trip per result), and counted again every RECOUNT_MS.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { CommandBus, NewCommand } from '../commands/bus.js';
import type { CommandRecord } from '../commands/model.js';
import { DEFAULT_DEADLINE_S, deadlineFrom, SCHEDULER_ACTOR } from '../commands/operations.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import {
  AllocationConflict, allocationsOf, busyGpus, countRunning, dueCompletions, getWorkload, insertWorkloadChecked, liveAllocateIds, liveAtSite,
  preemptedWorkloads, reserveAllocation, reserveMany, transitionMany, transitionWorkload,
  type CheckedInsert, type NewWorkload, type TransitionOptions, type Transitioned, type WorkloadRow,
} from '../db/workload-store.js';
import { HcpError, notFound } from '../errors.js';
import type { EventStream } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { DeviceState as RegDevice, Registry } from '../registry/registry.js';
import { assertTransition, isFinished, type WorkloadState } from '../scheduler/workload-state.js';

/** what a workload command was issued for; stored in its details as { workload: purpose } */
export const WORKLOAD_PURPOSES = ['placement', 'operator_allocate', 'eviction', 'completion', 'cancel', 'lost_site', 'operator_release'] as const;
export type WorkloadPurpose = (typeof WORKLOAD_PURPOSES)[number];

/** the purpose a command's details name, or null (a command stored before purposes were kept) */
export function purposeOf(r: Pick<CommandRecord, 'details'>): WorkloadPurpose | null {
  const p = r.details?.workload;
  return typeof p === 'string' && (WORKLOAD_PURPOSES as readonly string[]).includes(p) ? (p as WorkloadPurpose) : null;
}

export interface WorkloadServiceDeps {
  db: Db;
  registry: Registry;
  bus: CommandBus;
  events: EventStream;
  metrics: Metrics;
  audit: AuditWriter;
  log: Logger;
  /** a workload whose allocate failed this many times is failed */
  maxAllocateAttempts: number;
  now?: () => number;
}

/** the running count is checked against the database this often */
const RECOUNT_MS = 60_000;

const field = (name: string, message: string) =>
  new HcpError('invalid_argument', `${name}: ${message}`, 'validation_failed', { fields: [{ field: name, message }] });

/** one placement the scheduler decided, to be reserved */
export interface PlacementOrder {
  workloadId: string;
  siteId: string;
  gpuIds: string[];
  reason: string;
}

/** a running workload the scheduler decided to evict for another */
export interface EvictionOrder {
  workloadId: string;
  /** the site of the placement that needs its GPUs */
  siteId: string;
  /** the GPUs the scheduler believes it holds (released when the store says none) */
  heldGpuIds: string[];
  by: { workloadId: string; type: string; priority: number };
}

export async function createWorkloadService(d: WorkloadServiceDeps) {
  const now = d.now ?? Date.now;
  const log = d.log;

  let running = 0;
  let changes = 0;
  function noteActive(from: WorkloadState | null, to: WorkloadState): void {
    if (from === null || from === to) return;
    if (to === 'running') running++;
    else if (from === 'running') running = Math.max(0, running - 1);
    else return;
    changes++;
    d.metrics.activeWorkloads.set(running);
  }
  /** counts in the database; a count whose query overlapped a transition is dropped (it may predate it) */
  async function recount(): Promise<void> {
    const seen = changes;
    const n = await countRunning(d.db);
    if (seen !== changes) return;
    running = n;
    d.metrics.activeWorkloads.set(running);
  }

  function say(e: { workloadId: string; from: WorkloadState | null; to: WorkloadState; siteId: string | null; reason: string; row?: WorkloadRow; command?: CommandRecord }): void {
    noteActive(e.from, e.to);
    d.events.emit('workload.changed', e);
  }

  /**
   * One checked move. Null when the workload was no longer in one of `from` (someone moved it
   * first). A move back to pending reads the row (the queue needs it); one whose allocate has
   * failed too often goes on to failed instead of back to the queue.
   */
  async function move(id: string, from: WorkloadState[], to: WorkloadState, reason: string, opts: TransitionOptions = {}, command?: CommandRecord): Promise<Transitioned | null> {
    for (const f of from) assertTransition(f, to);
    const t = await transitionWorkload(d.db, id, from, to, reason, opts);
    if (!t) return null;
    if (to !== 'pending') {
      say({ workloadId: id, from: t.from, to, siteId: t.siteId, reason, command });
      return t;
    }
    const row = (await getWorkload(d.db, id)) ?? undefined;
    const spent = row && row.state === 'pending' && row.allocate_attempts >= d.maxAllocateAttempts;
    say({ workloadId: id, from: t.from, to, siteId: t.siteId, reason, command, ...(row && !spent ? { row } : {}) });
    if (spent) await move(id, ['pending'], 'failed', `allocate failed ${row.allocate_attempts} times`);
    return t;
  }

  /** many workloads leaving one state, in one transaction */
  async function moveMany(items: Array<{ id: string; reason: string; allocateCommandId?: string; command?: CommandRecord }>, from: WorkloadState, to: Exclude<WorkloadState, 'pending'>, opts: { releaseAllocations?: boolean } = {}): Promise<Map<string, Transitioned>> {
    assertTransition(from, to);
    const moved = await transitionMany(d.db, items, from, to, opts);
    const by = new Map(items.map((i) => [i.id, i]));
    for (const [id, t] of moved) say({ workloadId: id, from: t.from, to, siteId: t.siteId, reason: by.get(id)!.reason, command: by.get(id)!.command });
    return moved;
  }

  const releaseCommand = (workloadId: string, siteId: string, deviceIds: string[], deadlineMs: number, purpose: WorkloadPurpose, actor = SCHEDULER_ACTOR): NewCommand => ({
    id: `cmd-${randomUUID()}`, siteId, actor, workloadId, deadlineMs, payload: { type: 'release', workloadId, deviceIds }, details: { workload: purpose },
  });

  /** Releases for the GPUs a transition let go of, one per site */
  function releasesFor(id: string, t: Pick<Transitioned, 'released'>, purpose: WorkloadPurpose): NewCommand[] {
    const bySite = new Map<string, string[]>();
    for (const r of t.released) bySite.set(r.facility_id, [...(bySite.get(r.facility_id) ?? []), r.resource_id]);
    const dl = now() + DEFAULT_DEADLINE_S.release * 1000;
    return [...bySite].map(([site, ids]) => releaseCommand(id, site, ids, dl, purpose));
  }

  async function submitReleases(cmds: NewCommand[]): Promise<void> {
    if (cmds.length) await d.bus.submit(cmds);
  }

  // ---- agents' answers ----------------------------------------------------------------------

  /** the results of one batch: confirmed Allocates in one transaction, the rare rest one by one */
  async function applyFinals(rs: CommandRecord[]): Promise<void> {
    const confirmed: CommandRecord[] = [];
    for (const r of rs) {
      const p = r.payload;
      if (p.type !== 'allocate' && p.type !== 'release') continue;
      d.metrics.allocations.inc({ type: p.type, status: r.state });
      if (r.state === 'succeeded') d.metrics.allocationDuration.observe({ type: p.type }, ((r.finishedAtMs ?? now()) - r.createdAtMs) / 1000);
      if (p.type === 'allocate' && r.state === 'succeeded') confirmed.push(r);
      else await settle(r).catch((err) => log.error({ err, command: r.id }, 'command follow-up failed'));
    }
    // Only the workload's current Allocate moves it: a late answer to an older placement
    // (requeued since, or cancelled) changes nothing.
    await moveMany(confirmed.map((r) => ({ id: (r.payload as { workloadId: string }).workloadId, reason: `allocate ${r.id} applied`, allocateCommandId: r.id, command: r })), 'scheduled', 'running');
  }

  async function settle(r: CommandRecord): Promise<void> {
    const p = r.payload;
    if (p.type === 'allocate') {
      // failed or expired: back to the queue, if this is still its Allocate
      await move(p.workloadId, ['scheduled'], 'pending', `allocate ${r.id} ${r.state}: ${r.reasonCode ?? ''}`, { allocateCommandId: r.id, releaseAllocations: true, countAttempt: true }, r);
      return;
    }
    if (p.type !== 'release') return;
    // A command stored before purposes were kept is taken for an operator's: the scheduler's own
    // releases moved their workload when it decided them, an operator's has not yet.
    const purpose = purposeOf(r) ?? 'operator_release';
    if (purpose === 'eviction') {
      // the evicted work runs again once its GPUs are free (or the release gave up)
      await move(p.workloadId, ['preempted'], 'pending', `evicted; GPUs released (${r.state})`, {}, r);
    } else if (purpose === 'operator_release' && r.state === 'succeeded') {
      // an operator's release ends the run
      const t = await move(p.workloadId, ['running'], 'completed', `release ${r.id} applied`, { releaseAllocations: true }, r);
      if (!t) await move(p.workloadId, ['scheduled'], 'cancelled', `release ${r.id} applied before the workload ran`, { releaseAllocations: true }, r);
    }
    // completion, cancel, lost site: the workload moved when that was decided
  }

  // Results that arrive together (one agent stream read, or while a batch is being stored) are
  // applied together; each caller still resolves only after its own result is stored, so the
  // bus tells waiters only once the workload has moved.
  let waiting: Array<{ r: CommandRecord; done: (err?: unknown) => void }> = [];
  let draining = false;
  async function drain(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    while (waiting.length) {
      const batch = waiting;
      waiting = [];
      const err = await applyFinals(batch.map((b) => b.r)).then(() => undefined, (e: unknown) => e ?? new Error('result batch failed'));
      for (const b of batch) b.done(err);
    }
    draining = false;
  }
  function onCommandFinal(r: CommandRecord): Promise<void> {
    if (r.payload.type !== 'allocate' && r.payload.type !== 'release') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      waiting.push({ r, done: (err) => (err ? reject(err) : resolve()) });
      if (!draining) {
        draining = true;
        void drain();
      }
    });
  }
  d.bus.beforeFinal(onCommandFinal);

  // ---- start --------------------------------------------------------------------------------

  // A preemption whose release was never answered (the control plane stopped) is requeued: its
  // GPUs were let go when it was decided, and the late release answer changes nothing.
  for (const id of await preemptedWorkloads(d.db)) await move(id, ['preempted'], 'pending', 'control plane restarted during preemption');
  await recount();
  let recounting: Promise<void> | null = null;
  const recountTimer = setInterval(() => {
    recounting ??= recount().catch((err) => log.error({ err }, 'running count failed')).finally(() => {
      recounting = null;
    });
  }, RECOUNT_MS);
  recountTimer.unref();

  /**
   * Idle, online GPUs of the type, all at one site: the site whose free GPUs fit most tightly
   * (best fit keeps whole sites free for large workloads).
   */
  async function pickGpus(gpuType: string, count: number): Promise<RegDevice[]> {
    const busy = await busyGpus(d.db, null);
    const type = gpuType.toLowerCase();
    const free = new Map<string, RegDevice[]>();
    for (const dev of d.registry.devices({ kind: 'gpu' })) {
      if (!dev.online || busy.has(dev.id) || dev.gpu?.workloadId) continue;
      if (!dev.model.toLowerCase().includes(type)) continue;
      free.set(dev.siteId, [...(free.get(dev.siteId) ?? []), dev]);
    }
    const fits = [...free.values()].filter((g) => g.length >= count).sort((a, b) => a.length - b.length || a[0]!.siteId.localeCompare(b[0]!.siteId));
    if (!fits.length) throw new HcpError('conflict', `no site has ${count} idle ${gpuType} GPUs online`, 'insufficient_capacity');
    return fits[0]!.slice(0, count);
  }

  return {
    /** a checked submit: stored as pending (the customer and its quota checked by the insert) */
    async submit(w: NewWorkload, actor: string): Promise<CheckedInsert> {
      const ins = await insertWorkloadChecked(d.db, w);
      if ('refused' in ins || !ins.created) return ins;
      d.audit.write({ actor, action: 'workload.submitted', subject: ins.row.id, details: { customer_id: w.customerId, type: w.workloadType, gpus: w.gpuCount, priority: w.priority } });
      say({ workloadId: ins.row.id, from: null, to: 'pending', siteId: null, reason: `submitted by ${actor}`, row: ins.row });
      return ins;
    },

    /** dequeued, or its GPUs released; refused when it already ended */
    async cancel(id: string, actor: string): Promise<WorkloadRow> {
      for (;;) {
        const w = await getWorkload(d.db, id);
        if (!w) throw notFound('workload', id);
        const state = w.state as WorkloadState;
        if (isFinished(state)) throw new HcpError('conflict', `workload ${id} is already ${state}`, 'workload_finished', { state });
        const t = await move(id, [state], 'cancelled', `cancelled by ${actor}`, { releaseAllocations: true });
        if (!t) continue; // it moved meanwhile: decide again on its new state
        d.audit.write({ actor, action: 'workload.cancelled', subject: id, details: { from: t.from } });
        await submitReleases(releasesFor(id, t, 'cancel'));
        return (await getWorkload(d.db, id))!;
      }
    },

    /** an operator's placement, outside the queue: the listed GPUs, or idle ones at one site */
    async allocate(req: { workloadId: string; deviceIds?: string[]; actor: string; deadlineS?: number }): Promise<CommandRecord[]> {
      const w = await getWorkload(d.db, req.workloadId);
      if (!w) throw notFound('workload', req.workloadId);
      if (w.state === 'scheduled' || w.state === 'running') throw new HcpError('conflict', `workload ${w.id} is already ${w.state}`, 'workload_running');
      if (w.state !== 'pending') throw new HcpError('conflict', `workload ${w.id} is ${w.state}`, w.state === 'preempted' ? 'workload_preempted' : 'workload_finished');

      let devices: RegDevice[];
      if (req.deviceIds?.length) {
        const ids = req.deviceIds;
        if (new Set(ids).size !== ids.length) throw field('device_ids', 'lists a GPU twice');
        devices = ids.map((id, i) => {
          const dev = d.registry.device(id);
          if (!dev) throw new HcpError('not_found', `device ${JSON.stringify(id)} not found`, 'unknown_device', { fields: [{ field: `device_ids.${i}`, message: 'unknown device' }] });
          if (dev.kind !== 'gpu') throw field(`device_ids.${i}`, `${id} is not a GPU`);
          return dev;
        });
        const sites = new Set(devices.map((x) => x.siteId));
        if (sites.size > 1) throw field('device_ids', 'a workload’s GPUs must all be at one site');
        const busy = await busyGpus(d.db, ids);
        for (const dev of devices) {
          const holder = busy.get(dev.id) ?? (dev.gpu?.workloadId || null);
          if (holder && holder !== w.id) throw new HcpError('conflict', `GPU ${dev.id} is busy with workload ${holder}`, 'device_busy', { device_id: dev.id });
          if (!dev.online) throw new HcpError('conflict', `GPU ${dev.id} is offline`, 'device_offline', { device_id: dev.id });
        }
      } else {
        devices = await pickGpus(w.gpu_type, w.gpu_count);
      }
      const dl = deadlineFrom(req.deadlineS, DEFAULT_DEADLINE_S.allocate);
      const siteId = devices[0]!.siteId;
      const ids = devices.map((x) => x.id);
      const commandId = `cmd-${randomUUID()}`;
      assertTransition('pending', 'scheduled');
      const reason = `allocate by ${req.actor}`;
      try {
        await reserveAllocation(d.db, w.id, siteId, ids, commandId, reason);
      } catch (err) {
        if (err instanceof AllocationConflict) {
          throw new HcpError('conflict', err.message, err.reason === 'device_busy' ? 'device_busy' : 'workload_running');
        }
        throw err;
      }
      say({ workloadId: w.id, from: 'pending', to: 'scheduled', siteId, reason });
      return d.bus.submit([{
        id: commandId, siteId, actor: req.actor, workloadId: w.id, deadlineMs: dl,
        payload: { type: 'allocate', workloadId: w.id, deviceIds: ids }, details: { workload: 'operator_allocate' },
      }]);
    },

    /** an operator frees a workload's GPUs; the run ends when the agent confirms */
    async release(req: { workloadId: string; actor: string; deadlineS?: number }): Promise<CommandRecord[]> {
      const w = await getWorkload(d.db, req.workloadId);
      if (!w) throw notFound('workload', req.workloadId);
      if (w.state !== 'running' && w.state !== 'scheduled') throw new HcpError('conflict', `workload ${w.id} is ${w.state}, not running`, 'workload_not_running');
      const live = (await allocationsOf(d.db, w.id)).filter((a) => a.released_at === null);
      const bySite = new Map<string, string[]>();
      for (const a of live) bySite.set(a.facility_id, [...(bySite.get(a.facility_id) ?? []), a.resource_id]);
      const dl = deadlineFrom(req.deadlineS, DEFAULT_DEADLINE_S.release);
      return d.bus.submit([...bySite].map(([siteId, deviceIds]) => releaseCommand(w.id, siteId, deviceIds, dl, 'operator_release', req.actor)));
    },

    /**
     * The scheduler's placements of one pass, reserved in one transaction: returns the Allocate
     * of each reserved workload (for the scheduler to send, after any headroom), and those
     * refused for a GPU taken meanwhile. The others were no longer pending.
     */
    async reserve(orders: PlacementOrder[]): Promise<{ allocates: Map<string, NewCommand>; busy: Set<string> }> {
      assertTransition('pending', 'scheduled');
      const ids = new Map(orders.map((o) => [o.workloadId, `cmd-${randomUUID()}`]));
      const { reserved, busy } = await reserveMany(d.db, orders.map((o) => ({ workloadId: o.workloadId, siteId: o.siteId, deviceIds: o.gpuIds, commandId: ids.get(o.workloadId)!, reason: o.reason })));
      const allocates = new Map<string, NewCommand>();
      const dl = now() + DEFAULT_DEADLINE_S.allocate * 1000;
      for (const o of orders) {
        if (!reserved.has(o.workloadId)) continue;
        say({ workloadId: o.workloadId, from: 'pending', to: 'scheduled', siteId: o.siteId, reason: o.reason });
        allocates.set(o.workloadId, {
          id: ids.get(o.workloadId)!, siteId: o.siteId, actor: SCHEDULER_ACTOR, workloadId: o.workloadId, deadlineMs: dl,
          payload: { type: 'allocate', workloadId: o.workloadId, deviceIds: o.gpuIds }, details: { workload: 'placement' },
        });
      }
      return { allocates, busy };
    },

    /**
     * Evictions: running → preempted, GPUs let go, in one transaction. Returns the Releases to
     * send (before the Allocate that needs the GPUs) and the workloads that moved; the work is
     * requeued when its Release is answered.
     */
    async evict(orders: EvictionOrder[]): Promise<{ releases: NewCommand[]; evicted: Set<string> }> {
      const by = new Map(orders.map((o) => [o.workloadId, o]));
      if (by.size === 0) return { releases: [], evicted: new Set() };
      const moved = await moveMany([...by.values()].map((o) => ({ id: o.workloadId, reason: `preempted by ${o.by.workloadId} (${o.by.type}, priority ${o.by.priority})` })), 'running', 'preempted', { releaseAllocations: true });
      const dl = now() + DEFAULT_DEADLINE_S.release * 1000;
      const releases: NewCommand[] = [];
      for (const [id, t] of moved) {
        const o = by.get(id)!;
        const gpus = t.released.map((r) => r.resource_id);
        d.audit.write({ actor: SCHEDULER_ACTOR, action: 'workload.preempted', subject: id, details: { by: o.by.workloadId, site: o.siteId } });
        releases.push(releaseCommand(id, o.siteId, gpus.length ? gpus : o.heldGpuIds, dl, 'eviction'));
      }
      return { releases, evicted: new Set(moved.keys()) };
    },

    /** the scheduler's ASIC headroom was not confirmed: the placement goes back to the queue */
    /** which of these Allocates placed runs that still hold their GPUs (the scheduler's headroom claims last that long) */
    liveAllocateIds: (ids: readonly string[]) => liveAllocateIds(d.db, ids),

    async placementAbandoned(workloadId: string, allocateCommandId: string, reason: string): Promise<boolean> {
      return (await move(workloadId, ['scheduled'], 'pending', reason, { releaseAllocations: true, allocateCommandId })) !== null;
    },

    /** every run whose duration_s elapsed: completed in one transaction, released in one submit; returns those completed */
    async completeDue(): Promise<string[]> {
      const due = await dueCompletions(d.db);
      if (due.length === 0) return [];
      const done = await moveMany(due.map((id) => ({ id, reason: 'duration elapsed' })), 'running', 'completed', { releaseAllocations: true });
      await submitReleases([...done].flatMap(([id, t]) => releasesFor(id, t, 'completion')));
      return [...done.keys()];
    },

    /**
     * A site offline past its grace: its workloads go back to the queue, and its GPUs are held
     * for it by Releases that wait for its agent (so they are freed before anything new lands
     * there). Returns those requeued.
     */
    async siteLost(siteId: string, reason: string): Promise<string[]> {
      const out: string[] = [];
      for (const w of await liveAtSite(d.db, siteId)) {
        let t = await move(w.id, ['running'], 'preempted', reason, { releaseAllocations: true });
        if (t) await move(w.id, ['preempted'], 'pending', `requeued: ${reason}`);
        else t = await move(w.id, ['scheduled'], 'pending', `requeued: ${reason}`, { releaseAllocations: true });
        if (!t) continue;
        log.warn({ workload: w.id, site: siteId }, 'requeued from an offline site');
        out.push(w.id);
        await submitReleases(releasesFor(w.id, t, 'lost_site'));
      }
      return out;
    },

    /** the running count, recounted from the database */
    recount,

    async close(): Promise<void> {
      clearInterval(recountTimer);
      await recounting;
      while (draining) await new Promise((r) => setImmediate(r));
    },
  };
}

export type WorkloadService = Awaited<ReturnType<typeof createWorkloadService>>;
