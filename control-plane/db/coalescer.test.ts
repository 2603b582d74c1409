import { describe, expect, it } from 'vitest';
import { BatchTimeoutError, createCoalescer } from './coalescer.js';

describe('createCoalescer', () => {
  it('runs the calls of one turn as one batch, at most maxItems at a time, each caller getting its own outcome', async () => {
    const batches: number[][] = [];
    const double = createCoalescer<number, number>({
      maxItems: 4,
      run: async (xs) => {
        batches.push(xs);
        return xs.map((x) => (x === 5 ? new Error('five') : x * 2));
      },
    });
    const out = await Promise.allSettled([1, 2, 3, 4, 5, 6].map((x) => double(x)));
    expect(batches).toEqual([[1, 2, 3, 4], [5, 6]]);
    expect(out.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([2, 4, 6, 8, 'five', 12]);
  });

  it('rejects every caller of a batch whose run throws, and runs the next batch after it', async () => {
    let calls = 0;
    const f = createCoalescer<string, string>({
      run: (xs) => {
        if (++calls === 1) throw new Error('down');
        return Promise.resolve(xs);
      },
    });
    const first = await Promise.allSettled([f('a'), f('b')]);
    expect(first.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    await expect(f('c')).resolves.toBe('c');
  });

  it('ends a batch before the item that would take it past maxWeight, and takes a heavy item alone', async () => {
    const batches: number[][] = [];
    const f = createCoalescer<number, number>({
      weight: (x) => x, maxWeight: 10,
      run: async (xs) => (batches.push(xs), xs),
    });
    await Promise.all([4, 5, 3, 30, 2].map((x) => f(x)));
    expect(batches).toEqual([[4, 5], [3], [30], [2]]);
  });

  it('fails the callers of a batch that never settles once timeoutMs passes, and runs the next batch', async () => {
    let calls = 0;
    const f = createCoalescer<string, string>({
      timeoutMs: 50,
      run: (xs) => (++calls === 1 ? new Promise<string[]>(() => {}) : Promise.resolve(xs)),
    });
    await expect(f('stuck')).rejects.toBeInstanceOf(BatchTimeoutError);
    await expect(f('next')).resolves.toBe('next');
  });

  it('rejects a caller the run gave no outcome for', async () => {
    const f = createCoalescer<number, number>({ run: async () => [] });
    await expect(f(1)).rejects.toThrow(/no outcome/);
  });
});
