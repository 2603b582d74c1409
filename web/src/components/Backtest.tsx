// The backtest form and its report (POST /api/v1/economics/backtest): a seed and hours, or a CSV
// of prices (ts,feed,site,price: sim-hardware/market-csv.ts), run on the control plane; the
// cumulative profit of HCP against always-on, the strike rule and the optimum, the prices and the
// power each strategy drew, and the summary `npm run backtest` prints.
import { useState } from 'preact/hooks';
import { api, messageOf } from '../api.js';
import { num, secs, usd } from '../format.js';
import { Chart } from './Chart.js';

/** what the API takes (control-plane/http/routes/backtest.ts MAX_PRICES_CSV_CHARS) */
const MAX_CSV_CHARS = 1_000_000;

export interface BacktestReport {
  summary: {
    site: string; from: string; to: string; hours: number; seed: number | null; fleet: string;
    profit_usd: Record<'hcp' | 'always_on' | 'strike' | 'optimum', number>;
    capture_ratio: number | null; strike_capture_ratio: number | null; gpu_usd: number;
    steps: number; unpriced_steps: number; starts: number; stops: number; retargets: number;
  };
  hourly: {
    ts: string[]; power_usd_kwh: Array<number | null>; hashprice_usd_ph_day: Array<number | null>;
    breakeven_usd_kwh: Record<string, Array<number | null>>; asic_kw: Record<string, number[]>;
    decision: string[]; cumulative_usd: Record<string, number[]>;
  };
}

export const STRATEGY = [
  { key: 'hcp', label: 'HCP', stroke: '#1f77b4' },
  { key: 'always_on', label: 'always-on', stroke: '#7f7f7f' },
  { key: 'strike', label: 'strike rule', stroke: '#ff7f0e' },
] as const;
const MODEL_COLOURS = ['#d62728', '#9467bd', '#8c564b'];

