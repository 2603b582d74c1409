import { describe, expect, it } from 'vitest';
import { decodeFrequency, decodePrice, encodeFrequency, encodePrice, marketTopics, parseMarketTopic } from './market-topics.js';

describe('market topics', () => {
  it('builds the documented topics', () => {
    expect(marketTopics.btcUsd).toBe('hcp/v1/market/btc_usd');
    expect(marketTopics.gpuSpot).toBe('hcp/v1/market/gpu_spot');
    expect(marketTopics.power('texas-1')).toBe('hcp/v1/market/power/texas-1');
    expect(marketTopics.gridFrequency('ercot')).toBe('hcp/v1/grid/ercot/frequency');
    expect(() => marketTopics.power('Texas 1')).toThrow(/invalid site id/);
    expect(() => marketTopics.gridFrequency('a/b')).toThrow(/invalid region id/);
  });

  it('parses what it builds and nothing else', () => {
    expect(parseMarketTopic(marketTopics.btcUsd)).toEqual({ kind: 'btc_usd' });
    expect(parseMarketTopic(marketTopics.gpuSpot)).toEqual({ kind: 'gpu_spot' });
    expect(parseMarketTopic(marketTopics.power('canada-1'))).toEqual({ kind: 'power', site: 'canada-1' });
    expect(parseMarketTopic(marketTopics.gridFrequency('ercot'))).toEqual({ kind: 'grid_frequency', region: 'ercot' });
    for (const t of ['hcp/v1/market/power', 'hcp/v1/market/power/UP', 'hcp/v1/market/btc_usd/x', 'hcp/v2/market/btc_usd', 'hcp/v1/grid/ercot', 'hcp/v1/sites/texas-1/telemetry']) {
      expect(parseMarketTopic(t), t).toBeNull();
    }
  });

  it('round-trips payloads and rejects malformed ones', () => {
    expect(decodePrice(encodePrice({ ts: '2025-06-01T17:00:00.000Z', price: 0.042 }))).toEqual({ ts: '2025-06-01T17:00:00.000Z', price: 0.042 });
    // mosquitto_pub users write their own times; they are normalised to UTC.
    expect(decodePrice('{"ts":"2025-06-01T12:00:00-05:00","price":5}')).toEqual({ ts: '2025-06-01T17:00:00.000Z', price: 5 });
    expect(decodePrice('{"ts":"2025-06-01T17:00:00Z","price":-0.01}')?.price).toBe(-0.01);
    for (const bad of ['', 'null', '[]', '{"ts":"x","price":1}', '{"ts":"2025-06-01T17:00:00Z"}', '{"ts":"2025-06-01T17:00:00Z","price":"1"}']) {
      expect(decodePrice(bad), bad).toBeNull();
    }
    expect(decodeFrequency(encodeFrequency({ ts: '2025-06-01T17:00:00.000Z', hz: 59.6 }))).toEqual({ ts: '2025-06-01T17:00:00.000Z', hz: 59.6 });
    expect(decodeFrequency('{"ts":"2025-06-01T17:00:00Z","hz":0}')).toBeNull();
    expect(decodeFrequency('{"ts":"2025-06-01T17:00:00Z","price":60}')).toBeNull();
  });

  it('takes times of years 0001 to 9999 only: a tick before 4713 BC cannot be stored and was retried forever', () => {
    for (const ts of ['-271821-04-20T00:00:00.000Z', '+275760-09-13T00:00:00.000Z', '+010000-01-01T00:00:00Z']) {
      expect(decodePrice(JSON.stringify({ ts, price: 1 })), ts).toBeNull();
      expect(decodeFrequency(JSON.stringify({ ts, hz: 60 })), ts).toBeNull();
    }
    expect(decodePrice('{"ts":"0001-01-01T00:00:00Z","price":1}')?.ts).toBe('0001-01-01T00:00:00.000Z');
    expect(decodePrice('{"ts":"9999-12-31T23:59:59Z","price":1}')).not.toBeNull();
  });
});
