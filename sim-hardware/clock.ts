// Time source for the simulators. Devices never read the wall clock themselves: a sim clock can
// run faster than real time (a 4-minute S21 start-up in seconds of a demo), and a manual clock
// lets tests step time exactly.

export interface Clock {
  /** current sim time, unix milliseconds */
  now(): number;
}

export interface ManualClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export interface SimClockOptions {
  /** sim time at creation; default the real time at creation */
  startMs?: number;
  /** sim milliseconds per real millisecond; 1 = real time */
  speed: number;
  /** real monotonic time source in ms; default performance.now (injectable for tests) */
  realNowMs?: () => number;
}

export function createSimClock(opts: SimClockOptions): Clock {
  if (!(opts.speed > 0) || !Number.isFinite(opts.speed)) {
    throw new RangeError(`speed must be a positive finite number, got ${opts.speed}`);
  }
  const realNow = opts.realNowMs ?? (() => performance.now());
  const startMs = opts.startMs ?? Date.now();
  const realStart = realNow();
  // Monotonic real time, so the sim clock never runs backwards when the wall clock is adjusted.
  return { now: () => startMs + (realNow() - realStart) * opts.speed };
}

export function createManualClock(startMs = 0): ManualClock {
  let t = startMs;
  return {
    now: () => t,
    advance: (ms) => {
      if (!(ms >= 0)) throw new RangeError(`cannot advance by ${ms} ms`);
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}
