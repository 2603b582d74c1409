// CSV replay of real prices, so an operator can backtest on their own history (issue 5).
//
// Format: a header line naming the columns `ts,feed,site,price` (any order, extra columns are
// ignored), then one tick per line:
//   ts     ISO-8601 time with a zone, e.g. 2025-06-01T17:05:00Z
//   feed   btc_usd | power | gpu_spot
//   site   the site id for `power` (lowercase letters, digits, dashes); empty for the others
//   price  USD per BTC, USD per kWh, USD per GPU-hour; finite, ≥ 0 for btc/gpu (power may be
//          negative: ERCOT real-time prices go below zero when wind is curtailed)
// Blank lines and lines starting with `#` are skipped. Fields hold no commas, so no quoting.
// Every bad line is reported (with its line number), not only the first.
//
// Wiring: `bench/backtest.ts --prices file.csv` and `feeds-main.ts --prices file.csv`
// (replayed on the sim clock through market.ts createReplaySource).
import type { MarketFeed, MarketTick } from './market.js';

export class MarketCsvError extends Error {
  readonly code = 'invalid_price_csv';
  constructor(readonly problems: string[]) {
    super(`invalid price CSV:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const FEEDS: ReadonlySet<string> = new Set<MarketFeed>(['btc_usd', 'power', 'gpu_spot']);
const SITE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// A zone is required: a time without one would be read in the machine's local time.
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
const COLUMNS = ['ts', 'feed', 'site', 'price'] as const;

/** Parses the CSV text; returns ticks sorted by time (stable), or throws MarketCsvError. */
export function parseMarketCsv(text: string): MarketTick[] {
  const lines = text.split(/\r?\n/);
  const problems: string[] = [];
  let col: Record<(typeof COLUMNS)[number], number> | null = null;
  const ticks: Array<MarketTick & { ms: number }> = [];
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const cells = line.split(',').map((c) => c.trim());
    if (col === null) {
      const missing = COLUMNS.filter((c) => !cells.includes(c));
      if (missing.length > 0) {
        problems.push(`line ${n}: header must name ts,feed,site,price (missing ${missing.join(', ')})`);
        col = { ts: 0, feed: 1, site: 2, price: 3 }; // keep checking rows in the documented order
      } else {
        col = { ts: cells.indexOf('ts'), feed: cells.indexOf('feed'), site: cells.indexOf('site'), price: cells.indexOf('price') };
      }
      return;
    }
    const get = (k: (typeof COLUMNS)[number]): string => cells[col![k]] ?? '';
    const bad: string[] = [];
    const ts = get('ts');
    const ms = ISO_WITH_ZONE.test(ts) ? Date.parse(ts) : NaN;
    if (!Number.isFinite(ms)) bad.push(`ts ${JSON.stringify(ts)} is not an ISO-8601 time with a zone`);
    const feed = get('feed');
    if (!FEEDS.has(feed)) bad.push(`feed ${JSON.stringify(feed)} is not btc_usd, power or gpu_spot`);
    const site = get('site');
    if (feed === 'power' && !SITE.test(site)) bad.push(`power needs a site id, got ${JSON.stringify(site)}`);
    if (feed !== 'power' && site !== '') bad.push(`${feed} takes no site, got ${JSON.stringify(site)}`);
    const priceText = get('price');
    const price = priceText === '' ? NaN : Number(priceText);
    if (!Number.isFinite(price)) bad.push(`price ${JSON.stringify(priceText)} is not a number`);
    else if (feed !== 'power' && price < 0) bad.push(`${feed} price must be ≥ 0, got ${price}`);
    if (bad.length > 0) {
      problems.push(`line ${n}: ${bad.join('; ')}`);
      return;
    }
    ticks.push({ feed: feed as MarketFeed, ...(feed === 'power' ? { site } : {}), ts: new Date(ms).toISOString(), price, ms });
  });
  if (col === null) problems.push('no header line (ts,feed,site,price)');
  if (problems.length > 0) throw new MarketCsvError(problems);
  return ticks
    .map((t, i) => ({ t, i }))
    .sort((a, b) => a.t.ms - b.t.ms || a.i - b.i)
    .map(({ t: { ms: _ms, ...tick } }) => tick);
}

/** The inverse of parseMarketCsv: writes ticks in the documented format. */
export function formatMarketCsv(ticks: Iterable<MarketTick>): string {
  let out = 'ts,feed,site,price\n';
  for (const t of ticks) out += `${t.ts},${t.feed},${t.site ?? ''},${t.price}\n`;
  return out;
}
