import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, planPass, type ClusterView, type HolderView } from './placement.js';
import { planHeadroom } from './power.js';
import { WorkloadQueue, type QueuedWorkload } from './queue.js';
import { assertTransition, canTransition } from './workload-state.js';

const NOW = 10_000_000;
const wl = (id: string, o: Partial<QueuedWorkload> = {}): QueuedWorkload => ({
  id, customerId: 'c', type: 'ai_inference_batch', priority: 5, gpuType: 'h100', gpuCount: 1, minMemoryMib: 0, site: null, seq: Number(id.replace(/\D/g, '')) || 0, submittedAtMs: NOW, ...o,
});
function fleet(sites: Record<string, number>, holders: HolderView[] = [], capacityW = 0, asics = 0): ClusterView {
  const held = new Map(holders.flatMap((h) => h.gpuIds.map((g) => [g, h.id])));
  return {
    sites: Object.keys(sites).map((id) => ({ id, online: true, capacityW })),
    gpus: Object.entries(sites).flatMap(([s, n]) => Array.from({ length: n }, (_, i) => {
      const id = `gpu-${s}-${i + 1}`;
      return { id, siteId: s, model: 'NVIDIA H100 80GB HBM3', memoryMib: 81559, healthy: true, ratedPowerW: 700, powerW: held.has(id) ? 700 : 105, holder: held.get(id) ?? null };
    })),
    asics: Object.keys(sites).flatMap((s) => Array.from({ length: asics }, (_, i) => ({ id: `asic-${s}-${i + 1}`, siteId: s, powerW: 3645, ratedPowerW: 3645 }))),
    holders,
    quotas: new Map([['small', 2]]),
  };
}
const running = (id: string, site: string, gpus: number[], o: Partial<HolderView> = {}): HolderView => ({
  id, customerId: 'c', type: 'ai_inference_batch', priority: 8, state: 'running', startedAtMs: NOW - 120_000, siteId: site, gpuIds: gpus.map((i) => `gpu-${site}-${i}`), ...o,
});

describe('placement', () => {
  it('best fit: the site whose free GPUs leave the fewest over', () => {
    const [p] = planPass(fleet({ a: 8, b: 3, c: 2 }), [wl('w1', { gpuCount: 3 })], DEFAULT_POLICY, NOW);
    expect(p).toMatchObject({ siteId: 'b', gpuIds: ['gpu-b-1', 'gpu-b-2', 'gpu-b-3'], preempt: [] });
  });

  it('never splits a gang: four GPUs over two sites of three wait', () => {
    expect(planPass(fleet({ a: 3, b: 3 }), [wl('w1', { gpuCount: 4 })], DEFAULT_POLICY, NOW)).toEqual([]);
  });

  it('respects quotas but lets lower-ranked work use the GPUs (backfill)', () => {
    const out = planPass(fleet({ a: 4 }), [wl('w1', { customerId: 'small', gpuCount: 3, priority: 1 }), wl('w2', { gpuCount: 2 })], DEFAULT_POLICY, NOW);
    expect(out.map((p) => p.workload.id)).toEqual(['w2']);
  });

  it('asks for ASIC headroom when the budget needs it: low-power mode first, as few as needed', () => {
    // 2 idle GPUs (210 W) + 2 ASICs at stock (7290 W); capacity 7600 W; one GPU more needs 595 W
    const [p] = planPass(fleet({ a: 2 }, [], 7600, 2), [wl('w1')], DEFAULT_POLICY, NOW);
    expect(p!.power).toEqual({ siteId: 'a', lower: [{ id: 'asic-a-1', targetW: 2734 }], off: [], savesW: 911 });
  });

  it('refuses a site whose ASICs cannot free enough', () => {
    expect(planPass(fleet({ a: 2 }, [], 300, 0), [wl('w1')], DEFAULT_POLICY, NOW)).toEqual([]);
    expect(planHeadroom('a', [{ id: 'x', powerW: 3645, ratedPowerW: 3645 }], 3000)).toEqual({ siteId: 'a', lower: [], off: ['x'], savesW: 3645 });
  });

  it('realtime preempts only as many as needed, lowest priority first, at the cheapest site', () => {
    const holders = [
      running('p6', 'a', [1, 2], { priority: 6 }), running('p9', 'a', [3], { priority: 9 }),
      running('b7', 'b', [1, 2], { priority: 7 }), running('rt', 'b', [3], { priority: 9, type: 'ai_inference_realtime' }),
    ];
    const [p] = planPass(fleet({ a: 3, b: 3 }, holders), [wl('w1', { type: 'ai_inference_realtime', priority: 1, gpuCount: 1 })], DEFAULT_POLICY, NOW);
    expect(p).toMatchObject({ siteId: 'a', preempt: ['p9'], gpuIds: ['gpu-a-3'] });
  });

  it('never preempts equal priority; batch does not preempt inside the guaranteed runtime, realtime does', () => {
    const young = running('y', 'a', [1], { priority: 9, startedAtMs: NOW - 1000 });
    expect(planPass(fleet({ a: 1 }, [young]), [wl('w1', { priority: 3 })], DEFAULT_POLICY, NOW)).toEqual([]);
    expect(planPass(fleet({ a: 1 }, [young]), [wl('w1', { priority: 3, type: 'ai_inference_realtime' })], DEFAULT_POLICY, NOW)[0]!.preempt).toEqual(['y']);
    expect(planPass(fleet({ a: 1 }, [running('eq', 'a', [1], { priority: 3 })]), [wl('w1', { priority: 3, type: 'ai_inference_realtime' })], DEFAULT_POLICY, NOW)).toEqual([]);
  });
});

describe('queue', () => {
  it('is FIFO within a priority and priority 1 first; requeued work keeps its place', () => {
    const q = new WorkloadQueue();
    for (const [id, p] of [['w1', 5], ['w2', 1], ['w3', 5], ['w4', 1]] as const) q.add(wl(id, { priority: p }));
    expect([...q.ordered(NOW, 0)].map((w) => w.id)).toEqual(['w2', 'w4', 'w1', 'w3']);
    q.remove('w1');
    q.add(wl('w1', { priority: 5 }));
    expect([...q.ordered(NOW, 0)].map((w) => w.id)).toEqual(['w2', 'w4', 'w1', 'w3']);
  });

  it('ages: a priority-8 workload that waited 5 aging periods ranks with fresh priority 3, ahead by age', () => {
    const q = new WorkloadQueue();
    q.add(wl('w1', { priority: 8, submittedAtMs: NOW - 5 * 60_000 }));
    q.add(wl('w2', { priority: 3 }));
    q.add(wl('w3', { priority: 2 }));
    expect([...q.ordered(NOW, 60_000)].map((w) => w.id)).toEqual(['w3', 'w1', 'w2']);
  });
});

describe('workload state machine', () => {
  it('allows the lifecycle and refuses the rest', () => {
    for (const [a, b] of [['pending', 'scheduled'], ['scheduled', 'running'], ['running', 'preempted'], ['preempted', 'pending'], ['running', 'completed'], ['scheduled', 'pending']] as const) {
      expect(canTransition(a, b)).toBe(true);
    }
    expect(() => assertTransition('completed', 'running')).toThrow(/completed to running/);
    expect(canTransition('pending', 'running')).toBe(false);
    expect(canTransition('cancelled', 'pending')).toBe(false);
  });
});
