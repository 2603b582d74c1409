import { describe, expect, it } from 'vitest';
import { createManualClock, createSimClock } from './clock.js';

describe('clock', () => {
  it('manual clock moves only when advanced', () => {
    const c = createManualClock(1000);
    expect(c.now()).toBe(1000);
    c.advance(250);
    expect(c.now()).toBe(1250);
    expect(() => c.advance(-1)).toThrow(RangeError);
  });

  it('sim clock maps real elapsed time × speed', () => {
    let real = 500;
    const c = createSimClock({ startMs: 1_000_000, speed: 60, realNowMs: () => real });
    expect(c.now()).toBe(1_000_000);
    real += 1000; // one real second is one sim minute
    expect(c.now()).toBe(1_060_000);
    expect(() => createSimClock({ speed: 0 })).toThrow(RangeError);
  });
});
