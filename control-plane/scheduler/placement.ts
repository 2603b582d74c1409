// Placement: pure, no I/O. Given a snapshot of the fleet and the wait queue in rank order, decide
// which workloads go where now. Rules (issue 4):
// - gang placement: all of a workload's GPUs at one site, or none;
// - only healthy, online GPUs of the requested type with at least the requested memory;
// - best fit: the site whose free matching GPUs leave the fewest over, so whole sites stay free
//   for large gangs;
// - the site's power budget holds (power.ts); a placement that needs headroom carries a request
//   to lower that site's ASICs first;
// - per-customer GPU quotas;
// - preemption when a workload cannot fit: only running batch or training work of strictly lower
//   priority, only as many as needed, at the site where eviction costs least; work running for
//   less than the guaranteed runtime is shielded unless the preemptor is realtime inference.
// Waiting work that cannot be placed does not block lower-ranked work that can (backfill). A
// higher-priority workload is always considered before it and preempts whatever it is entitled
// to, so it never waits behind lower-priority work it could evict.
import { planHeadroom, type AsicPower, type PowerRequest } from './power.js';
import type { QueuedWorkload } from './queue.js';
import type { WorkloadType } from './workload-state.js';

export interface GpuView {
  id: string;
  siteId: string;
  model: string;
  memoryMib: number;
  /** online, reporting, no XID errors */
  healthy: boolean;
  /** the draw the budget counts now */
  powerW: number;
  ratedPowerW: number;
  /** the workload holding it in a live allocation */
  holder: string | null;
}

export interface SiteView {
  id: string;
  online: boolean;
  /** 0 = no budget configured */
  capacityW: number;
}

export interface HolderView {
  id: string;
  customerId: string;
  type: WorkloadType;
  priority: number;
  state: 'scheduled' | 'running';
  startedAtMs: number | null;
  siteId: string;
  gpuIds: string[];
}

export interface ClusterView {
  sites: SiteView[];
  gpus: GpuView[];
  asics: Array<AsicPower & { siteId: string }>;
  holders: HolderView[];
  /** GPU quota per customer; absent or null = unlimited */
  quotas: ReadonlyMap<string, number | null>;
}

export interface Policy {
  /** running work younger than this is shielded from preemption by batch and training */
  minRuntimeMs: number;
  /** queue aging: one priority level per this many ms waited (0 = strict priority) */
  agingMs: number;
  /** what a GPU draws once released (H100 idle ≈ 105 W, docs/architecture.md) */
  idleGpuPowerW: number;
  /** stop after this many placements in one pass (bounds the time a pass holds the event loop) */
  maxPlacements: number;
}

export const DEFAULT_POLICY: Policy = { minRuntimeMs: 60_000, agingMs: 300_000, idleGpuPowerW: 105, maxPlacements: 500 };

export interface Placement {
  workload: QueuedWorkload;
  siteId: string;
  gpuIds: string[];
  /** holders evicted first (running → preempted), all at siteId */
  preempt: string[];
  /** lower these ASICs before allocating */
  power: PowerRequest | null;
}

export const gpuMatches = (g: GpuView, w: Pick<QueuedWorkload, 'gpuType' | 'minMemoryMib'>) =>
  g.healthy && g.model.toLowerCase().includes(w.gpuType.toLowerCase()) && g.memoryMib >= w.minMemoryMib;

/** may `w` evict `h` now? (strictly lower priority, batch or training, shield unless realtime) */
export function mayPreempt(w: Pick<QueuedWorkload, 'type' | 'priority'>, h: HolderView, nowMs: number, minRuntimeMs: number): boolean {
  if (h.state !== 'running' || h.type === 'ai_inference_realtime' || h.priority <= w.priority) return false;
  if (w.type === 'ai_inference_realtime') return true;
  return h.startedAtMs !== null && nowMs - h.startedAtMs >= minRuntimeMs;
}

interface SiteWork {
  site: SiteView;
  gpus: GpuView[];
  asics: AsicPower[];
  loadW: number;
  free: number;
}

interface Candidate {
  siteId: string;
  gpuIds: string[];
  preempt: HolderView[];
  power: PowerRequest | null;
  /** lexicographic, lower is better */
  cost: number[];
}

const lexLess = (a: number[], b: number[]) => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x < y;
  }
  return false;
};

/** a working copy of the view that placements update as a pass proceeds */
export class Fleet {
  readonly sites = new Map<string, SiteWork>();
  readonly gpus = new Map<string, GpuView>();
  readonly holders = new Map<string, HolderView>();
  readonly customerGpus = new Map<string, number>();

