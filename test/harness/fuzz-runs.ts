// How many cases the fuzz suites run, and how to replay one. `npm test` runs the CI size;
// `npm run fuzz` sets HCP_FUZZ_RUNS (a multiplier of every suite's case count, and of its time
// budget). A failure prints fast-check's seed and path; replay it with
//   HCP_FUZZ_SEED=<seed> HCP_FUZZ_PATH=<path> npx vitest run test/fuzz-rest.test.ts -t '<test name>'
import fc from 'fast-check';

export const FUZZ_SCALE = Math.max(1, Number(process.env.HCP_FUZZ_RUNS ?? 1) || 1);

/** fast-check parameters for a property that runs `ciRuns` cases in CI */
export function fuzzParams<T>(ciRuns: number, budgetMs: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  const seed = process.env.HCP_FUZZ_SEED ? Number(process.env.HCP_FUZZ_SEED) : undefined;
  const path = process.env.HCP_FUZZ_PATH || undefined;
  return {
    numRuns: Math.round(ciRuns * FUZZ_SCALE),
    ...(seed !== undefined ? { seed } : {}),
    ...(path !== undefined ? { path } : {}),
    // Shrinking against a live server can take long: past the budget fast-check stops and reports
    // what it has (the counterexample shrunk so far, its seed and path). A run that ran out of
    // time before its cases were done fails too, rather than passing on fewer cases.
    plugins: [fc.interruptAfterTimeLimit(fuzzBudget(budgetMs), { failOnInterrupt: true }) as fc.Plugin<T>],
    reporter: shortReport,
    ...extra,
  };
}

/** long runs of one character, as fuzzers make them, written as `a…(×70000)` */
export function clip(s: string, max = 6000): string {
  const short = s.replace(/(.)\1{63,}/gsu, (run, c: string) => `${c}…(×${[...run].length})`);
  return short.length > max ? `${short.slice(0, max)}… (${short.length - max} more characters)` : short;
}

/**
 * fast-check's own report (seed, path, counterexample, shrinks) and the error, with the
 * fuzzers' 70,000-character strings shortened so the report can be read
 */
function shortReport<T>(out: fc.RunDetails<T>): void {
  if (!out.failed) return;
  const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance ?? '');
  throw new Error(`${clip(fc.defaultReportMessage(out) ?? 'property failed')}\n\nError: ${clip(cause, 4000)}`);
}

/** a property's time budget at this scale */
export function fuzzBudget(ciMs: number): number {
  return ciMs * FUZZ_SCALE;
}

/** the vitest timeout of a test holding a property with this CI budget: the budget and room to report */
export function fuzzTestTimeout(ciMs: number): number {
  return fuzzBudget(ciMs) + 30_000;
}
