// Property-based tests of the scheduler's rules over random submit / cancel / complete /
// site-loss / time sequences. A small pure simulator plays the control plane: it applies every
// pass's placements at once (the agent confirms at once) and checks, after every step:
//   1. no GPU is ever in two live allocations;
//   2. a gang is never split across sites;
//   3. a higher priority never waits behind a lower one that it could preempt (nor behind free GPUs);
//   4. preemption never evicts equal or higher priority (nor realtime), and non-realtime work never
//      preempts inside the guaranteed runtime;
//   5. the power budget always holds.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gpuMatches, mayPreempt, planPass, type ClusterView, type HolderView, type Policy } from './placement.js';
import { WorkloadQueue, type QueuedWorkload } from './queue.js';
import { assertTransition, WORKLOAD_TYPES, type WorkloadState } from './workload-state.js';

const H100 = 'NVIDIA H100 80GB HBM3';
const A100 = 'NVIDIA A100 40GB';
const GPU_W = 700;
const IDLE_W = 105;
const ASIC_W = 3645;

interface SimSite { id: string; online: boolean; capacityW: number; gpus: Array<{ id: string; model: string; memoryMib: number }>; asics: Array<{ id: string; powerW: number }> }
interface SimWorkload { q: QueuedWorkload; state: WorkloadState; siteId: string | null; gpuIds: string[]; startedAtMs: number | null }

type Op =
  | { k: 'submit'; type: number; priority: number; gpus: number; a100: boolean; bigMem: boolean; customer: number; pin: number }
  | { k: 'cancel'; i: number }
  | { k: 'complete'; i: number }
  | { k: 'siteDown'; s: number }
  | { k: 'siteUp'; s: number }
  | { k: 'tick'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('submit' as const), type: fc.nat(2), priority: fc.integer({ min: 1, max: 10 }), gpus: fc.integer({ min: 1, max: 6 }), a100: fc.boolean(), bigMem: fc.boolean(), customer: fc.nat(2), pin: fc.integer({ min: -6, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('cancel' as const), i: fc.nat(200) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('complete' as const), i: fc.nat(200) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('siteDown' as const), s: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('siteUp' as const), s: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 90_000 }) }) },
);

const siteArb = (i: number, budget: boolean) =>
  fc.record({ h100: fc.integer({ min: 1, max: 8 }), a100: fc.integer({ min: 0, max: 3 }), asics: fc.integer({ min: 0, max: 6 }), slackW: fc.integer({ min: 0, max: 6000 }) }).map((s): SimSite => {
    const gpus = [
      ...Array.from({ length: s.h100 }, (_, k) => ({ id: `gpu-s${i}-${String(k + 1).padStart(4, '0')}`, model: H100, memoryMib: 81559 })),
      ...Array.from({ length: s.a100 }, (_, k) => ({ id: `gpu-s${i}-a${k + 1}`, model: A100, memoryMib: 40960 })),
    ];
    const asics = Array.from({ length: s.asics }, (_, k) => ({ id: `asic-s${i}-${k + 1}`, powerW: ASIC_W }));
    // With a budget: everything idle and every ASIC at stock fits; all GPUs busy may not.
    const capacityW = budget ? gpus.length * IDLE_W + s.asics * ASIC_W + s.slackW : 0;
    return { id: `s${i}`, online: true, capacityW, gpus, asics };
  });

const POLICY: Policy = { minRuntimeMs: 60_000, agingMs: 0, idleGpuPowerW: IDLE_W, maxPlacements: 10_000 };
const QUOTAS = new Map<string, number | null>([['c0', null], ['c1', 4], ['c2', 2]]);

class Sim {
  now = 1_000_000;
  seq = 0;
  readonly queue = new WorkloadQueue();
  readonly workloads: SimWorkload[] = [];
  readonly gpuSite = new Map<string, string>();
  readonly gpuModel = new Map<string, { model: string; memoryMib: number }>();
  constructor(readonly sites: SimSite[], readonly policy: Policy) {
    for (const s of sites) for (const g of s.gpus) {
      this.gpuSite.set(g.id, s.id);
      this.gpuModel.set(g.id, g);
    }
  }

  move(w: SimWorkload, to: WorkloadState) {
    assertTransition(w.state, to);
    w.state = to;
  }

  live = () => this.workloads.filter((w) => w.state === 'scheduled' || w.state === 'running');

  holders(): HolderView[] {
    return this.live().map((w) => ({
      id: w.q.id, customerId: w.q.customerId, type: w.q.type, priority: w.q.priority, state: w.state as 'running', startedAtMs: w.startedAtMs, siteId: w.siteId!, gpuIds: w.gpuIds,
    }));
  }

