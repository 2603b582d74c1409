import { describe, expect, it } from 'vitest';
import { duration, parse, UsageError } from './args.js';

const run = (argv: string[]) => {
  const p = parse(argv);
  if (p.kind !== 'run') throw new Error(`expected a command, got ${p.kind}`);
  return { words: p.spec.words.join(' '), values: p.values, positionals: p.positionals };
};

describe('hcp argv', () => {
  it('takes global flags before or after the command words', () => {
    expect(run(['--url', 'http://x:1', '--json', 'workloads', 'get', 'wl-1'])).toMatchObject({ words: 'workloads get', values: { url: 'http://x:1', json: true }, positionals: ['wl-1'] });
    expect(run(['--url=http://x:1', 'devices', '--site', 'texas-1', '--json'])).toMatchObject({ words: 'devices', values: { url: 'http://x:1', site: 'texas-1', json: true } });
    expect(run(['curtail', '--site', 'a', '--site', 'b', '--reason', 'r'])).toMatchObject({ values: { site: ['a', 'b'], reason: 'r' } });
  });

  it('a family alone means its list; mining needs on or off', () => {
    expect(run(['workloads']).words).toBe('workloads list');
    expect(run(['commands', '--site', 's']).words).toBe('commands list');
    expect(() => parse(['mining'])).toThrow(/mining needs one of: on, off/);
  });

  it('help, for all or for one command', () => {
    expect(parse(['--help'])).toEqual({ kind: 'help', spec: undefined });
    expect(parse(['help', 'workloads', 'submit'])).toMatchObject({ kind: 'help', spec: { words: ['workloads', 'submit'] } });
    expect(parse(['top', '-h'])).toMatchObject({ kind: 'help', spec: { words: ['top'] } });
  });

  it('refuses what it does not know, naming it', () => {
    expect(() => parse([])).toThrow(UsageError);
    expect(() => parse(['status', '--site', 'x'])).toThrow(/Unknown option '--site'/);
    expect(() => parse(['sites', 'a', 'b'])).toThrow(/unexpected argument: b/);
    expect(() => parse(['keys', 'revoke'])).toThrow(/needs ID/);
    expect(() => parse(['devices', '--limit'])).toThrow(/argument missing/);
  });

  it('durations', () => {
    expect(duration({ d: '90' }, 'd')).toBe(90);
    expect(duration({ d: '30m' }, 'd')).toBe(1800);
    expect(duration({ d: '2d' }, 'd')).toBe(172_800);
    expect(() => duration({ d: '-1h' }, 'd')).toThrow(/--d must be a duration/);
    expect(() => duration({ d: '0' }, 'd')).toThrow(/--d must be a duration/);
  });
});