export function Backtest() {
  const [source, setSource] = useState<'seed' | 'csv'>('seed');
  const [seed, setSeed] = useState('1');
  const [hours, setHours] = useState('24');
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [report, setReport] = useState<BacktestReport | null>(null);

  const run = async (e: Event) => {
    e.preventDefault();
    setError(null);
    // the last report goes: beside a refusal it would read as this input's
    setReport(null);
    setBusy(true);
    try {
      let body: unknown;
      if (source === 'seed') body = { seed: Number(seed), hours: Number(hours) };
      else {
        if (!file) throw new Error('choose a CSV file of prices');
        const text = await file.text();
        if (text.length > MAX_CSV_CHARS) throw new Error(`the file has ${text.length.toLocaleString()} characters; at most ${MAX_CSV_CHARS.toLocaleString()}`);
        body = { prices_csv: text };
      }
      setReport(await api<BacktestReport>('/api/v1/economics/backtest', { method: 'POST', body }));
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const h = report?.hourly;
  const t = (h?.ts ?? []).map(secs);
  const s = report?.summary;
  const ofOptimum = (v: number) => (s && s.profit_usd.optimum > 0 ? ` (${((v / s.profit_usd.optimum) * 100).toFixed(1)} % of optimum)` : '');
  return (
    <section data-testid="backtest">
      <form class="submit" onSubmit={(e) => void run(e)}>
        <label><input type="radio" name="bt-source" checked={source === 'seed'} onChange={() => setSource('seed')} data-testid="bt-source-seed" /> Seeded prices</label>
        <label>Seed <input data-testid="bt-seed" type="number" min="0" step="1" value={seed} disabled={source !== 'seed'} onInput={(e) => setSeed((e.target as HTMLInputElement).value)} /></label>
        <label>Hours <input data-testid="bt-hours" type="number" min="1" max="720" step="1" value={hours} disabled={source !== 'seed'} onInput={(e) => setHours((e.target as HTMLInputElement).value)} /></label>
        <label><input type="radio" name="bt-source" checked={source === 'csv'} onChange={() => setSource('csv')} data-testid="bt-source-csv" /> Prices CSV</label>
        <input data-testid="bt-file" type="file" accept=".csv,text/csv" disabled={source !== 'csv'} onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
        <button class="primary" type="submit" data-testid="bt-run" disabled={busy}>{busy ? 'Running…' : 'Run backtest'}</button>
      </form>
      <p class="hint">A seeded path starts at {new Date('2025-06-01T00:00:00Z').toUTCString()}, as <code>npm run backtest -- --seed N</code> does; a CSV has columns ts,feed,site,price and is run for the first site it prices. At most 720 hours.</p>
      {error && <p class="error" role="alert" data-testid="bt-error">{error}</p>}
      {report && s && h && (
        <>
          <div class="totals" data-testid="backtest-summary">
            {STRATEGY.map((k) => <div><span>{k.label}</span><b data-testid={`bt-profit-${k.key}`}>{usd(s.profit_usd[k.key])}</b><small>{ofOptimum(s.profit_usd[k.key])}</small></div>)}
            <div><span>optimum (perfect foresight)</span><b data-testid="bt-profit-optimum">{usd(s.profit_usd.optimum)}</b></div>
            <div><span>HCP over always-on</span><b data-testid="bt-gain">{usd(s.profit_usd.hcp - s.profit_usd.always_on)}</b></div>
            <div><span>HCP's changes, per ASIC</span><b>{s.starts} starts, {s.stops} stops, {s.retargets} new targets</b></div>
          </div>
          <p class="hint" data-testid="bt-basis">{s.site}: {s.fleet}; {s.hours} h from {new Date(s.from).toUTCString()}, {s.steps} five-minute steps{s.unpriced_steps ? ` (${s.unpriced_steps} without a price)` : ''}. ASIC profit (mining revenue − ASIC power); the GPUs' {usd(s.gpu_usd)} is the same under every strategy.</p>
          <div class="charts">
            <Chart
              title="Cumulative ASIC profit (USD)"
              testId="backtest-chart"
              data={[t, ...STRATEGY.map((k) => h.cumulative_usd[k.key] ?? []), h.cumulative_usd.optimum ?? []]}
              series={[...STRATEGY.map((k) => ({ label: k.label, stroke: k.stroke, unit: 'USD', digits: 2 })), { label: 'optimum', stroke: '#2ca02c', dash: [6, 4], unit: 'USD', digits: 2 }]}
            />
            <Chart
              title="Power price and stock break-even ($/kWh, hourly mean)"
              testId="backtest-price-chart"
              data={[t, h.power_usd_kwh, ...Object.values(h.breakeven_usd_kwh)]}
              series={[{ label: 'power', stroke: '#333', digits: 4 }, ...Object.keys(h.breakeven_usd_kwh).map((m, i) => ({ label: `break-even ${m}`, stroke: MODEL_COLOURS[i % MODEL_COLOURS.length]!, dash: [4, 3], digits: 4 }))]}
            />
            <Chart title="Hashprice ($/PH/day)" testId="backtest-hashprice-chart" data={[t, h.hashprice_usd_ph_day]} series={[{ label: 'hashprice', stroke: '#c77d00', digits: 2 }]} />
            <Chart
              title="ASIC power each strategy drew (kW, hourly mean): the decisions"
              testId="backtest-kw-chart"
              yMin={0}
              data={[t, ...STRATEGY.map((k) => h.asic_kw[k.key] ?? [])]}
              series={STRATEGY.map((k) => ({ label: k.label, stroke: k.stroke, unit: 'kW' }))}
            />
          </div>
          <p class="hint">HCP's decision by hour: {rulesRun(h.decision)}. Capture ratio {num(s.capture_ratio === null ? null : s.capture_ratio * 100, 1, '%')} (strike rule {num(s.strike_capture_ratio === null ? null : s.strike_capture_ratio * 100, 1, '%')}).</p>
        </>
      )}
    </section>
  );
}

/** "economic ×20, price_curtail ×3, …": the hourly decisions, most frequent first */
function rulesRun(rules: string[]): string {
  const n = new Map<string, number>();
  for (const r of rules) n.set(r, (n.get(r) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1]).map(([r, k]) => `${r} ×${k}`).join(', ') || '–';
}
