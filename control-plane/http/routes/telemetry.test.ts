import { describe, expect, it } from 'vitest';
import { defaultBucket, parseBucket } from './telemetry.js';

describe('telemetry buckets', () => {
  it('parses durations', () => {
    expect(parseBucket('10s')).toBe(10);
    expect(parseBucket('5m')).toBe(300);
    expect(parseBucket('1h')).toBe(3600);
    expect(parseBucket('1d')).toBe(86400);
    expect(parseBucket('0s')).toBeNull();
    expect(parseBucket('1w')).toBeNull();
  });

  it('picks a readable step giving at most ~300 points', () => {
    expect(defaultBucket(3600)).toBe(30);
    expect(defaultBucket(86400)).toBe(300);
    expect(defaultBucket(60)).toBe(1);
  });
});
