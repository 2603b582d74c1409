// argv → the command and its flags, checked against spec.ts with util.parseArgs (strict): an
// unknown flag, a missing value or a stray argument is a UsageError (exit 2, with the usage).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { COMMANDS, DEFAULT_SUB, GLOBAL_OPTIONS, type CommandSpec, type OptSpec } from './spec.js';

export class UsageError extends Error {
  constructor(message: string, readonly spec?: CommandSpec) {
    super(message);
  }
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export type Parsed =
  | { kind: 'help'; spec?: CommandSpec }
  | { kind: 'run'; spec: CommandSpec; values: Values; positionals: string[] };

const takesValue = (name: string) => GLOBAL_OPTIONS[name]?.type === 'string';

function parseConfig(options: Record<string, OptSpec>): ParseArgsConfig['options'] {
  return Object.fromEntries(Object.entries(options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]));
}

export function parse(argv: string[]): Parsed {
  // The command words are the first arguments that are neither a flag nor a global flag's value.
  const rest = [...argv];
  const words: number[] = [];
  for (let i = 0; i < rest.length && words.length < 2; i++) {
    const a = rest[i]!;
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (words.length === 0 && a.startsWith('--') && !a.includes('=') && takesValue(a.slice(2))) i++;
      if (words.length === 1) break; // `hcp workloads --json` etc.: no sub word
      continue;
    }
    words.push(i);
    if (words.length === 1 && !COMMANDS.some((c) => c.words[0] === a && c.words.length > 1)) break;
  }
  const [w0, w1] = words.map((i) => rest[i]!);
  if (w0 === undefined || w0 === 'help') {
    const wantsHelp = w0 === 'help' || rest.includes('--help') || rest.includes('-h');
    if (wantsHelp) return { kind: 'help', spec: w0 === 'help' && rest[1] ? COMMANDS.find((c) => c.words.join(' ') === rest.slice(1, 3).join(' ') || (c.words.length === 1 && c.words[0] === rest[1])) : undefined };
    throw new UsageError(argv.length ? `no command in: ${argv.join(' ')}` : 'no command given');
  }
  const family = COMMANDS.filter((c) => c.words[0] === w0);
  if (!family.length) throw new UsageError(`unknown command: ${w0}`);
  let spec: CommandSpec | undefined;
  let used = words.slice(0, 1);
  if (family[0]!.words.length === 1) spec = family[0];
  else if (w1 !== undefined && family.some((c) => c.words[1] === w1)) {
    spec = family.find((c) => c.words[1] === w1);
    used = words;
  } else if (w1 !== undefined) {
    throw new UsageError(`unknown ${w0} command: ${w1} (one of: ${family.map((c) => c.words[1]).join(', ')})`);
  } else if (DEFAULT_SUB[w0]) {
    spec = family.find((c) => c.words[1] === DEFAULT_SUB[w0]);
  } else if (rest.includes('--help') || rest.includes('-h')) {
    return { kind: 'help' };
  } else {
    throw new UsageError(`${w0} needs one of: ${family.map((c) => c.words[1]).join(', ')}`);
  }
  if (!spec) throw new UsageError(`unknown command: ${w0}`);
  const args = rest.filter((_, i) => !used.includes(i));
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseConfig({ ...GLOBAL_OPTIONS, ...spec.options }), allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''), spec);
  }
  const values = parsed.values as Values;
  if (values.help) return { kind: 'help', spec };
  const n = parsed.positionals.length;
  if (n < spec.minArgs) throw new UsageError(`hcp ${spec.words.join(' ')} needs ${spec.args}`, spec);
  if (n > spec.maxArgs) throw new UsageError(`unexpected argument: ${parsed.positionals[spec.maxArgs]}`, spec);
  return { kind: 'run', spec, values, positionals: parsed.positionals };
}

// Flag values, checked: each refusal names the flag.

export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  if (x === undefined) return undefined;
  if (typeof x !== 'string' || x === '') throw new UsageError(`--${name} needs a value`);
  return x;
}

export function required(v: Values, name: string, spec: CommandSpec): string {
  const x = str(v, name);
  if (x === undefined) throw new UsageError(`--${name} is required`, spec);
  return x;
}

export function int(v: Values, name: string, min: number, max: number): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!/^-?\d+$/.test(x) || Number(x) < min || Number(x) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(x)}`);
  return Number(x);
}

export function num(v: Values, name: string, min: number, max: number): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const n = Number(x);
  if (!/^\d+(\.\d+)?$/.test(x) || !(n >= min && n <= max)) throw new UsageError(`--${name} must be a number from ${min} to ${max}, not ${JSON.stringify(x)}`);
  return n;
}

export function oneOf<T extends string>(v: Values, name: string, choices: readonly T[]): T | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!(choices as readonly string[]).includes(x)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, not ${JSON.stringify(x)}`);
  return x as T;
}

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** 90, 90s, 30m, 4h, 2d → seconds */
export function duration(v: Values, name: string): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(x);
  const s = m ? Number(m[1]) * UNIT_S[m[2] || 's']! : NaN;
  if (!(s > 0)) throw new UsageError(`--${name} must be a duration like 90s, 30m, 4h or 2d, not ${JSON.stringify(x)}`);
  return s;
}

export function isoTime(v: Values, name: string): string | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}T/.test(x) || Number.isNaN(Date.parse(x))) throw new UsageError(`--${name} must be an ISO time like 2026-01-31T18:00:00Z, not ${JSON.stringify(x)}`);
  return new Date(Date.parse(x)).toISOString();
}
