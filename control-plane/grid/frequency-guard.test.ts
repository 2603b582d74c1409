import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createFrequencyGuard, type GuardAction } from './frequency-guard.js';

const cfg = { tripHz: 59.7, recoverHz: 59.95, holdS: 10, stages: 4, stageIntervalS: 5 };
const S = 1000;

describe('frequency guard', () => {
  it('holds at 60 Hz and in the dead band above the trip', () => {
    const g = createFrequencyGuard(cfg);
    expect(g.reading('ercot', 60.0, 0)).toEqual([]);
    expect(g.reading('ercot', 59.71, 1 * S)).toEqual([]);
    expect(g.state('ercot')).toEqual({ phase: 'normal' });
  });

  it('curtails once at the trip, restores in stages after the hold, then is normal', () => {
    const g = createFrequencyGuard(cfg);
    expect(g.reading('ercot', 59.6, 0)).toEqual([{ kind: 'curtail', region: 'ercot', hz: 59.6 }]);
    expect(g.reading('ercot', 59.5, 1 * S)).toEqual([]); // still low: no second curtail
    expect(g.reading('canada', 60, 1 * S)).toEqual([]); // other regions untouched
    expect(g.holding('ercot')).toBe(true);
    expect(g.holding('canada')).toBe(false);
    expect(g.reading('ercot', 60.0, 2 * S)).toEqual([]); // recovered, hold starts
    expect(g.tick(11 * S)).toEqual([]);
    expect(g.tick(12 * S)).toEqual([{ kind: 'restore', region: 'ercot', stage: 1, of: 4 }]);
    expect(g.tick(16 * S)).toEqual([]);
    expect(g.tick(17 * S)).toEqual([{ kind: 'restore', region: 'ercot', stage: 2, of: 4 }]);
    expect(g.tick(27 * S)).toEqual([
      { kind: 'restore', region: 'ercot', stage: 3, of: 4 },
      { kind: 'restore', region: 'ercot', stage: 4, of: 4 },
      { kind: 'restored', region: 'ercot', lowestHz: 59.5 },
    ]);
    expect(g.holding('ercot')).toBe(false);
  });

  it('restarts the hold when the frequency sags below recovery, and curtails again at the trip mid-restore', () => {
    const g = createFrequencyGuard(cfg);
    g.reading('ercot', 59.6, 0);
    g.reading('ercot', 60, 1 * S);
    g.reading('ercot', 59.8, 5 * S); // sag: hold starts over when it recovers
    expect(g.tick(20 * S)).toEqual([]);
    g.reading('ercot', 60, 21 * S);
    expect(g.tick(31 * S)).toEqual([{ kind: 'restore', region: 'ercot', stage: 1, of: 4 }]);
    g.reading('ercot', 59.9, 33 * S); // pause restoring
    g.reading('ercot', 60, 34 * S);
    expect(g.tick(44 * S)).toEqual([{ kind: 'restore', region: 'ercot', stage: 2, of: 4 }]); // continues where it paused
    expect(g.reading('ercot', 59.65, 45 * S)).toEqual([{ kind: 'curtail', region: 'ercot', hz: 59.65 }]);
  });

  it('refuses a config that could never recover', () => {
    expect(() => createFrequencyGuard({ ...cfg, recoverHz: 59.5 })).toThrow(/recover_hz/);
  });

  it('property: a reading at the trip leaves the region tripped, a trip from normal curtails, stages count up', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.double({ min: 59.3, max: 60.2, noNaN: true }), fc.integer({ min: 0, max: 20_000 })), { maxLength: 60 }), (steps) => {
        const g = createFrequencyGuard(cfg);
        let t = 0;
        for (const [hz, dt] of steps) {
          t += dt;
          const before = g.state('ercot').phase;
          const acts: GuardAction[] = [...g.tick(t), ...g.reading('ercot', hz, t)];
          if (hz <= cfg.tripHz) {
            expect(g.state('ercot').phase).toBe('tripped');
            if (before === 'normal') expect(acts.at(-1)).toEqual({ kind: 'curtail', region: 'ercot', hz });
          }
          // restore stages only ever count up within one event
          const stages = acts.filter((a) => a.kind === 'restore').map((a) => (a as { stage: number }).stage);
          expect([...stages].sort((a, b) => a - b)).toEqual(stages);
        }
      }),
    );
  });
});
