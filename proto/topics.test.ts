import { describe, expect, it } from 'vitest';
import { decodeStatus, encodeStatus, isValidSiteId, parseTopic, topics } from './topics.js';

describe('MQTT topics', () => {
  it('builds and parses the same topics', () => {
    expect(topics.telemetry('texas-1')).toBe('hcp/v1/sites/texas-1/telemetry');
    expect(parseTopic(topics.telemetry('texas-1'))).toEqual({ kind: 'telemetry', site: 'texas-1' });
    expect(parseTopic(topics.status('canada-1'))).toEqual({ kind: 'status', site: 'canada-1' });
  });

  it('recognises nothing else', () => {
    for (const t of ['hcp/v1/sites/texas-1', 'hcp/v1/sites/texas-1/telemetry/x', 'hcp/v2/sites/a/telemetry', 'hcp/v1/sites/Texas/telemetry', 'hcp/v1/sites//status', 'x']) {
      expect(parseTopic(t), t).toBeNull();
    }
  });

  it('refuses to build a topic for an invalid site id', () => {
    expect(() => topics.telemetry('a/b')).toThrow(/invalid site id/);
    expect(() => topics.status('+')).toThrow(/invalid site id/);
    expect(isValidSiteId('-x')).toBe(false);
    expect(isValidSiteId('a'.repeat(64))).toBe(false);
  });

  it('round-trips a status and rejects malformed ones', () => {
    const s = { site: 'texas-1', state: 'online' as const, session: 'abc', ts: '2026-11-24T00:00:00Z', agent_version: '1' };
    expect(decodeStatus(Buffer.from(encodeStatus(s)))).toEqual(s);
    expect(decodeStatus('{')).toBeNull();
    expect(decodeStatus('null')).toBeNull();
    expect(decodeStatus(JSON.stringify({ ...s, state: 'sideways' }))).toBeNull();
    expect(decodeStatus(JSON.stringify({ ...s, site: 'No Site' }))).toBeNull();
  });
});
