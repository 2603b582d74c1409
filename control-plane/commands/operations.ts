// What an operator, the scheduler or the engine may ask of the fleet. REST and gRPC both call
// these; every check that can refuse a request happens here, before anything is stored, and
// refuses it with a typed error naming the field.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { HcpError, notFound } from '../errors.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import {
  AllocationConflict, allocationsOf, busyGpus, countRunning, getWorkload, reserveAllocation, transitionMany, transitionWorkload,
} from '../db/workload-store.js';
import type { WorkloadState } from '../scheduler/workload-state.js';
import type { Metrics } from '../metrics.js';
import type { DeviceState as RegDevice, Registry } from '../registry/registry.js';
import type { CommandBus } from './bus.js';
import type { CommandRecord } from './model.js';

export interface OperationsDeps {
  db: Db;
  registry: Registry;
  bus: () => CommandBus;
  metrics: Metrics;
  audit: AuditWriter;
  log: Logger;
}

/** actor of the commands the scheduler issues */
export const SCHEDULER_ACTOR = 'scheduler';

export const DEFAULT_DEADLINE_S = { mining: 300, curtail: 300, allocate: 120, release: 120 };
// A deadline bounds how long a command may wait for a disconnected site.
const MAX_DEADLINE_S = 24 * 3600;
// The S21 family runs between 50 % and 110 % of stock power; the agent clamps into the model's
// window. This bound only refuses nonsense.
const MAX_POWER_TARGET_W = 10_000;

const field = (name: string, message: string, reason = 'validation_failed') =>
  new HcpError('invalid_argument', `${name}: ${message}`, reason, { fields: [{ field: name, message }] });

function deadline(s: number | undefined, dflt: number): number {
  const v = s ?? dflt;
  if (!Number.isInteger(v) || v < 1 || v > MAX_DEADLINE_S) throw field('deadline_s', `must be a whole number of seconds from 1 to ${MAX_DEADLINE_S}`);
  return Date.now() + v * 1000;
}

