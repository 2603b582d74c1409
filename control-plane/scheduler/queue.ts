// The wait queue: pure data structure, no I/O. Priority 1 is highest; first in, first out within
// a priority (by submission sequence, which a requeued workload keeps, so an evicted workload
// goes back to the front of its priority, not the back).
//
// Aging: a workload's queue rank improves by one priority level per `agingMs` waited since it
// was submitted, down to 1. It only changes the order in which waiting work is considered,
// never the right to preempt (that stays on the submitted priority, so "never evict equal or
// higher priority" holds literally). A steady stream of priority-3 batch therefore cannot keep
// a priority-8 batch waiting for ever: after 5 × agingMs it is considered first for free GPUs.
import type { WorkloadType } from './workload-state.js';

export interface QueuedWorkload {
  id: string;
  customerId: string;
  type: WorkloadType;
  priority: number;
  gpuType: string;
  gpuCount: number;
  minMemoryMib: number;
  /** pinned to this site, or anywhere */
  site: string | null;
  /** submission order (workloads.seq) */
  seq: number;
  submittedAtMs: number;
}

export const PRIORITIES = 10;

export function effectivePriority(w: Pick<QueuedWorkload, 'priority' | 'submittedAtMs'>, nowMs: number, agingMs: number): number {
  if (!(agingMs > 0)) return w.priority;
  return Math.max(1, w.priority - Math.floor(Math.max(0, nowMs - w.submittedAtMs) / agingMs));
}

function bySeq(list: QueuedWorkload[], seq: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class WorkloadQueue {
  // One list per submitted priority, each sorted by seq. Within a list, older means a rank at
  // least as good (aging depends only on age), so ordering is a merge of ten sorted lists.
  private readonly lists: QueuedWorkload[][] = Array.from({ length: PRIORITIES }, () => []);
  private readonly byId = new Map<string, QueuedWorkload>();

  get size(): number {
    return this.byId.size;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  get(id: string): QueuedWorkload | undefined {
    return this.byId.get(id);
  }

  /** adds or replaces */
  add(w: QueuedWorkload): void {
    if (!Number.isInteger(w.priority) || w.priority < 1 || w.priority > PRIORITIES) throw new RangeError(`priority ${w.priority} is not 1..${PRIORITIES}`);
    this.remove(w.id);
    const list = this.lists[w.priority - 1]!;
    list.splice(bySeq(list, w.seq), 0, w);
    this.byId.set(w.id, w);
  }

  remove(id: string): boolean {
    const w = this.byId.get(id);
    if (!w) return false;
    this.byId.delete(id);
    const list = this.lists[w.priority - 1]!;
    let i = bySeq(list, w.seq);
    while (i < list.length && list[i]!.id !== id) i++;
    if (i < list.length) list.splice(i, 1);
    return true;
  }

  /** waiting workloads, best rank first: (effective priority, seq) */
  *ordered(nowMs: number, agingMs: number): Generator<QueuedWorkload> {
    const at = new Array<number>(PRIORITIES).fill(0);
    const lists = this.lists.map((l) => [...l]); // a pass may remove while iterating
    // each list's head rank, computed once per head rather than once per comparison
    const rank = lists.map((l) => (l[0] ? effectivePriority(l[0], nowMs, agingMs) : Infinity));
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      let bestSeq = Infinity;
      for (let p = 0; p < PRIORITIES; p++) {
        const r = rank[p]!;
        if (r === Infinity) continue;
        const seq = lists[p]![at[p]!]!.seq;
        if (r < bestRank || (r === bestRank && seq < bestSeq)) {
          best = p;
          bestRank = r;
          bestSeq = seq;
        }
      }
      if (best < 0) return;
      const w = lists[best]![at[best]!]!;
      at[best] = at[best]! + 1;
      const next = lists[best]![at[best]!];
      rank[best] = next ? effectivePriority(next, nowMs, agingMs) : Infinity;
      if (this.byId.get(w.id) === w) yield w;
    }
  }
}
