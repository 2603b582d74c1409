// `npm run chaos`: the chaos suite (test/chaos/) at full scale — 60 s outages, 10k samples/s,
// larger fleets (HCP_CHAOS_SCALE=full; HCP_CHAOS_OUTAGE_S to choose the outage) — with vitest's
// output passed through, then one JSON last line over all scenarios: rows_expected, rows_present,
// rows_duplicated, commands_lost, commands_duplicated (sums) and failover_s (the longest), and
// each scenario's own line under `scenarios`. Exits with vitest's code.
//
// Each scenario prints `{"chaos":"<name>",…}` (test/chaos/harness.ts reportChaos); a scenario
// that printed nothing (it failed before it could measure) is named in `missing`.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '..');
const files = process.argv.slice(2).length ? process.argv.slice(2) : ['test/chaos/'];
const env = { ...process.env, HCP_CHAOS_SCALE: process.env.HCP_CHAOS_SCALE ?? 'full' };

type Line = Record<string, unknown> & { chaos: string };
const lines: Line[] = [];
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

const child = spawn(process.execPath, [resolve(root, 'node_modules/vitest/vitest.mjs'), 'run', ...files], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
createInterface({ input: child.stdout! }).on('line', (raw) => {
  process.stdout.write(`${raw}\n`);
  const text = raw.replace(ANSI, '');
  const at = text.indexOf('{"chaos":');
  if (at < 0) return;
  try {
    lines.push(JSON.parse(text.slice(at)) as Line);
  } catch {
    /* a line that only looks like one */
  }
});
const code: number = await new Promise((r) => child.once('exit', (c, signal) => r(c ?? (signal ? 1 : 0))));

const sum = (k: string) => lines.reduce((n, l) => n + (typeof l[k] === 'number' ? (l[k] as number) : 0), 0);
const failovers = lines.map((l) => l.failover_s).filter((v): v is number => typeof v === 'number');
const expected = readdirSync(resolve(root, 'test/chaos')).filter((f) => f.endsWith('.test.ts')).map((f) => f.replace(/\.test\.ts$/, '')).filter((n) => n !== 'checker');
console.log(JSON.stringify({
  scale: env.HCP_CHAOS_SCALE,
  rows_expected: sum('rows_expected'),
  rows_present: sum('rows_present'),
  rows_duplicated: sum('rows_duplicated'),
  commands_lost: sum('commands_lost'),
  commands_duplicated: sum('commands_duplicated'),
  failover_s: failovers.length ? Math.max(...failovers) : null,
  passed: code === 0,
  missing: files.length === 1 && files[0] === 'test/chaos/' ? expected.filter((n) => !lines.some((l) => l.chaos === n)) : [],
  scenarios: lines,
}));
process.exit(code);
