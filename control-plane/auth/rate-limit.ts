// A token bucket per key (Kong's and Envoy's rate limiting): each key may make `perSecond`
// requests a second on average and `burst` at once. One caller's flood is answered 429 or
// RESOURCE_EXHAUSTED and costs nobody else anything. Buckets of keys that have gone quiet are
// full again by definition, so they are dropped rather than kept.
export interface RateLimiter {
  /** takes one token: null when allowed, else the seconds to wait */
  take(key: string, nowMs?: number): number | null;
}

export function createRateLimiter(o: { perSecond: number; burst: number; maxKeys?: number }): RateLimiter {
  const buckets = new Map<string, { tokens: number; atMs: number }>();
  const maxKeys = o.maxKeys ?? 100_000;
  const fullAfterMs = (o.burst / o.perSecond) * 1000;
  return {
    take(key, nowMs = performance.now()) {
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) {
          for (const [k, v] of buckets) if (nowMs - v.atMs >= fullAfterMs) buckets.delete(k);
        }
        b = { tokens: o.burst, atMs: nowMs };
        buckets.set(key, b);
      }
      b.tokens = Math.min(o.burst, b.tokens + ((nowMs - b.atMs) / 1000) * o.perSecond);
      b.atMs = nowMs;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return null;
      }
      return Math.max(1, Math.ceil((1 - b.tokens) / o.perSecond));
    },
  };
}
