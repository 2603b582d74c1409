import { describe, expect, it } from 'vitest';
import { formatMarketCsv, MarketCsvError, parseMarketCsv } from './market-csv.js';
import { marketTicks } from './market.js';

describe('price CSV', () => {
  it('parses ticks in any column order and sorts them by time', () => {
    const csv = ['# my ERCOT history', 'price,site,feed,ts', '0.05,texas-1,power,2025-06-01T00:05:00Z', '', '95000,,btc_usd,2025-06-01T00:00:00Z', '-0.002,texas-1,power,2025-06-01T01:00:00-05:00'].join('\n');
    expect(parseMarketCsv(csv)).toEqual([
      { feed: 'btc_usd', ts: '2025-06-01T00:00:00.000Z', price: 95000 },
      { feed: 'power', site: 'texas-1', ts: '2025-06-01T00:05:00.000Z', price: 0.05 },
      { feed: 'power', site: 'texas-1', ts: '2025-06-01T06:00:00.000Z', price: -0.002 },
    ]);
  });

  it('reports every bad line with its number', () => {
    const csv = [
      'ts,feed,site,price',
      '2025-06-01T00:00:00Z,btc_usd,,90000',
      '2025-06-01 00:00,btc_usd,,90000',
      '2025-06-01T00:00:00Z,gas,,3',
      '2025-06-01T00:00:00Z,power,,0.04',
      '2025-06-01T00:00:00Z,gpu_spot,texas-1,abc',
    ].join('\n');
    let err: unknown;
    try {
      parseMarketCsv(csv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MarketCsvError);
    const problems = (err as MarketCsvError).problems;
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/^line 3: ts "2025-06-01 00:00"/);
    expect(problems[1]).toMatch(/^line 4: feed "gas"/);
    expect(problems[2]).toMatch(/^line 5: power needs a site id/);
    expect(problems[3]).toMatch(/^line 6: gpu_spot takes no site.*price "abc" is not a number/);
    expect(() => parseMarketCsv('ts,feed,price\n')).toThrow(/line 1: header .*missing site/);
    expect(() => parseMarketCsv('')).toThrow(/no header line/);
  });

  it('round-trips the simulator through the CSV format', () => {
    const start = Date.parse('2025-06-01T00:00:00Z');
    const ticks = [...marketTicks({ seed: 9, startMs: start, sites: [{ id: 'texas-1', utcOffsetHours: -6 }] }, start + 3600_000)];
    expect(parseMarketCsv(formatMarketCsv(ticks))).toEqual(ticks);
  });
});
