import { describe, expect, it } from 'vitest';
import { utcOffsetHours } from './economic-dispatch.js';

describe('utcOffsetHours', () => {
  it("gives a zone's offset on either side of a DST transition, the same when asked again, and 0 for an unknown zone", () => {
    // America/Chicago moved to CDT at 2026-03-08 08:00 UTC
    const before = Date.parse('2026-03-08T07:59:00Z');
    const after = Date.parse('2026-03-08T08:00:00Z');
    expect(utcOffsetHours('America/Chicago', before)).toBe(-6);
    expect(utcOffsetHours('America/Chicago', after)).toBe(-5);
    expect(utcOffsetHours('America/Chicago', before + 30_000)).toBe(-6);
    expect(utcOffsetHours('Asia/Kolkata', after)).toBe(5.5);
    expect(utcOffsetHours('UTC', after)).toBe(0);
    expect(utcOffsetHours('Not/AZone', after)).toBe(0);
  });
});
