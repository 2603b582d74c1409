// Backtests off the event loop: each on a worker thread of its own (backtest-worker.ts), a few at
// a time. The machine's cores are the agents' ingest, the scheduler and the API's too, so one runs
// at once by default and a few more wait; past that a request is refused (503, retry later)
// rather than queued without bound.
import { Worker } from 'node:worker_threads';
import { HcpError } from '../errors.js';
import type { BacktestReply, BacktestRequest } from './protocol.js';

export interface BacktestRunnerOptions {
  /** backtests running at once; default 1 */
  maxRunning?: number;
  /** backtests waiting for one to finish; default 4 */
  maxWaiting?: number;
  /** a run still going after this is stopped; default 60 s (720 hours take ~4 s on one core) */
  timeoutMs?: number;
}

export interface BacktestRunner {
  run(req: BacktestRequest): Promise<BacktestReply>;
  /** stops the running backtests and refuses the waiting ones; safe to call twice */
  close(): Promise<void>;
}

export function createBacktestRunner(o: BacktestRunnerOptions = {}): BacktestRunner {
  const maxRunning = o.maxRunning ?? 1;
  const maxWaiting = o.maxWaiting ?? 4;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const running = new Set<Worker>();
  const waiting: Array<() => void> = [];
  let closed = false;

  const once = (req: BacktestRequest): Promise<BacktestReply> =>
    new Promise((resolve, reject) => {
      const w = new Worker(new URL('./backtest-worker-boot.mjs', import.meta.url), { workerData: req });
      running.add(w);
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        running.delete(w);
        void w.terminate();
        f();
        waiting.shift()?.();
      };
      const timer = setTimeout(() => settle(() => reject(new HcpError('unavailable', `the backtest took longer than ${timeoutMs / 1000} s and was stopped`, 'backtest_timeout'))), timeoutMs);
      w.once('message', (m: BacktestReply) => settle(() => resolve(m)));
      w.once('error', (err) => settle(() => reject(new Error(`the backtest failed: ${err.message}`, { cause: err }))));
      w.once('exit', (code) => settle(() => reject(closed ? new HcpError('unavailable', 'the control plane is shutting down', 'shutting_down') : new Error(`the backtest's thread exited (${code})`))));
    });

  return {
    async run(req) {
      if (closed) throw new HcpError('unavailable', 'the control plane is shutting down', 'shutting_down');
      if (running.size >= maxRunning) {
        if (waiting.length >= maxWaiting) throw new HcpError('unavailable', `${running.size + waiting.length} backtests are running or waiting; retry shortly`, 'backtest_busy');
        await new Promise<void>((resolve) => waiting.push(resolve));
        if (closed) throw new HcpError('unavailable', 'the control plane is shutting down', 'shutting_down');
      }
      return once(req);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const wake of waiting.splice(0)) wake();
      await Promise.all([...running].map((w) => w.terminate()));
    },
  };
}
