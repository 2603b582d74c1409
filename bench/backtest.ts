// npm run backtest -- [--seed N] [--days D] [--prices file.csv [--site ID]] [--out file.html] [--step S]
//
// Runs the economic engine over a price path (the seeded market simulator, or a CSV of real
// prices: ts,feed,site,price — see sim-hardware/market-csv.ts) against a simulated site (20 each
// of S21 / S21 Pro / S21 XP, 16 H100s, 250 kW) and compares its ASIC profit with always-on, a
// strike-price rule and the perfect-foresight optimum. Writes a self-contained HTML plot (inline
// SVG, nothing fetched) and prints a JSON line last. Profits are the ASIC side (mining revenue
// minus ASIC power), the part the decisions change; GPU margin is the same under every strategy
// and is reported separately.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BACKTEST_FLEET, runBacktest, STRATEGIES, type BacktestResult, type Strategy } from '../control-plane/economics/backtest.js';
import { parseMarketCsv } from '../sim-hardware/market-csv.js';
import { marketTicks, type MarketTick } from '../sim-hardware/market.js';

// ---- plot ---------------------------------------------------------------------------------

const COLORS: Record<Strategy, string> = { engine: '#1f77b4', always_on: '#7f7f7f', strike: '#ff7f0e', optimum: '#2ca02c' };
const MODEL_COLORS: Record<string, string> = { 's21': '#d62728', 's21-pro': '#9467bd', 's21-xp': '#8c564b' };
const W = 1200;
const H = 220;
const PAD = { l: 70, r: 20, t: 24, b: 28 };

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    days: { type: 'string', default: '7' },
    prices: { type: 'string' },
    site: { type: 'string' },
    out: { type: 'string' },
    step: { type: 'string', default: '300' },
    start: { type: 'string', default: '2025-06-01T00:00:00Z' },
  },
});
const seed = values.seed;
const days = Number(values.days);
const stepS = Number(values.step);
if (!(days > 0) || !(stepS > 0) || !Number.isFinite(Date.parse(values.start))) {
  console.error('usage: npm run backtest -- [--seed N] [--days D] [--prices file.csv [--site ID]] [--out file.html] [--step seconds]');
  process.exit(2);
}

let ticks: MarketTick[];
let fromMs: number;
let toMs: number;
let fleet = DEFAULT_BACKTEST_FLEET;
let label: string;
if (values.prices) {
  try {
    ticks = parseMarketCsv(readFileSync(values.prices, 'utf8'));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const site = values.site ?? ticks.find((t) => t.feed === 'power')?.site;
  if (!site || !ticks.some((t) => t.feed === 'power' && t.site === site)) {
    console.error(`no power prices${site ? ` for site ${site}` : ''} in ${values.prices}`);
    process.exit(2);
  }
  if (!ticks.some((t) => t.feed === 'btc_usd')) {
    console.error(`no btc_usd prices in ${values.prices}: hashprice needs them`);
    process.exit(2);
  }
  fleet = { ...fleet, siteId: site };
  fromMs = Date.parse(ticks[0]!.ts);
  toMs = Date.parse(ticks.at(-1)!.ts) + stepS * 1000;
  label = basename(values.prices).replace(/\.csv$/i, '');
} else {
  fromMs = Date.parse(values.start);
  toMs = fromMs + days * 86_400_000;
  ticks = [...marketTicks({ seed, startMs: fromMs, sites: [{ id: fleet.siteId, utcOffsetHours: fleet.utcOffsetHours }] }, toMs)];
  label = seed;
}

const r = runBacktest({ ticks, fromMs, toMs, stepS, fleet });
const out = values.out ?? `data/backtest-${label}.html`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, renderHtml(r, { title: values.prices ? `prices ${basename(values.prices)}` : `seed ${seed}, ${days} days`, fleet }));

