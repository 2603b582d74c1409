// A backtest's worker thread starts here (runner.ts): tsx's API compiles backtest-worker.ts. A
// worker thread on Node 20 does not inherit tsx's loader from `tsx main.ts`, nor vitest's
// transform, so the worker registers it itself (as db/pglite-worker-boot.mjs does).
import { tsImport } from 'tsx/esm/api';

await tsImport('./backtest-worker.ts', import.meta.url);
