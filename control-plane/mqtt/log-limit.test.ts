import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { limitedLog } from './log-limit.js';

describe('limited log', () => {
  it('logs a few lines per kind and window, and says how many it held back', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    let now = 0;
    const warn = limitedLog(log, { perWindow: 2, windowMs: 1000, now: () => now });
    for (let i = 0; i < 10; i++) warn('refused:bad_credentials', { i }, 'refused');
    warn('oversized', {}, 'cut');
    expect(lines.map((l) => [l.kind, l.i])).toEqual([['refused:bad_credentials', 0], ['refused:bad_credentials', 1], ['oversized', undefined]]);
    now = 1000;
    warn('refused:bad_credentials', { i: 10 }, 'refused');
    expect(lines.at(-1)).toMatchObject({ i: 10, suppressed: 8 });
  });
});
