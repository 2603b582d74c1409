// tsx bench/heap-summary.ts FILE.heapsnapshot [--top 25]
// What a V8 heap snapshot holds, by constructor: count and self size, largest first, and the
// totals. For bench:agent's "where the memory goes" (take one with
// NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2 and `kill -USR2 <pid>`).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
const file = positionals[0];
if (!file) {
  console.error('usage: tsx bench/heap-summary.ts FILE.heapsnapshot [--top N]');
  process.exit(2);
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
};
const f = snap.snapshot.meta.node_fields;
const width = f.length;
const iType = f.indexOf('type');
const iName = f.indexOf('name');
const iSize = f.indexOf('self_size');
const types = snap.snapshot.meta.node_types[0];
const by = new Map<string, { n: number; bytes: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]!]!;
  const name = type === 'object' || type === 'closure' ? snap.strings[snap.nodes[i + iName]!]! : `(${type})`;
  const size = snap.nodes[i + iSize]!;
  total += size;
  const e = by.get(name) ?? { n: 0, bytes: 0 };
  e.n++;
  e.bytes += size;
  by.set(name, e);
}
const top = [...by].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(values.top));
const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
for (const [name, e] of top) console.log(`${String(mb(e.bytes)).padStart(8)} MB ${String(e.n).padStart(9)}  ${name.slice(0, 80)}`);
console.log(JSON.stringify({ heap_mb: mb(total), nodes: snap.nodes.length / width, top: top.map(([name, e]) => ({ name: name.slice(0, 80), mb: mb(e.bytes), count: e.n })) }));
