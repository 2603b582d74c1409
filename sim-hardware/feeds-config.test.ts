import { describe, expect, it } from 'vitest';
import { FeedsConfigError, feedsClientOptions, loadFeedsConfig } from './feeds-config.js';

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

describe('feeds login', () => {
  const TOKEN = 'hcp_feeds_secret_0123456789abcdef';

  it('takes the feed key from HCP_FEEDS_TOKEN or --token-file, never from a flag', () => {
    expect(loadFeedsConfig([], { HCP_FEEDS_TOKEN: TOKEN }).mqttLogin).toEqual({ username: 'feeds', password: TOKEN });
    const files: Record<string, string> = { 'feeds.key': `${TOKEN}\n`, 'ca.pem': '-----BEGIN CERTIFICATE-----\n' };
    const c = loadFeedsConfig(['--token-file', 'feeds.key', '--username', 'prices-ercot', '--ca-file', 'ca.pem', '--mqtt', 'mqtts://cp:8883'], {}, (p) => files[p]!);
    expect(c.mqttLogin).toEqual({ username: 'prices-ercot', password: TOKEN });
    expect(c.ca).toBe(files['ca.pem']);
    expect(problemsOf(() => loadFeedsConfig(['--token', TOKEN], {}))[0]).toMatch(/token/);
    // the old variables are gone: they log in no one
    expect(loadFeedsConfig([], { HCP_FEEDS_MQTT_TOKEN: TOKEN, HCP_FEEDS_MQTT_USERNAME: 'x' }).mqttLogin).toBeUndefined();
  });

  it('names a bad credential without showing it', () => {
    const p = problemsOf(() => loadFeedsConfig(['--token-file', 'bad.key', '--username', 'no spaces'], {}, () => 'not-a-key-but-a-secret'));
    expect(p).toHaveLength(2);
    expect(p.join('\n')).not.toMatch(/not-a-key-but-a-secret/);
    expect(problemsOf(() => loadFeedsConfig([], { HCP_FEEDS_TOKEN: 'oops-secret' })).join('\n')).not.toMatch(/oops-secret/);
    expect(problemsOf(() => loadFeedsConfig(['--token-file', 'k'], { HCP_FEEDS_TOKEN: TOKEN }))).toHaveLength(1);
    expect(problemsOf(() => loadFeedsConfig(['--token-file', 'missing'], {}, () => { throw Object.assign(new Error('no'), { code: 'ENOENT' }); }))[0]).toMatch(/ENOENT/);
  });

  it('uses an hcp-key-<name>-<random> client id with a login, and a free one without', () => {
    const logged = feedsClientOptions(loadFeedsConfig(['--username', 'prices'], { HCP_FEEDS_TOKEN: TOKEN }), () => 'ab12cd34');
    expect(logged).toMatchObject({ clientId: 'hcp-key-prices-ab12cd34', username: 'prices', password: TOKEN });
    expect(feedsClientOptions(loadFeedsConfig([], {})).clientId).toMatch(/^feeds-[0-9a-f]{8}$/);
    expect(feedsClientOptions(loadFeedsConfig([], {})).clientId).not.toBe(feedsClientOptions(loadFeedsConfig([], {})).clientId);
  });
});