  constructor(view: ClusterView, readonly policy: Policy) {
    for (const s of view.sites) this.sites.set(s.id, { site: { ...s }, gpus: [], asics: [], loadW: 0, free: 0 });
    for (const g of view.gpus) {
      const sw = this.sites.get(g.siteId);
      if (!sw) continue;
      const c = { ...g };
      this.gpus.set(c.id, c);
      sw.gpus.push(c);
      sw.loadW += c.powerW;
      if (!c.holder && c.healthy) sw.free++;
    }
    for (const sw of this.sites.values()) sw.gpus.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const a of view.asics) {
      const sw = this.sites.get(a.siteId);
      if (!sw) continue;
      sw.asics.push({ id: a.id, powerW: a.powerW, ratedPowerW: a.ratedPowerW });
      sw.loadW += a.powerW;
    }
    for (const h of view.holders) {
      this.holders.set(h.id, { ...h, gpuIds: [...h.gpuIds] });
      this.customerGpus.set(h.customerId, (this.customerGpus.get(h.customerId) ?? 0) + h.gpuIds.length);
    }
    this.quotas = view.quotas;
  }

  private readonly quotas: ReadonlyMap<string, number | null>;

  overQuota(w: QueuedWorkload): boolean {
    const q = this.quotas.get(w.customerId);
    return q !== undefined && q !== null && (this.customerGpus.get(w.customerId) ?? 0) + w.gpuCount > q;
  }

  /** the draw after the listed GPUs go from idle to busy and the victims' GPUs go idle */
  private powerFor(sw: SiteWork, chosen: GpuView[], victimGpus: Set<string>): PowerRequest | null | false {
    if (!(sw.site.capacityW > 0)) return null;
    let load = sw.loadW;
    for (const id of victimGpus) {
      const g = this.gpus.get(id);
      if (g) load += this.policy.idleGpuPowerW - g.powerW;
    }
    for (const g of chosen) {
      const now = victimGpus.has(g.id) ? this.policy.idleGpuPowerW : g.powerW;
      load += Math.max(0, g.ratedPowerW - now);
    }
    const need = load - sw.site.capacityW;
    if (need <= 0) return null;
    return planHeadroom(sw.site.id, sw.asics, need) ?? false;
  }

  private sitesFor(w: QueuedWorkload): SiteWork[] {
    if (w.site) {
      const s = this.sites.get(w.site);
      return s && s.site.online ? [s] : [];
    }
    return [...this.sites.values()].filter((s) => s.site.online);
  }

  /** best fit on free GPUs */
  fitFree(w: QueuedWorkload): Candidate | null {
    let best: Candidate | null = null;
    for (const sw of this.sitesFor(w)) {
      if (sw.free < w.gpuCount) continue;
      const free = sw.gpus.filter((g) => !g.holder && gpuMatches(g, w));
      if (free.length < w.gpuCount) continue;
      const chosen = free.slice(0, w.gpuCount);
      const power = this.powerFor(sw, chosen, new Set());
      if (power === false) continue;
      const c: Candidate = {
        siteId: sw.site.id, gpuIds: chosen.map((g) => g.id), preempt: [], power,
        cost: [free.length - w.gpuCount, power ? 1 : 0],
      };
      if (!best || lexLess(c.cost, best.cost) || (!lexLess(best.cost, c.cost) && c.siteId < best.siteId)) best = c;
    }
    return best;
  }

  /** the cheapest site at which evicting lower-priority work makes room */
  fitByPreemption(w: QueuedWorkload, nowMs: number): Candidate | null {
    let best: Candidate | null = null;
    const bySite = new Map<string, HolderView[]>();
    for (const h of this.holders.values()) {
      if (!mayPreempt(w, h, nowMs, this.policy.minRuntimeMs)) continue;
      bySite.set(h.siteId, [...(bySite.get(h.siteId) ?? []), h]);
    }
    if (bySite.size === 0) return null;
    for (const sw of this.sitesFor(w)) {
      const victims = bySite.get(sw.site.id);
      if (!victims) continue;
      const free = sw.gpus.filter((g) => !g.holder && gpuMatches(g, w));
      const need = w.gpuCount - free.length;
      if (need <= 0) continue; // room enough: what failed was power, which eviction does not fix here
      // least important first, then the youngest (least work lost)
      victims.sort((a, b) => b.priority - a.priority || (b.startedAtMs ?? 0) - (a.startedAtMs ?? 0) || (a.id < b.id ? -1 : 1));
      const usable = (h: HolderView) => h.gpuIds.filter((id) => {
        const g = this.gpus.get(id);
        return g !== undefined && g.siteId === sw.site.id && gpuMatches(g, w);
      });
      const picked: Array<{ h: HolderView; gpus: string[] }> = [];
      let got = 0;
      for (const h of victims) {
        const u = usable(h);
        if (u.length === 0) continue;
        picked.push({ h, gpus: u });
        got += u.length;
        if (got >= need) break;
      }
      if (got < need) continue;
      // only as many as needed: drop any victim the others make unnecessary
      for (let i = 0; i < picked.length; ) {
        if (got - picked[i]!.gpus.length >= need) {
          got -= picked[i]!.gpus.length;
          picked.splice(i, 1);
        } else i++;
      }
      const victimGpus = new Set(picked.flatMap((p) => p.h.gpuIds));
      const chosen = [...free, ...picked.flatMap((p) => p.gpus.map((id) => this.gpus.get(id)!))].slice(0, w.gpuCount);
      const power = this.powerFor(sw, chosen, victimGpus);
      if (power === false) continue;
      const importance = Math.max(...picked.map((p) => 11 - p.h.priority));
      const gpusEvicted = picked.reduce((n, p) => n + p.h.gpuIds.length, 0);
      const workLost = picked.reduce((n, p) => n + p.h.gpuIds.length * Math.max(0, nowMs - (p.h.startedAtMs ?? nowMs)), 0);
      const c: Candidate = {
        siteId: sw.site.id, gpuIds: chosen.map((g) => g.id), preempt: picked.map((p) => p.h), power,
        cost: [importance, gpusEvicted, picked.length, workLost, power ? 1 : 0],
      };
      if (!best || lexLess(c.cost, best.cost) || (!lexLess(best.cost, c.cost) && c.siteId < best.siteId)) best = c;
    }
    return best;
  }

  /** applies a placement to the working copy */
  apply(w: QueuedWorkload, c: Candidate): void {
    const sw = this.sites.get(c.siteId)!;
    for (const v of c.preempt) this.evict(v.id);
    for (const id of c.gpuIds) {
      const g = this.gpus.get(id)!;
      g.holder = w.id;
      sw.loadW += Math.max(0, g.ratedPowerW - g.powerW);
      g.powerW = Math.max(g.powerW, g.ratedPowerW);
      sw.free--;
    }
    if (c.power) {
      const lowered = new Map(c.power.lower.map((l) => [l.id, l.targetW]));
      const off = new Set(c.power.off);
      for (const a of sw.asics) {
        const next = off.has(a.id) ? 0 : lowered.get(a.id) ?? a.powerW;
        sw.loadW += next - a.powerW;
        a.powerW = next;
      }
    }
    this.holders.set(w.id, { id: w.id, customerId: w.customerId, type: w.type, priority: w.priority, state: 'scheduled', startedAtMs: null, siteId: c.siteId, gpuIds: [...c.gpuIds] });
    this.customerGpus.set(w.customerId, (this.customerGpus.get(w.customerId) ?? 0) + c.gpuIds.length);
  }

  /** frees a holder's GPUs (evicted, finished, or its site lost) */
  evict(holderId: string): void {
    const h = this.holders.get(holderId);
    if (!h) return;
    this.holders.delete(holderId);
    this.customerGpus.set(h.customerId, (this.customerGpus.get(h.customerId) ?? 0) - h.gpuIds.length);
    for (const id of h.gpuIds) {
      const g = this.gpus.get(id);
      if (!g || g.holder !== holderId) continue;
      const sw = this.sites.get(g.siteId)!;
      g.holder = null;
      sw.loadW += this.policy.idleGpuPowerW - g.powerW;
      g.powerW = this.policy.idleGpuPowerW;
      if (g.healthy) sw.free++;
    }
  }

  /** the weakest priority any running batch or training work has (11 when there is none) */
  weakestPreemptible(): number {
    let p = 0;
    for (const h of this.holders.values()) if (h.state === 'running' && h.type !== 'ai_inference_realtime') p = Math.max(p, h.priority);
    return p || 11;
  }
}

