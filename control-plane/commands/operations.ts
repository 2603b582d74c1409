// What an operator, the scheduler or the engine may ask of the fleet. REST and gRPC both call
// these; every check that can refuse a request happens here, before anything is stored, and
// refuses it with a typed error naming the field. Workload placements and releases belong to
// the workload service (workloads/service.ts); allocate and release here hand them to it.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { HcpError, notFound } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import type { WorkloadService } from '../workloads/service.js';
import type { CommandBus } from './bus.js';
import type { CommandRecord } from './model.js';

export interface OperationsDeps {
  registry: Registry;
  bus: CommandBus;
  workloads: WorkloadService;
  log: Logger;
}

/** actor of the commands the scheduler issues (who, for the audit log; never what decides behaviour) */
export const SCHEDULER_ACTOR = 'scheduler';

export const DEFAULT_DEADLINE_S = { mining: 300, curtail: 300, allocate: 120, release: 120 };
// A deadline bounds how long a command may wait for a disconnected site.
const MAX_DEADLINE_S = 24 * 3600;
// The S21 family runs between 50 % and 110 % of stock power; the agent clamps into the model's
// window. This bound only refuses nonsense.
const MAX_POWER_TARGET_W = 10_000;

const field = (name: string, message: string, reason = 'validation_failed') =>
  new HcpError('invalid_argument', `${name}: ${message}`, reason, { fields: [{ field: name, message }] });

/** a deadline_s from a request (the default when absent) as an absolute time; refused naming the field */
export function deadlineFrom(s: number | undefined, dflt: number): number {
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

  function checkAsics(siteId: string, ids: string[]): void {
    for (const [i, id] of ids.entries()) {
      const dev = d.registry.device(id);
      if (!dev || dev.siteId !== siteId) throw new HcpError('not_found', `device ${id} is not at site ${siteId}`, 'unknown_device', { fields: [{ field: `device_ids.${i}`, message: 'unknown device at this site' }] });
      if (dev.kind !== 'asic') throw field(`device_ids.${i}`, `${id} is a GPU; mining applies to ASICs`);
    }
  }

  return {
    async setMining(req: { site: string; enabled: boolean; powerTargetW?: number | null; deviceIds?: string[]; actor: string; deadlineS?: number }): Promise<CommandRecord[]> {
      site(req.site);
      const ids = [...new Set(req.deviceIds ?? [])];
      checkAsics(req.site, ids);
      const target = req.powerTargetW ?? null;
      if (target !== null && (!Number.isFinite(target) || target <= 0 || target > MAX_POWER_TARGET_W)) {
        throw field('power_target_w', `must be between 1 and ${MAX_POWER_TARGET_W} W`);
      }
      if (target !== null && !req.enabled) throw field('power_target_w', 'a power target needs enabled: true');
      return d.bus.submit([{
        id: `cmd-${randomUUID()}`, siteId: req.site, actor: req.actor, deadlineMs: deadlineFrom(req.deadlineS, DEFAULT_DEADLINE_S.mining),
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
      const dl = deadlineFrom(req.deadlineS, DEFAULT_DEADLINE_S.curtail);
      return d.bus.submit(ids.map((siteId) => ({
        id: `cmd-${randomUUID()}`, siteId, actor: req.actor, deadlineMs: dl, payload: { type: 'curtail' as const, reason: req.reason },
      })));
    },

    /** an operator's placement: the workload service carries it out (workloads/service.ts) */
    allocate: (req: { workloadId: string; deviceIds?: string[]; actor: string; deadlineS?: number }): Promise<CommandRecord[]> => d.workloads.allocate(req),

    /** an operator frees a workload's GPUs (workloads/service.ts) */
    release: (req: { workloadId: string; actor: string; deadlineS?: number }): Promise<CommandRecord[]> => d.workloads.release(req),
  };
}

export type Operations = ReturnType<typeof createOperations>;
