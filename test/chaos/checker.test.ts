// The chaos checker itself (test/chaos/harness.ts compareRows): a sample stored once is present,
// twice is a duplicate, never is missing, and a seq the tap never saw between two it did is a
// lost batch. The scenarios' verdicts rest on it, so it is held against a plain recount.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareRows, rowKey, type SeenBatch } from './harness.js';

const batch = (seq: number, devices: number, t: number): SeenBatch => ({ site: 's', seq, samples: Array.from({ length: devices }, (_, i) => [`d${i}`, t] as [string, number]) });

describe('the chaos checker', () => {
  it('counts present, missing, duplicated and lost batches', () => {
    const streams = new Map([['s/a', new Map([[1, batch(1, 2, 1000)], [2, batch(2, 2, 2000)], [4, batch(4, 2, 4000)]])]]);
    const stored = new Map([[rowKey('d0', 1000), 1], [rowKey('d1', 1000), 2], [rowKey('d0', 2000), 1], [rowKey('d0', 4000), 1], [rowKey('d1', 4000), 1]]);
    // seq 3 never seen: 2 samples lost; d1@2000 never stored; d1@1000 stored twice
    expect(compareRows(streams, stored)).toEqual({ rows_expected: 8, rows_present: 5, rows_missing: 3, rows_duplicated: 1, batches_missing: 1, gaps: ['s/a:3-3'], streams: 1 });
  });

  it('takes a gap from its resolver: its span of time, vouched rows, lost batches', () => {
    const streams = new Map([['s/a', new Map([[1, batch(1, 2, 1000)], [5, batch(5, 2, 5000)]])]]);
    const stored = new Map([[rowKey('d0', 1000), 1], [rowKey('d1', 1000), 1], [rowKey('d0', 5000), 1], [rowKey('d1', 5000), 1]]);
    const runs: unknown[] = [];
    const r = compareRows(streams, stored, (run) => {
      runs.push(run);
      return { expected: 6, present: 4, duplicated: 1, lost: 1 };
    });
    expect(runs).toEqual([{ stream: 's/a', site: 's', from: 2, to: 4, perBatch: 2, afterMs: 1000, beforeMs: 5000 }]);
    expect(r).toEqual({ rows_expected: 10, rows_present: 8, rows_missing: 2, rows_duplicated: 1, batches_missing: 1, gaps: ['s/a:2-4'], streams: 1 });
  });

  it('agrees with a recount for any seen seqs and stored counts', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 160, maxLength: 160 }),
      (seqs, devices, counts) => {
        const s = new Map(seqs.map((q) => [q, batch(q, devices, q * 1000)]));
        const stored = new Map<string, number>();
        let k = 0;
        for (const q of seqs) for (let i = 0; i < devices; i++) stored.set(rowKey(`d${i}`, q * 1000), counts[k++]!);
        const span = Math.max(...seqs) - Math.min(...seqs) + 1;
        const r = compareRows(new Map([['s/a', s]]), stored);
        const seen = [...stored.values()];
        expect(r.batches_missing).toBe(span - seqs.length);
        expect(r.rows_expected).toBe(span * devices);
        expect(r.rows_present).toBe(seen.filter((n) => n > 0).length);
        expect(r.rows_duplicated).toBe(seen.reduce((a, n) => a + Math.max(0, n - 1), 0));
        expect(r.rows_present + r.rows_missing).toBe(r.rows_expected);
      },
    ));
  });
});
