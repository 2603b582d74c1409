// Human output: aligned tables and a few number formats. Hand-written (a table is ~20 lines):
// the CLI needs no column wrapping or borders that a library would bring.
export type Cell = string | number | boolean | null | undefined;

const text = (c: Cell): string => (c === null || c === undefined || c === '' ? '-' : typeof c === 'boolean' ? (c ? 'yes' : 'no') : String(c));
const width = (s: string) => [...s].length;

/** columns padded to their widest cell; numbers right-aligned */
export function table(headers: string[], rows: Cell[][]): string {
  const cells = rows.map((r) => headers.map((_, i) => text(r[i])));
  const right = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined));
  const w = headers.map((h, i) => Math.max(width(h), ...cells.map((r) => width(r[i]!))));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 && !right[i] ? c : right[i] ? c.padStart(w[i]! + c.length - width(c)) : c.padEnd(w[i]! + c.length - width(c)))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

/** key: value lines, keys aligned */
export function fields(pairs: Array<[string, Cell]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${text(v)}`).join('\n') + '\n';
}

export const kw = (w: number | null | undefined) => (w === null || w === undefined ? null : Math.round(w / 100) / 10);
export const round = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);
/** an ISO time as HH:MM:SS today, else the date and time, in UTC */
export function when(iso: string | null | undefined, now = Date.now()): string | null {
  if (!iso) return null;
  const d = new Date(iso);
  const s = d.toISOString();
  return now - d.getTime() < 86_400_000 && s.slice(0, 10) === new Date(now).toISOString().slice(0, 10) ? `${s.slice(11, 19)}Z` : `${s.slice(0, 16).replace('T', ' ')}Z`;
}

export function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}
