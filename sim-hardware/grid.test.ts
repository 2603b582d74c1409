import { describe, expect, it } from 'vitest';
import { createManualClock } from './clock.js';
import { createGridSim, createLiveGrid, GridEventError } from './grid.js';

const START = Date.parse('2025-06-01T00:00:00Z');

describe('grid frequency simulator', () => {
  it('holds 60 Hz within ±0.01 Hz, deterministically', () => {
    const a = createGridSim({ seed: 1, regions: ['ercot'], startMs: START });
    const b = createGridSim({ seed: 1, regions: ['ercot'], startMs: START });
    const hz = Array.from({ length: 600 }, (_, i) => a.at('ercot', START + i * 1000).hz);
    expect(hz.every((f) => Math.abs(f - 60) <= 0.01)).toBe(true);
    expect(new Set(hz).size).toBeGreaterThan(5);
    expect(b.at('ercot', START + 123_000)).toEqual(a.at('ercot', START + 123_000));
  });

  it('follows a scheduled event in its region only, by ISO time or seconds after start', () => {
    const g = createGridSim({
      seed: 1,
      regions: ['ercot', 'ieso'],
      startMs: START,
      events: [
        { region: 'ercot', at: '2025-06-01T00:10:00Z', hz: 59.6, duration_s: 30 },
        { region: 'ieso', at: 60, hz: 59.9, duration_s: 5 },
      ],
    });
    expect(g.at('ercot', START + 600_000).hz).toBe(59.6);
    expect(g.at('ercot', START + 629_999).hz).toBe(59.6);
    expect(Math.abs(g.at('ercot', START + 630_000).hz - 60)).toBeLessThanOrEqual(0.01);
    expect(Math.abs(g.at('ieso', START + 600_000).hz - 60)).toBeLessThanOrEqual(0.01);
    expect(g.at('ieso', START + 62_000)).toEqual({ region: 'ieso', ts: '2025-06-01T00:01:02.000Z', hz: 59.9 });
  });

  it('rejects bad events, naming each', () => {
    expect(() => createGridSim({ seed: 1, regions: ['ercot'], startMs: START, events: [{ region: 'pjm', at: 'soon', hz: 0, duration_s: 0 }] })).toThrow(GridEventError);
    try {
      createGridSim({ seed: 1, regions: ['ercot'], startMs: START, events: [{ region: 'pjm', at: 'soon', hz: 0, duration_s: 0 }] });
    } catch (e) {
      expect((e as GridEventError).problems).toHaveLength(4);
    }
  });

  it('live polling never skips a short event even when the clock jumps past it', () => {
    const clock = createManualClock(START);
    const live = createLiveGrid({ seed: 1, regions: ['ercot', 'ieso'], clock, events: [{ region: 'ercot', at: 100, hz: 59.5, duration_s: 2 }] });
    expect(live.poll().map((r) => r.region)).toEqual(['ercot', 'ieso']);
    expect(live.poll()).toEqual([]); // same 1 s slot
    clock.advance(300_000);
    const got = live.poll();
    expect(got.filter((r) => r.region === 'ercot').map((r) => r.hz)[0]).toBe(59.5);
    expect(got.find((r) => r.hz === 59.5)?.ts).toBe('2025-06-01T00:01:40.000Z');
    expect(got.filter((r) => r.region === 'ieso')).toHaveLength(1);
  });
});
