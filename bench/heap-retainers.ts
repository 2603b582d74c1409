// tsx bench/heap-retainers.ts FILE.heapsnapshot [--of '(array)'] [--top 25]
// Who holds the nodes of one kind (by default V8's internal "(array)" backing stores) in a heap
// snapshot: each such node is charged to its first retainer that is an ordinary object or closure
// (walking up through arrays, hidden and system nodes), named "<retainer>.<edge>", and the charges
// are summed by count and self size, largest first. With bench/heap-summary.ts, for bench:agent's
// "where the memory goes": the summary says what, this says whose.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { of: { type: 'string', default: '(array)' }, top: { type: 'string', default: '25' } }, allowPositionals: true });
const file = positionals[0];
if (!file) {
  console.error("usage: tsx bench/heap-retainers.ts FILE.heapsnapshot [--of '(array)'] [--top N]");
  process.exit(2);
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
};
const meta = snap.snapshot.meta;
const nw = meta.node_fields.length;
const ew = meta.edge_fields.length;
const nType = meta.node_fields.indexOf('type');
const nName = meta.node_fields.indexOf('name');
const nSize = meta.node_fields.indexOf('self_size');
const nEdges = meta.node_fields.indexOf('edge_count');
const eType = meta.edge_fields.indexOf('type');
const eName = meta.edge_fields.indexOf('name_or_index');
const eTo = meta.edge_fields.indexOf('to_node');
const nodeTypes = meta.node_types[0];
const edgeTypes = meta.edge_types[0];
const count = snap.nodes.length / nw;

const typeOf = (n: number) => nodeTypes[snap.nodes[n * nw + nType]!]!;
const nameOf = (n: number) => {
  const t = typeOf(n);
  return t === 'object' || t === 'closure' ? snap.strings[snap.nodes[n * nw + nName]!]! : `(${t})`;
};
// the first retainer of each node, with the edge's label (weak edges skipped)
const retainer = new Int32Array(count).fill(-1);
const retainerEdge: string[] = new Array(count);
let e = 0;
for (let n = 0; n < count; n++) {
  const edges = snap.nodes[n * nw + nEdges]!;
  for (let k = 0; k < edges; k++, e += ew) {
    const type = edgeTypes[snap.edges[e + eType]!]!;
    if (type === 'weak' || type === 'shortcut') continue;
    const to = snap.edges[e + eTo]! / nw;
    if (retainer[to] !== -1) continue;
    retainer[to] = n;
    const label = snap.edges[e + eName]!;
    retainerEdge[to] = type === 'element' || type === 'hidden' ? `[${label}]` : snap.strings[label]!;
  }
}
const ordinary = (n: number) => {
  const t = typeOf(n);
  return (t === 'object' || t === 'closure') && nameOf(n) !== 'system / Context' && nameOf(n) !== 'Array' && nameOf(n) !== '';
};
const by = new Map<string, { n: number; bytes: number }>();
let total = 0;
let totalN = 0;
for (let n = 0; n < count; n++) {
  if (nameOf(n) !== values.of) continue;
  const size = snap.nodes[n * nw + nSize]!;
  total += size;
  totalN++;
  // up to the owner: the first ordinary object, naming the last edge before it
  let at = n;
  let edge = '';
  for (let hops = 0; hops < 12; hops++) {
    const r = retainer[at]!;
    if (r < 0) break;
    edge = retainerEdge[at]!;
    at = r;
    if (ordinary(at)) break;
  }
  const key = at === n ? '(unretained)' : `${nameOf(at)}.${edge}`;
  const x = by.get(key) ?? { n: 0, bytes: 0 };
  x.n++;
  x.bytes += size;
  by.set(key, x);
}
const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
const top = [...by].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(values.top));
console.log(`${values.of}: ${totalN} nodes, ${mb(total)} MB`);
for (const [k, x] of top) console.log(`${String(mb(x.bytes)).padStart(8)} MB ${String(x.n).padStart(9)}  ${k.slice(0, 100)}`);
console.log(JSON.stringify({ of: values.of, mb: mb(total), count: totalN, top: top.map(([k, x]) => ({ retainer: k.slice(0, 100), mb: mb(x.bytes), count: x.n })) }));