  view(): ClusterView {
    const holderOf = new Map<string, string>();
    for (const w of this.live()) for (const g of w.gpuIds) holderOf.set(g, w.q.id);
    return {
      sites: this.sites.map((s) => ({ id: s.id, online: s.online, capacityW: s.capacityW })),
      gpus: this.sites.flatMap((s) => s.gpus.map((g) => ({
        id: g.id, siteId: s.id, model: g.model, memoryMib: g.memoryMib, healthy: s.online, ratedPowerW: GPU_W,
        powerW: holderOf.has(g.id) ? GPU_W : IDLE_W, holder: holderOf.get(g.id) ?? null,
      }))),
      asics: this.sites.flatMap((s) => s.asics.map((a) => ({ id: a.id, siteId: s.id, powerW: a.powerW, ratedPowerW: ASIC_W }))),
      holders: this.holders(),
      quotas: QUOTAS,
    };
  }

  loadW(s: SimSite): number {
    const busy = new Set(this.live().flatMap((w) => w.gpuIds));
    return s.gpus.reduce((n, g) => n + (busy.has(g.id) ? GPU_W : IDLE_W), 0) + s.asics.reduce((n, a) => n + a.powerW, 0);
  }

  requeue(w: SimWorkload) {
    w.siteId = null;
    w.gpuIds = [];
    w.startedAtMs = null;
    if (w.state === 'running') {
      this.move(w, 'preempted');
      this.move(w, 'pending');
    } else this.move(w, 'pending');
    this.queue.add(w.q);
  }

  step(op: Op) {
    switch (op.k) {
      case 'submit': {
        const s = op.pin >= 0 ? this.sites[op.pin]?.id ?? null : null;
        const q: QueuedWorkload = {
          id: `wl-${++this.seq}`, customerId: `c${op.customer}`, type: WORKLOAD_TYPES[op.type]!, priority: op.priority, gpuType: op.a100 ? 'a100' : 'h100',
          gpuCount: op.gpus, minMemoryMib: op.bigMem ? 80_000 : 0, site: s, seq: this.seq, submittedAtMs: this.now,
        };
        this.workloads.push({ q, state: 'pending', siteId: null, gpuIds: [], startedAtMs: null });
        this.queue.add(q);
        break;
      }
      case 'cancel': {
        const w = this.workloads[op.i % Math.max(1, this.workloads.length)];
        if (!w || ['completed', 'failed', 'cancelled'].includes(w.state)) break;
        this.move(w, 'cancelled');
        this.queue.remove(w.q.id);
        w.gpuIds = [];
        break;
      }
      case 'complete': {
        const running = this.workloads.filter((w) => w.state === 'running');
        const w = running[op.i % Math.max(1, running.length)];
        if (!w) break;
        this.move(w, 'completed');
        w.gpuIds = [];
        break;
      }
      case 'siteDown': {
        const s = this.sites[op.s % this.sites.length]!;
        s.online = false;
        // past the grace period: its work is requeued elsewhere
        for (const w of this.live().filter((x) => x.siteId === s.id)) this.requeue(w);
        break;
      }
      case 'siteUp':
        this.sites[op.s % this.sites.length]!.online = true;
        break;
      case 'tick':
        this.now += op.ms;
        break;
    }
    // An evicted workload is requeued once its GPUs are released, which pokes another pass.
    while (this.pass() > 0);
  }

