// Figures the benchmarks print.

/** nearest-rank percentile (p in 0–100); NaN for no samples */
export function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const round1 = (x: number): number => Math.round(x * 10) / 10;
