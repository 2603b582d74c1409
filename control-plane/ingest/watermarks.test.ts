import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Watermarks } from './watermarks.js';

describe('Watermarks', () => {
  it('rises over contiguous commits, waits at a gap, and passes it once filled (told once per rise)', () => {
    const w = new Watermarks();
    const told: number[] = [];
    w.onAdvance((_s, _st, seq) => told.push(seq));
    w.committed('s', 'a', [1, 2, 4, 5]);
    expect(w.get('s', 'a')).toBe(2);
    expect(w.isCommitted('s', 'a', 4)).toBe(true);
    expect(w.isCommitted('s', 'a', 3)).toBe(false);
    w.committed('s', 'a', [3]);
    expect(w.get('s', 'a')).toBe(5);
    expect(told).toEqual([2, 5]);
    // a replay below changes nothing
    w.committed('s', 'a', [1]);
    expect(told).toEqual([2, 5]);
  });

  it('jumps past what is below the spool\'s first_seq (gone), and keeps going through what was committed above', () => {
    const w = new Watermarks();
    w.committed('s', 'a', [1, 2, 10, 11]);
    w.spool('s', 'a', 10, 20);
    expect(w.get('s', 'a')).toBe(11);
    expect(w.agentLast('s', 'a')).toBe(19);
    // gone is not committed: 5 is not a cheap duplicate, 1 still is
    expect(w.isCommitted('s', 'a', 5)).toBe(false);
    expect(w.isCommitted('s', 'a', 11)).toBe(true);
    // a first_seq below the watermark changes nothing
    w.spool('s', 'a', 3, 20);
    expect(w.get('s', 'a')).toBe(11);
  });

  it('takes the ledger\'s word (raise) and never goes down', () => {
    const w = new Watermarks();
    w.raise('s', 'a', 7);
    w.raise('s', 'a', 3);
    expect(w.get('s', 'a')).toBe(7);
    w.committed('s', 'a', [9, 8]);
    expect(w.get('s', 'a')).toBe(9);
  });

  it('keeps a bounded number of streams per site and waiting seqs per stream', () => {
    const w = new Watermarks({ maxStreamsPerSite: 2, maxAbove: 3 });
    w.committed('s', 'old', [1]);
    w.committed('s', 'b', [1]);
    w.committed('s', 'c', [1]);
    expect(w.get('s', 'old')).toBe(0);
    expect(w.get('s', 'c')).toBe(1);
    w.committed('s', 'c', [3, 4, 5, 6]);
    // 6 was not kept: filling the gap reaches 5, and the ledger read brings the rest
    w.committed('s', 'c', [2]);
    expect(w.get('s', 'c')).toBe(5);
  });

  it('is the longest committed prefix whatever the order of commits (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), fc.integer({ min: 1, max: 8 }), (seqs, chunk) => {
        const w = new Watermarks();
        for (let i = 0; i < seqs.length; i += chunk) w.committed('s', 'a', seqs.slice(i, i + chunk));
        const set = new Set(seqs);
        let want = 0;
        while (set.has(want + 1)) want++;
        expect(w.get('s', 'a')).toBe(want);
      }),
    );
  });
});
