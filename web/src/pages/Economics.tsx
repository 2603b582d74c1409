// Economics: the prices and each site's break-even, the engine's last decision per site with its
// explanation and its recent decisions (GET /api/v1/economics, read again when the stream's
// `fleet` summary carries a new decision), the profit as decided over a window against always-on
// and the strike rule (GET /api/v1/economics/profit), and the backtest (components/Backtest.tsx).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, messageOf } from '../api.js';
import { Backtest, STRATEGY } from '../components/Backtest.js';
import { Chart } from '../components/Chart.js';
import { ago, num, secs, usd } from '../format.js';
import { useLive } from '../live.js';
import { Link } from '../router.js';
import type { FleetSummary } from './Fleet.js';
import type { PageProps } from './page.js';

interface ModelSummary { model: string; count: number; mining: number; breakevenUsdKwh: number | null; effectiveBreakevenUsdKwh: number | null; bestPowerTargetW: number }
interface Explanation {
  rule: string; summary: string;
  inputs: { btcUsd: number | null; powerUsdKwh: number | null; gpuSpotUsdH: number | null; hashpriceUsdPhDay: number | null; capKw: number; gpuKw: number; demandResponseKw: number };
  asicBudgetKw: number; asicPlannedKw: number; models: ModelSummary[];
  expectedUsdH: { asicRevenue: number; asicPowerCost: number; gpuRevenue: number; gpuPowerCost: number; margin: number } | null;
}
interface EconomicsSite {
  id: string; mode: string;
  decision: { at: string; rule: string; summary: string; explanation: Explanation; skipped_since: string | null } | null;
  profitability: Array<{ device_class: string; breakeven_usd_kwh: number | null; margin_usd_h: number }>;
}
interface Economics {
  interval_s: number;
  prices: FleetSummary['prices'] & { power_usd_kwh: Record<string, { price: number; ts: string } | null> };
  sites: EconomicsSite[];
  history: Array<{ at: string; site: string; rule: string; summary: string; expected_margin_usd_h: number | null }>;
}
interface Profit {
  from: string; to: string; basis: string;
  total_usd: Record<string, number>;
  sites: Array<{ id: string; decisions: number; unscored_decisions: number; total_usd: Record<string, number>; series: Record<string, Array<string | number>> }>;
}

/** cents hide a short window's differences: small sums get four decimals */
const money = (v: number) => usd(v, Math.abs(v) < 10 ? 4 : 2);
const PRESETS: Record<string, number> = { '1h': 3600, '24h': 86400, '7d': 7 * 86400 };
/** a datetime-local input's value for an instant, in the browser's zone */
const localInput = (ms: number) => {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
};

