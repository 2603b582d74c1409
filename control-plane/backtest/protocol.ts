// What the backtest runner (runner.ts) and its worker thread (backtest-worker.ts) say to each other,
// and the bounds the API holds a request to.
import type { BacktestReport } from '../economics/backtest-report.js';

/** the decision interval, as in `npm run backtest` (the power price's 5-minute interval) */
export const STEP_S = 300;
/** 30 days: ~8,600 decision steps, a few seconds of CPU on one core */
export const MAX_BACKTEST_HOURS = 720;
/** a seeded path starts here, as `npm run backtest -- --seed N` does, so their figures agree */
export const BACKTEST_START_MS = Date.parse('2025-06-01T00:00:00Z');

export type BacktestRequest = { seed: number; hours: number } | { pricesCsv: string };

export type BacktestReply =
  | { ok: true; report: BacktestReport }
  /** the input is refused: the field, what is wrong with it, each problem (a CSV's lines) */
  | { ok: false; field: string; message: string; problems: string[] };