const round2 = (x: number) => Math.round(x * 100) / 100;
const a = r.asicUsd;
console.log(
  `engine $${round2(a.engine)}, always-on $${round2(a.always_on)}, strike $${round2(a.strike)}, optimum $${round2(a.optimum)} over ${r.steps} steps; ` +
    `engine starts ${r.engineCounts.starts}, stops ${r.engineCounts.stops}, retargets ${r.engineCounts.retargets}; plot ${out}`,
);
console.log(
  JSON.stringify({
    profit_usd: round2(a.engine),
    always_on_usd: round2(a.always_on),
    strike_usd: round2(a.strike),
    optimum_usd: round2(a.optimum),
    capture_ratio: Math.round((a.engine / a.optimum) * 10_000) / 10_000,
    strike_capture_ratio: Math.round((a.strike / a.optimum) * 10_000) / 10_000,
    gpu_usd: round2(r.gpuUsd),
    site_profit_usd: round2(a.engine + r.gpuUsd),
    seed: values.prices ? null : Number(seed),
    days: round2((toMs - fromMs) / 86_400_000),
    steps: r.steps,
    unpriced_steps: r.unpricedSteps,
    starts: r.engineCounts.starts,
    stops: r.engineCounts.stops,
    retargets: r.engineCounts.retargets,
    plot: out,
  }),
);

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function panel(title: string, tsMs: number[], series: Array<{ name: string; color: string; ys: Array<number | null>; width?: number }>, yMin: number, yMax: number, yFmt: (y: number) => string): string {
  const t0 = tsMs[0]!;
  const t1 = tsMs.at(-1)!;
  const x = (t: number) => PAD.l + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v: number) => PAD.t + (1 - (Math.min(Math.max(v, yMin), yMax) - yMin) / (yMax - yMin || 1)) * (H - PAD.t - PAD.b);
  let svg = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">`;
  svg += `<text x="${PAD.l}" y="14" font-weight="bold">${esc(title)}</text>`;
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    svg += `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${PAD.l - 4}" y="${y(v) + 4}" text-anchor="end">${esc(yFmt(v))}</text>`;
  }
  for (let d = Math.ceil(t0 / 86_400_000) * 86_400_000; d <= t1; d += 86_400_000) {
    svg += `<line x1="${x(d)}" x2="${x(d)}" y1="${PAD.t}" y2="${H - PAD.b}" stroke="#ddd"/><text x="${x(d)}" y="${H - 10}" text-anchor="middle">${new Date(d).toISOString().slice(5, 10)}</text>`;
  }
  for (const s of series) {
    let path = '';
    let pen = false;
    s.ys.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      path += `${pen ? 'L' : 'M'}${x(tsMs[i]!).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    svg += `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.2}"/>`;
  }
  let lx = PAD.l + 10;
  for (const s of series) {
    svg += `<rect x="${lx}" y="${PAD.t + 2}" width="10" height="10" fill="${s.color}"/><text x="${lx + 14}" y="${PAD.t + 11}">${esc(s.name)}</text>`;
    lx += 24 + s.name.length * 6.5;
  }
  return svg + '</svg>';
}

function renderHtml(res: BacktestResult, o: { title: string; fleet: typeof DEFAULT_BACKTEST_FLEET }): string {
  const s = res.series;
  const prices = s.powerUsdKwh.filter((p): p is number => p !== null);
  // Spikes run to ~$1/kWh; clip the axis so the daily shape and the break-evens stay readable.
  const clip = Math.min(Math.max(...prices, 0.15), 0.3);
  const spikes = prices.filter((p) => p > clip).length;
  const pricePanel = panel(
    `power price, $/kWh (${o.fleet.siteId}; axis clipped at $${clip.toFixed(2)}, ${spikes} interval(s) above) and stock break-even per model`,
    s.tsMs,
    [
      { name: 'power price', color: '#333', ys: s.powerUsdKwh },
      ...Object.entries(s.breakevenUsdKwh).map(([m, ys]) => ({ name: `break-even ${m}`, color: MODEL_COLORS[m] ?? '#999', ys, width: 1 })),
    ],
    Math.min(0, ...prices),
    clip,
    (v) => v.toFixed(3),
  );
  const maxKw = Math.max(...STRATEGIES.flatMap((k) => s.asicKw[k]));
  const kwPanel = panel(
    'ASIC power drawn, kW: the decisions (mining × power target; standby when asleep)',
    s.tsMs,
    (['optimum', 'strike', 'engine'] as const).map((k) => ({ name: k, color: COLORS[k], ys: s.asicKw[k], width: k === 'engine' ? 1.6 : 1 })),
    0,
    maxKw * 1.05,
    (v) => v.toFixed(0),
  );
  const cums = STRATEGIES.flatMap((k) => s.cumulativeUsd[k]);
  const cumPanel = panel(
    'cumulative ASIC profit, USD',
    s.tsMs,
    STRATEGIES.map((k) => ({ name: k, color: COLORS[k], ys: s.cumulativeUsd[k], width: k === 'engine' ? 2 : 1.2 })),
    Math.min(0, ...cums),
    Math.max(...cums) * 1.05,
    (v) => `$${v.toFixed(0)}`,
  );
  const a = res.asicUsd;
  const rows = STRATEGIES.map((k) => `<tr><td style="color:${COLORS[k]}">${k}</td><td>$${a[k].toFixed(2)}</td><td>${((a[k] / a.optimum) * 100).toFixed(1)} %</td></tr>`).join('');
  const rules = Object.entries(res.engineCounts.rules)
    .sort((x, y) => (y[1] ?? 0) - (x[1] ?? 0))
    .map(([k, v]) => `${esc(k)} ${v}`)
    .join(', ');
  const fleetText = o.fleet.asics.map((x) => `${x.count} × ${x.model}`).join(', ') + `, ${o.fleet.gpus} × H100, cap ${o.fleet.capKw} kW`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>HCP backtest — ${esc(o.title)}</title>
<style>body{font-family:sans-serif;margin:16px;color:#222}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head>
<body><h2>HCP economic engine backtest — ${esc(o.title)}</h2>
<p>Fleet: ${esc(fleetText)}. ${res.steps} decision intervals. ASIC profit = mining revenue − ASIC power (standby included); GPU margin $${res.gpuUsd.toFixed(2)} is the same under every strategy.</p>
<table><tr><th>strategy</th><th>ASIC profit</th><th>of optimum</th></tr>${rows}</table>
<p>Engine: ${res.engineCounts.starts} starts, ${res.engineCounts.stops} stops, ${res.engineCounts.retargets} power-target changes (ASIC-intervals by rule: ${rules}).</p>
${pricePanel}<br>${kwPanel}<br>${cumPanel}
</body></html>
`;
}
