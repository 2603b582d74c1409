import { describe, expect, it } from 'vitest';
import { FeedsConfigError, loadFeedsConfig } from './feeds-config.js';

const problemsOf = (f: () => unknown): string[] => {
  try {
    f();
  } catch (e) {
    if (e instanceof FeedsConfigError) return e.problems;
    throw e;
  }
  return [];
};

describe('feeds config', () => {
  it('defaults to the three demo sites, both simulators on', () => {
    const c = loadFeedsConfig([], {});
    expect(c.mqttUrl).toBe('mqtt://127.0.0.1:1883');
    expect(c.sites).toEqual([
      { id: 'texas-1', region: 'ercot' },
      { id: 'texas-2', region: 'ercot' },
      { id: 'canada-1', region: 'ieso' },
    ]);
    expect(c.market && c.grid).toBe(true);
  });

  it('takes flags over env', () => {
    const c = loadFeedsConfig(['--market', 'on', '--speed', '288', '--seed', '7', '--sites', 'a-1:ercot'], { HCP_MARKET_SIM: 'off', HCP_GRID_SIM: 'off' });
    expect(c).toMatchObject({ market: true, grid: false, speed: 288, seed: '7', sites: [{ id: 'a-1', region: 'ercot' }] });
  });

  it('reads grid events from a file or HCP_GRID_EVENTS', () => {
    const ev = [{ region: 'ercot', at: 60, hz: 59.6, duration_s: 30 }];
    expect(loadFeedsConfig(['--grid-events', 'ev.json'], {}, () => JSON.stringify(ev)).gridEvents).toEqual(ev);
    expect(loadFeedsConfig([], { HCP_GRID_EVENTS: JSON.stringify(ev) }).gridEvents).toEqual(ev);
  });

  it('names every bad value', () => {
    const p = problemsOf(() =>
      loadFeedsConfig(['--mqtt', 'http://x', '--speed', '0', '--sites', 'Texas:ercot,b:c:d', '--market', 'maybe', '--start', 'yesterday'], {
        HCP_GRID_SIM: 'nah',
        HCP_GRID_EVENTS: '[{"region":"pjm","at":1,"hz":59,"duration_s":1},{}]',
      }),
    );
    expect(p).toHaveLength(9);
    expect(p.join('\n')).toMatch(/--mqtt.*\n--speed.*\n--start.*\n--sites: "Texas:ercot".*\n--sites: "b:c:d".*\n--market.*\nHCP_GRID_SIM.*\nHCP_GRID_EVENTS\[1\].*\ngrid event region "pjm"/);
    expect(problemsOf(() => loadFeedsConfig(['--bogus'], {}))[0]).toMatch(/bogus/);
  });
});