export function createOperations(d: OperationsDeps) {
  const site = (id: string) => {
    const s = d.registry.site(id);
    if (!s) throw notFound('site', id);
    return s;
  };

  // orchestrator_active_workloads is kept in memory: counted once at start (refreshActive), then
  // moved by every transition into or out of running (noteTransition), which the database
  // reports exactly once each. A count(*) per command result cost a round trip per result.
  // A count whose query overlapped a transition is dropped (it may predate it).
  let running = 0;
  let changes = 0;
  function noteTransition(from: WorkloadState | undefined, to: WorkloadState): void {
    if (from === undefined || from === to) return;
    if (to === 'running') running++;
    else if (from === 'running') running = Math.max(0, running - 1);
    else return;
    changes++;
    d.metrics.activeWorkloads.set(running);
  }
  /** with a transition that happened: moves the count; without: counts in the database */
  async function refreshActive(change?: { from: WorkloadState | undefined; to: WorkloadState }): Promise<void> {
    if (change) return noteTransition(change.from, change.to);
    const seen = changes;
    const n = await countRunning(d.db);
    if (seen !== changes) return;
    running = n;
    d.metrics.activeWorkloads.set(running);
  }

  async function settle(r: CommandRecord): Promise<void> {
    const p = r.payload;
    if (p.type === 'allocate') {
      const t = await transitionWorkload(d.db, p.workloadId, ['scheduled'], 'pending', `allocate ${r.id} ${r.state}: ${r.reasonCode ?? ''}`, { allocateCommandId: r.id, releaseAllocations: true, countAttempt: true });
      noteTransition(t?.from, 'pending');
    } else if (p.type === 'release') {
      const t = await transitionWorkload(d.db, p.workloadId, ['running'], 'completed', `release ${r.id} applied`, { releaseAllocations: true });
      if (t) return noteTransition(t.from, 'completed');
      await transitionWorkload(d.db, p.workloadId, ['scheduled'], 'cancelled', `release ${r.id} applied before the workload ran`, { releaseAllocations: true });
    }
  }

  /** the results of one batch: confirmed Allocates in one transaction, the rare rest one by one */
  async function applyFinals(rs: CommandRecord[]): Promise<void> {
    const confirmed: CommandRecord[] = [];
    for (const r of rs) {
      const p = r.payload;
      if (p.type !== 'allocate' && p.type !== 'release') continue;
      const status = r.state === 'succeeded' ? 'succeeded' : r.state;
      d.metrics.allocations.inc({ type: p.type, status });
      if (r.state === 'succeeded') d.metrics.allocationDuration.observe({ type: p.type }, ((r.finishedAtMs ?? Date.now()) - r.createdAtMs) / 1000);
      if (p.type === 'allocate' && r.state === 'succeeded') confirmed.push(r);
      // An operator's release ends the run. The scheduler's own releases (completion, cancel,
      // preemption, lost site) moved the workload when it decided them.
      else if (p.type === 'allocate' || (r.state === 'succeeded' && !r.actor.startsWith(SCHEDULER_ACTOR))) {
        await settle(r).catch((err) => d.log.error({ err, command: r.id }, 'command follow-up failed'));
      }
    }
    // Only the workload's current Allocate moves it: a late answer to an older placement
    // (requeued since, or cancelled) changes nothing.
    const moved = await transitionMany(d.db, confirmed.map((r) => ({ id: (r.payload as { workloadId: string }).workloadId, reason: `allocate ${r.id} applied`, allocateCommandId: r.id })), 'scheduled', 'running');
    for (const t of moved.values()) noteTransition(t.from, 'running');
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

  /** follow-up when a command is final: workloads and allocations follow the agent's answer */
  function onFinal(r: CommandRecord): Promise<void> {
    if (r.payload.type !== 'allocate' && r.payload.type !== 'release') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      waiting.push({ r, done: (err) => (err ? reject(err) : resolve()) });
      if (!draining) {
        draining = true;
        void drain();
      }
    });
  }

  function checkAsics(siteId: string, ids: string[]): void {
    for (const [i, id] of ids.entries()) {
      const dev = d.registry.device(id);
      if (!dev || dev.siteId !== siteId) throw new HcpError('not_found', `device ${id} is not at site ${siteId}`, 'unknown_device', { fields: [{ field: `device_ids.${i}`, message: 'unknown device at this site' }] });
      if (dev.kind !== 'asic') throw field(`device_ids.${i}`, `${id} is a GPU; mining applies to ASICs`);
    }
  }

  return {
    onFinal,
    refreshActive,

    async setMining(req: { site: string; enabled: boolean; powerTargetW?: number | null; deviceIds?: string[]; actor: string; deadlineS?: number }): Promise<CommandRecord[]> {
      site(req.site);
      const ids = [...new Set(req.deviceIds ?? [])];
      checkAsics(req.site, ids);
      const target = req.powerTargetW ?? null;
      if (target !== null && (!Number.isFinite(target) || target <= 0 || target > MAX_POWER_TARGET_W)) {
        throw field('power_target_w', `must be between 1 and ${MAX_POWER_TARGET_W} W`);
      }
      if (target !== null && !req.enabled) throw field('power_target_w', 'a power target needs enabled: true');
      return d.bus().submit([{
        id: `cmd-${randomUUID()}`, siteId: req.site, actor: req.actor, deadlineMs: deadline(req.deadlineS, DEFAULT_DEADLINE_S.mining),
        payload: { type: 'set_mining', enabled: req.enabled, deviceIds: ids, powerTargetW: target },
      }]);
    },

    async curtail(req: { sites?: string[]; all?: boolean; reason: string; actor: string; deadlineS?: number }): Promise<CommandRecord[]> {
      if (!req.reason?.trim()) throw field('reason', 'is required');
      if (req.all && req.sites?.length) throw field('sites', 'give sites or all, not both');
      if (!req.all && !req.sites?.length) throw field('sites', 'give the sites to curtail, or all: true');
      const ids = req.all ? d.registry.sites().map((s) => s.id) : [...new Set(req.sites)];
      for (const [i, id] of ids.entries()) {
        if (!d.registry.site(id)) throw new HcpError('not_found', `site ${JSON.stringify(id)} not found`, 'unknown_site', { fields: [{ field: `sites.${i}`, message: 'unknown site' }] });
      }
      const dl = deadline(req.deadlineS, DEFAULT_DEADLINE_S.curtail);
      return d.bus().submit(ids.map((siteId) => ({
        id: `cmd-${randomUUID()}`, siteId, actor: req.actor, deadlineMs: dl, payload: { type: 'curtail' as const, reason: req.reason },
      })));
    },

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
      const dl = deadline(req.deadlineS, DEFAULT_DEADLINE_S.allocate);
      const siteId = devices[0]!.siteId;
      const ids = devices.map((x) => x.id);
      const commandId = `cmd-${randomUUID()}`;
      try {
        await reserveAllocation(d.db, w.id, siteId, ids, commandId, `allocate by ${req.actor}`);
      } catch (err) {
        if (err instanceof AllocationConflict) {
          throw new HcpError('conflict', err.message, err.reason === 'device_busy' ? 'device_busy' : 'workload_running');
        }
        throw err;
      }
      return d.bus().submit([{
        id: commandId, siteId, actor: req.actor, workloadId: w.id, deadlineMs: dl,
        payload: { type: 'allocate', workloadId: w.id, deviceIds: ids },
      }]);
    },

    async release(req: { workloadId: string; actor: string; deadlineS?: number }): Promise<CommandRecord[]> {
      const w = await getWorkload(d.db, req.workloadId);
      if (!w) throw notFound('workload', req.workloadId);
      if (w.state !== 'running' && w.state !== 'scheduled') throw new HcpError('conflict', `workload ${w.id} is ${w.state}, not running`, 'workload_not_running');
      const live = (await allocationsOf(d.db, w.id)).filter((a) => a.released_at === null);
      const bySite = new Map<string, string[]>();
      for (const a of live) bySite.set(a.facility_id, [...(bySite.get(a.facility_id) ?? []), a.resource_id]);
      const dl = deadline(req.deadlineS, DEFAULT_DEADLINE_S.release);
      return d.bus().submit([...bySite].map(([siteId, deviceIds]) => ({
        id: `cmd-${randomUUID()}`, siteId, actor: req.actor, workloadId: w.id, deadlineMs: dl,
        payload: { type: 'release' as const, workloadId: w.id, deviceIds },
      })));
    },
  };

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
}

export type Operations = ReturnType<typeof createOperations>;