export function EconomicsPage(_: PageProps) {
  const [econ, setEcon] = useState<Economics | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [preset, setPreset] = useState<string | null>('1h');
  const [custom, setCustom] = useState(() => ({ from: localInput(Date.now() - 86400_000), to: localInput(Date.now()) }));
  const [span, setSpan] = useState<{ fromMs: number; toMs: number | null }>({ fromMs: Date.now() - 3600_000, toMs: null });
  const [profit, setProfit] = useState<Profit | null>(null);
  const [profitError, setProfitError] = useState<string | null>(null);
  const [site, setSite] = useState<string | null>(null);
  const decisionsSeen = useRef('');

  const loadEcon = () => api<Economics>('/api/v1/economics?limit=50').then((e) => { setEcon(e); setError(null); }, (err) => setError(messageOf(err)));
  const loadProfit = (w = span) => {
    const q = `from=${new Date(w.fromMs).toISOString()}${w.toMs === null ? '' : `&to=${new Date(w.toMs).toISOString()}`}`;
    api<Profit>(`/api/v1/economics/profit?${q}`).then((p) => { setProfit(p); setProfitError(null); }, (err) => setProfitError(messageOf(err)));
  };
  useEffect(() => void loadEcon(), []);
  useEffect(() => loadProfit(), [span]);

  // A new decision at any site (the stream's fleet summary names each site's last) reads the
  // decisions again; the 1 h window, which ends now, moves with them. Longer windows are read
  // when chosen: a week of decisions is not worth reading again every interval.
  useLive<FleetSummary>('fleet', (f) => {
    const seen = f.sites.map((s) => `${s.id}@${s.decision?.at ?? ''}`).join(',');
    if (seen === decisionsSeen.current) return;
    const first = decisionsSeen.current === '';
    decisionsSeen.current = seen;
    if (first) return; // the page has just read them
    void loadEcon();
    if (preset === '1h') setSpan({ fromMs: Date.now() - 3600_000, toMs: null });
  });

  const choosePreset = (p: string) => {
    setPreset(p);
    setSpan({ fromMs: Date.now() - PRESETS[p]! * 1000, toMs: null });
  };
  const applyCustom = (e: Event) => {
    e.preventDefault();
    const fromMs = Date.parse(custom.from);
    const toMs = Date.parse(custom.to);
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) return setProfitError('from and to must both be set');
    setPreset(null);
    setSpan({ fromMs, toMs });
  };

  if (error && !econ) return <p class="error" role="alert">{error}</p>;
  if (!econ) return <p>Loading…</p>;
  const shown = profit?.sites.find((s) => s.id === site) ?? profit?.sites[0];
  const t = ((shown?.series.ts ?? []) as string[]).map(secs);
  return (
    <div class="page economics" data-testid="economics-page">
      <h2>Economics</h2>
      {error && <p class="error" role="alert">{error}</p>}
      <div class="totals" data-testid="prices">
        <div><span>BTC</span><b data-testid="econ-btc">{usd(econ.prices?.btc_usd?.price ?? null, 0)}</b></div>
        <div><span>Hashprice</span><b>{num(econ.sites.find((s) => s.decision?.explanation.inputs.hashpriceUsdPhDay != null)?.decision?.explanation.inputs.hashpriceUsdPhDay, 2, '$/PH/day')}</b></div>
        <div><span>GPU spot</span><b>{econ.prices?.gpu_spot_usd_h ? `${usd(econ.prices.gpu_spot_usd_h.price)}/h` : '–'}</b></div>
        <div><span>Decides every</span><b>{econ.interval_s} s</b></div>
      </div>

      <h3>Sites: price, break-even and the last decision</h3>
      <div class="sites">
        {econ.sites.map((s) => {
          const x = s.decision?.explanation;
          const price = econ.prices?.power_usd_kwh?.[s.id]?.price;
          return (
            <section class="site-card" data-testid={`econ-site-${s.id}`}>
              <h3><Link href={`/sites/${s.id}`}>{s.id}</Link> <small>mode {s.mode}</small></h3>
              <p>Power <b data-testid={`econ-price-${s.id}`}>{price !== undefined ? `${usd(price, 4)}/kWh` : '–'}</b> · budget for ASICs {num(x?.asicBudgetKw, 0, 'kW')} (cap {num(x?.inputs.capKw, 0, 'kW')} − GPUs {num(x?.inputs.gpuKw, 1, 'kW')}{x?.inputs.demandResponseKw ? ` − demand response ${num(x.inputs.demandResponseKw, 0, 'kW')}` : ''}), planned {num(x?.asicPlannedKw, 1, 'kW')}</p>
              {s.decision && x ? (
                <>
                  <p class="decision" data-testid={`econ-explanation-${s.id}`}><b>{s.decision.rule}</b>: {s.decision.summary} <small>({ago(s.decision.at)}{s.decision.skipped_since ? `; skipped since: ${s.decision.skipped_since}` : ''})</small></p>
                  <p>Expected {x.expectedUsdH ? <>margin <b>{usd(x.expectedUsdH.margin)}/h</b>: ASIC revenue {usd(x.expectedUsdH.asicRevenue)} − power {usd(x.expectedUsdH.asicPowerCost)}, GPU revenue {usd(x.expectedUsdH.gpuRevenue)} − power {usd(x.expectedUsdH.gpuPowerCost)}</> : 'nothing: no price yet'}</p>
                  <table class="compact" data-testid={`econ-models-${s.id}`}>
                    <thead><tr><th>Model</th><th>Mining</th><th>Break-even, stock</th><th>Break-even, best target</th></tr></thead>
                    <tbody>{x.models.map((m) => <tr><td>{m.model}</td><td>{m.mining} / {m.count}</td><td>{m.breakevenUsdKwh === null ? '–' : `${usd(m.breakevenUsdKwh, 4)}/kWh`}</td><td>{m.effectiveBreakevenUsdKwh === null ? '–' : `${usd(m.effectiveBreakevenUsdKwh, 4)}/kWh at ${m.bestPowerTargetW} W`}</td></tr>)}</tbody>
                  </table>
                </>
              ) : <p data-testid={`econ-explanation-${s.id}`}>No decision yet.</p>}
            </section>
          );
        })}
      </div>

      <h3>Recent decisions <small>(the last hour, newest first)</small></h3>
      <table data-testid="decisions">
        <thead><tr><th>When</th><th>Site</th><th>Rule</th><th>Explanation</th><th>Expected margin</th></tr></thead>
        <tbody>
          {econ.history.map((d) => (
            <tr data-testid="decision-row"><td>{new Date(d.at).toLocaleTimeString()}</td><td>{d.site}</td><td>{d.rule}</td><td>{d.summary}</td><td>{d.expected_margin_usd_h === null ? '–' : `${usd(d.expected_margin_usd_h)}/h`}</td></tr>
          ))}
        </tbody>
      </table>

      <h3>Profit as decided, against always-on and the strike rule</h3>
      <div class="range">
        Window: {Object.keys(PRESETS).map((p) => <button class={p === preset ? 'active' : ''} data-testid={`profit-${p}`} onClick={() => choosePreset(p)}>{p}</button>)}
        <form class="range" onSubmit={applyCustom}>
          <label>from <input type="datetime-local" data-testid="profit-from" value={custom.from} onInput={(e) => setCustom({ ...custom, from: (e.target as HTMLInputElement).value })} /></label>
          <label>to <input type="datetime-local" data-testid="profit-to" value={custom.to} onInput={(e) => setCustom({ ...custom, to: (e.target as HTMLInputElement).value })} /></label>
          <button type="submit" class={preset === null ? 'active' : ''} data-testid="profit-apply">Apply</button>
        </form>
        <label>site <select data-testid="profit-site" value={shown?.id ?? ''} onChange={(e) => setSite((e.target as HTMLSelectElement).value)}>{(profit?.sites ?? []).map((s) => <option value={s.id}>{s.id}</option>)}</select></label>
      </div>
      {profitError && <p class="error" role="alert" data-testid="profit-error">{profitError}</p>}
      {profit && (
        <>
          <table data-testid="profit-totals">
            <thead><tr><th>Site</th>{STRATEGY.map((k) => <th>{k.label}</th>)}<th>HCP over always-on</th><th>HCP over strike</th><th>Decisions</th></tr></thead>
            <tbody>
              {[...profit.sites, { id: 'all sites', total_usd: profit.total_usd, decisions: profit.sites.reduce((n, s) => n + s.decisions, 0) }].map((s) => (
                <tr><td>{s.id}</td>{STRATEGY.map((k) => <td>{money(s.total_usd[k.key]!)}</td>)}<td>{money(s.total_usd.hcp! - s.total_usd.always_on!)}</td><td>{money(s.total_usd.hcp! - s.total_usd.strike!)}</td><td>{s.decisions}</td></tr>
              ))}
            </tbody>
          </table>
          <p class="hint">{new Date(profit.from).toLocaleString()} to {new Date(profit.to).toLocaleString()}. {profit.basis}.</p>
          <Chart
            title={`Cumulative ASIC profit at ${shown?.id ?? '–'} (USD)`}
            testId="profit-chart"
            data={[t, ...STRATEGY.map((k) => (shown?.series[`${k.key}_usd`] ?? []) as number[])]}
            series={STRATEGY.map((k) => ({ label: k.label, stroke: k.stroke, unit: 'USD', digits: 4 }))}
          />
        </>
      )}

      <h3>Backtest</h3>
      <Backtest />
    </div>
  );
}
