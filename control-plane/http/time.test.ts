import { expect, it } from 'vitest';
import { isoTime, parseTime } from './time.js';

it('takes ISO-8601 times in years 0001 to 9999, and no time PostgreSQL cannot store', () => {
  expect(parseTime('2026-11-24T09:00:00Z')).toBe(Date.UTC(2026, 10, 24, 9));
  expect(parseTime('0001-01-01T00:00:00Z')).not.toBeNull();
  expect(parseTime('9999-12-31T23:59:59Z')).not.toBeNull();
  // Date.parse reads these; PostgreSQL's timestamptz ends at 4713 BC: "timestamp out of range"
  for (const v of ['-271821-04-20T00:00:00.000Z', '-004714-01-01T00:00:00Z', '+275760-09-13T00:00:00.000Z', '+010000-01-01T00:00:00Z', 'soon', '']) {
    expect(parseTime(v), v).toBeNull();
    expect(isoTime.safeParse(v).success, v).toBe(false);
  }
});