  /** one pass; returns how many workloads it evicted */
  pass(): number {
    const view = this.view();
    const before = new Map(view.holders.map((h) => [h.id, h]));
    const placements = planPass(view, this.queue.ordered(this.now, this.policy.agingMs), this.policy, this.now);
    const byId = new Map(this.workloads.map((w) => [w.q.id, w]));
    for (const p of placements) {
      // 4. preemption rules
      for (const v of p.preempt) {
        const h = before.get(v);
        expect(h, `victim ${v} held GPUs`).toBeDefined();
        expect(mayPreempt(p.workload, h!, this.now, this.policy.minRuntimeMs)).toBe(true);
        expect(h!.priority).toBeGreaterThan(p.workload.priority);
        expect(h!.type).not.toBe('ai_inference_realtime');
        if (p.workload.type !== 'ai_inference_realtime') expect(this.now - h!.startedAtMs!).toBeGreaterThanOrEqual(this.policy.minRuntimeMs);
        expect(h!.siteId).toBe(p.siteId);
        const victim = byId.get(v)!;
        this.requeue(victim);
      }
      // 2. one site, the requested count
      expect(p.gpuIds).toHaveLength(p.workload.gpuCount);
      for (const g of p.gpuIds) expect(this.gpuSite.get(g)).toBe(p.siteId);
      for (const g of p.gpuIds) expect(gpuMatches({ ...this.gpuModel.get(g)!, id: g, siteId: p.siteId, healthy: true, powerW: 0, ratedPowerW: GPU_W, holder: null }, p.workload)).toBe(true);
      if (p.workload.site) expect(p.siteId).toBe(p.workload.site);
      const site = this.sites.find((s) => s.id === p.siteId)!;
      expect(site.online).toBe(true);
      if (p.power) {
        for (const l of p.power.lower) site.asics.find((a) => a.id === l.id)!.powerW = l.targetW;
        for (const id of p.power.off) site.asics.find((a) => a.id === id)!.powerW = 0;
      }
      const w = byId.get(p.workload.id)!;
      this.queue.remove(w.q.id);
      this.move(w, 'scheduled');
      this.move(w, 'running');
      w.siteId = p.siteId;
      w.gpuIds = p.gpuIds;
      w.startedAtMs = this.now;
      // 1. no GPU in two live allocations
      const seen = new Set<string>();
      for (const l of this.live()) for (const g of l.gpuIds) {
        expect(seen.has(g), `GPU ${g} allocated twice`).toBe(false);
        seen.add(g);
      }
    }
    // quotas hold
    const perCustomer = new Map<string, number>();
    for (const l of this.live()) perCustomer.set(l.q.customerId, (perCustomer.get(l.q.customerId) ?? 0) + l.gpuIds.length);
    for (const [c, n] of perCustomer) {
      const q = QUOTAS.get(c);
      if (q !== null && q !== undefined) expect(n).toBeLessThanOrEqual(q);
    }
    // 5. power budget
    for (const s of this.sites) if (s.capacityW > 0) expect(this.loadW(s)).toBeLessThanOrEqual(s.capacityW);
    return placements.reduce((n, p) => n + p.preempt.length, 0);
  }

  /** 3. nothing waits that could run now, by free GPUs or by evicting what it may evict (no budget) */
  checkNoneCouldRun() {
    const holders = this.holders();
    const busy = new Set(holders.flatMap((h) => h.gpuIds));
    const used = new Map<string, number>();
    for (const h of holders) used.set(h.customerId, (used.get(h.customerId) ?? 0) + h.gpuIds.length);
    for (const w of this.workloads.filter((x) => x.state === 'pending')) {
      const quota = QUOTAS.get(w.q.customerId);
      if (quota !== null && quota !== undefined && (used.get(w.q.customerId) ?? 0) + w.q.gpuCount > quota) continue;
      for (const s of this.sites) {
        if (!s.online || (w.q.site && w.q.site !== s.id)) continue;
        const match = (id: string) => {
          const g = this.gpuModel.get(id)!;
          return gpuMatches({ ...g, id, siteId: s.id, healthy: true, powerW: 0, ratedPowerW: GPU_W, holder: null }, w.q);
        };
        let room = s.gpus.filter((g) => !busy.has(g.id) && match(g.id)).length;
        for (const h of holders) if (h.siteId === s.id && mayPreempt(w.q, h, this.now, this.policy.minRuntimeMs)) room += h.gpuIds.filter(match).length;
        expect(room, `${w.q.id} (p${w.q.priority} ${w.q.type}, ${w.q.gpuCount} GPUs) waits though ${s.id} has room`).toBeLessThan(w.q.gpuCount);
      }
    }
  }
}

describe('scheduler properties', () => {
  it('hold without a power budget: no double allocation, no split gang, no wrongful eviction, no needless wait', () => {
    fc.assert(
      fc.property(fc.tuple(siteArb(0, false), siteArb(1, false), siteArb(2, false)), fc.array(opArb, { minLength: 1, maxLength: 120 }), (sites, ops) => {
        const sim = new Sim(sites, POLICY);
        for (const op of ops) {
          sim.step(op);
          sim.checkNoneCouldRun();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('hold with a power budget: the budget is never exceeded, ASICs are lowered first', () => {
    fc.assert(
      fc.property(fc.tuple(siteArb(0, true), siteArb(1, true), siteArb(2, true)), fc.array(opArb, { minLength: 1, maxLength: 120 }), (sites, ops) => {
        const sim = new Sim(sites, POLICY);
        for (const op of ops) sim.step(op);
      }),
      { numRuns: 300 },
    );
  });

  it('hold with aging on: a long wait reorders the queue but never widens the right to preempt', () => {
    fc.assert(
      fc.property(fc.tuple(siteArb(0, false), siteArb(1, false), siteArb(2, true)), fc.array(opArb, { minLength: 1, maxLength: 120 }), (sites, ops) => {
        const sim = new Sim(sites, { ...POLICY, agingMs: 120_000 });
        for (const op of ops) sim.step(op);
      }),
      { numRuns: 200 },
    );
  });
});
