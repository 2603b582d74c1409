import { describe, expect, it } from 'vitest';
import { createBacktestRunner } from './runner.js';

describe('backtest runner', () => {
  it('runs on a worker thread, refuses past its queue, and stops its runs on close', async () => {
    const runner = createBacktestRunner({ maxRunning: 1, maxWaiting: 0 });
    const first = runner.run({ seed: 3, hours: 2 });
    await expect(runner.run({ seed: 4, hours: 2 })).rejects.toMatchObject({ code: 'unavailable', reason: 'backtest_busy' });
    const r = await first;
    expect(r.ok && r.report.summary).toMatchObject({ seed: 3, steps: 24 });
    // a run after the first finished is taken again
    const second = runner.run({ seed: 5, hours: 720 });
    await runner.close();
    await expect(second).rejects.toMatchObject({ reason: 'shutting_down' });
    await runner.close();
    await expect(runner.run({ seed: 1, hours: 1 })).rejects.toMatchObject({ reason: 'shutting_down' });
  }, 60_000);
});
