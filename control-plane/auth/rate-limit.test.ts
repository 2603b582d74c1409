import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './rate-limit.js';

describe('per-key token bucket', () => {
  it('allows the burst, then the sustained rate, and says how long to wait', () => {
    const l = createRateLimiter({ perSecond: 10, burst: 5 });
    for (let i = 0; i < 5; i++) expect(l.take('a', 0)).toBeNull();
    expect(l.take('a', 0)).toBe(1);
    // another key is untouched by a's flood
    expect(l.take('b', 0)).toBeNull();
    // 100 ms later one token is back
    expect(l.take('a', 100)).toBeNull();
    expect(l.take('a', 100)).not.toBeNull();
    // a quiet key fills up again, but never beyond the burst
    for (let i = 0; i < 5; i++) expect(l.take('a', 60_000)).toBeNull();
    expect(l.take('a', 60_000)).not.toBeNull();
  });

  it('forgets quiet keys when it holds too many', () => {
    const l = createRateLimiter({ perSecond: 1, burst: 1, maxKeys: 2 });
    expect(l.take('a', 0)).toBeNull();
    expect(l.take('b', 0)).toBeNull();
    expect(l.take('c', 5_000)).toBeNull();
    expect(l.take('a', 5_000)).toBeNull();
  });
});
