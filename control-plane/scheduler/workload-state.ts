// The workload state machine: pure, no I/O. The workload service (workloads/service.ts), the
// only writer of workloads.state, checks every move with assertTransition before it asks the
// store, so an illegal move is refused (a conflict naming both states), not stored.
//
//   pending ──place──▶ scheduled ──agent confirms──▶ running ──▶ completed | failed | cancelled
//      ▲                  │                            │
//      ├── allocate failed / site lost ◀─┘              └─evicted─▶ preempted ──GPUs released──▶ pending
//   cancel: pending | scheduled | running | preempted ──▶ cancelled
import { HcpError } from '../errors.js';

export const WORKLOAD_STATES = ['pending', 'scheduled', 'running', 'preempted', 'completed', 'failed', 'cancelled'] as const;
export type WorkloadState = (typeof WORKLOAD_STATES)[number];

export const WORKLOAD_TYPES = ['ai_inference_realtime', 'ai_inference_batch', 'ai_training'] as const;
export type WorkloadType = (typeof WORKLOAD_TYPES)[number];

const NEXT: Record<WorkloadState, readonly WorkloadState[]> = {
  pending: ['scheduled', 'cancelled'],
  // back to pending when the allocate fails or expires, or the site is lost before it confirms;
  // failed when it has failed too often to keep trying
  scheduled: ['running', 'pending', 'cancelled', 'failed'],
  // preempted by higher-priority work or a lost site; failed when the agent reports it so
  running: ['completed', 'failed', 'cancelled', 'preempted'],
  preempted: ['pending', 'cancelled'],
  completed: [],
  failed: [],
  cancelled: [],
};

export class IllegalTransition extends HcpError {
  constructor(readonly from: WorkloadState, readonly to: WorkloadState) {
    super('conflict', `a workload cannot go from ${from} to ${to}`, 'illegal_transition', { from, to });
  }
}

export function canTransition(from: WorkloadState, to: WorkloadState): boolean {
  return NEXT[from]?.includes(to) ?? false;
}

export function assertTransition(from: WorkloadState, to: WorkloadState): void {
  if (!canTransition(from, to)) throw new IllegalTransition(from, to);
}

export function isFinished(s: WorkloadState): boolean {
  return NEXT[s].length === 0;
}

/** holds GPUs (or is about to): what quotas and the live-allocation view count */
export function holdsGpus(s: WorkloadState): boolean {
  return s === 'scheduled' || s === 'running';
}