/**
 * One scheduling pass: walks the queue in rank order and places what it can. Works on a copy;
 * the caller carries out the placements (evict, lower ASICs, allocate) in the order given.
 */
export function planPass(view: ClusterView, queue: Iterable<QueuedWorkload>, policy: Policy, nowMs: number): Placement[] {
  const fleet = new Fleet(view, policy);
  const out: Placement[] = [];
  // Holders added in this pass are 'scheduled', never victims, so this bound only falls.
  const weakest = fleet.weakestPreemptible();
  const maxFree = () => Math.max(0, ...[...fleet.sites.values()].map((s) => (s.site.online ? s.free : 0)));
  let roomy = maxFree();
  // Whether a workload fits depends only on these fields and the fleet, which only a placement
  // changes; so a shape that found no room finds none again until the next placement. With a
  // long queue on a full fleet this spares a walk over every holder per waiting workload.
  const noRoom = new Set<string>();
  for (const w of queue) {
    if (out.length >= policy.maxPlacements) break;
    if (fleet.overQuota(w)) continue;
    const mayPreempt = w.priority < weakest;
    const shape = `${w.gpuCount}|${w.gpuType}|${w.minMemoryMib}|${w.site ?? ''}|${mayPreempt ? `${w.type === 'ai_inference_realtime'}|${w.priority}` : '-'}`;
    if (noRoom.has(shape)) continue;
    let c = w.gpuCount <= roomy ? fleet.fitFree(w) : null;
    if (!c && mayPreempt) c = fleet.fitByPreemption(w, nowMs);
    if (!c) {
      noRoom.add(shape);
      continue;
    }
    noRoom.clear();
    fleet.apply(w, c);
    out.push({ workload: w, siteId: c.siteId, gpuIds: c.gpuIds, preempt: c.preempt.map((h) => h.id), power: c.power });
    roomy = maxFree();
  }
  return out;
}
