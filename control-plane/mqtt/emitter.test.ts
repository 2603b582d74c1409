import { describe, expect, it } from 'vitest';
import { createEmitter } from './emitter.js';

describe('createEmitter', () => {
  it('delivers every message once and in order when most of them wait for a slot', async () => {
    // `length` (what waits) is mqemitter's, missing from its typings
    const mq = createEmitter(2) as ReturnType<typeof createEmitter> & { length: number };
    const got: number[] = [];
    // each delivery holds its slot until a later turn, so 998 of 1,000 wait in the queues
    mq.on('hcp/v1/sites/+/telemetry', (m, done) => {
      got.push((m as unknown as { n: number }).n);
      setImmediate(done);
    });
    const acked: number[] = [];
    let waited = 0;
    for (let n = 0; n < 1000; n++) {
      mq.emit({ topic: `hcp/v1/sites/s${n % 7}/telemetry`, n } as never, () => void acked.push(n));
      waited = Math.max(waited, mq.length);
    }
    expect(waited).toBe(998);
    await new Promise<void>((resolve) => {
      const check = () => (acked.length === 1000 ? resolve() : setImmediate(check));
      check();
    });
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(acked).toEqual(got);
    expect(mq.length).toBe(0);
  });
});
