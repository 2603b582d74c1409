// An operator's allocate and release, for REST and gRPC: they belong to the workload service
// (workloads/service.ts), which these hand them to. Mining and curtailment are operator claims
// (claims/operator.ts), carried out by the site's reconciler.
import type { Logger } from 'pino';
import { HcpError } from '../errors.js';
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

const field = (name: string, message: string, reason = 'validation_failed') =>
  new HcpError('invalid_argument', `${name}: ${message}`, reason, { fields: [{ field: name, message }] });

/** a deadline_s from a request (the default when absent) as an absolute time; refused naming the field */
export function deadlineFrom(s: number | undefined, dflt: number): number {
  const v = s ?? dflt;
  if (!Number.isInteger(v) || v < 1 || v > MAX_DEADLINE_S) throw field('deadline_s', `must be a whole number of seconds from 1 to ${MAX_DEADLINE_S}`);
  return Date.now() + v * 1000;
}

export function createOperations(d: OperationsDeps) {
  return {
    allocate: (req: { workloadId: string; deviceIds?: string[]; actor: string; deadlineS?: number }): Promise<CommandRecord[]> => d.workloads.allocate(req),

    /** an operator frees a workload's GPUs (workloads/service.ts) */
    release: (req: { workloadId: string; actor: string; deadlineS?: number }): Promise<CommandRecord[]> => d.workloads.release(req),
  };
}

export type Operations = ReturnType<typeof createOperations>;
