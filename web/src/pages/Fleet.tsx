// Fleet: every site (power against capacity, hashrate, GPU use, its decision and why), prices and
// break-even, grid state per region, and the fleet's power, ASIC and GPU stacked, with the cap.
// Live from the stream's `fleet` summary; history from the telemetry endpoint when the page opens.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, messageOf } from '../api.js';
import { Chart } from '../components/Chart.js';
import { ago, kw, num, secs, usd } from '../format.js';
import { useLive } from '../live.js';
import { Link } from '../router.js';
import type { PageProps } from './page.js';

export interface SiteSummary {
  id: string; name: string; region: string; power_capacity_kw: number; online: boolean; last_seen: string | null;
  gpus: number; asics: number; gpus_online: number; asics_online: number; gpus_busy: number; asics_mining: number;
  hashrate_ths: number; power_w: number; gpu_power_w: number; asic_power_w: number; gpu_utilization_pct: number | null;
  mode: string | null; decision: { at: string; rule: string; summary: string; expected_usd_h?: number } | null;
}
export interface FleetSummary {
  at: string;
  sites: SiteSummary[];
  fleet: { sites_online: number; sites_total: number; devices_online: number; devices_total: number; hashrate_ths: number; power_w: number; gpu_utilization_pct: number | null };
  prices: { btc_usd: { price: number } | null; gpu_spot_usd_h: { price: number } | null; power_usd_kwh: Record<string, { price: number } | null> } | null;
  grid: { trip_hz: number; regions: Array<{ region: string; sites: string[]; phase: string; last_hz: number | null; last_reading_at: string | null; agent_trips: Array<{ site: string; armed: boolean; threshold_hz: number | null }> }> } | null;
}

const WINDOW_S = 30 * 60;
type Point = { t: number; asic: number; gpu: number };

export function FleetPage(_: PageProps) {
  const [fleet, setFleet] = useState<FleetSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [economics, setEconomics] = useState<any>(null);
  // per site: its power over the window, ASIC and GPU kW apart
  const history = useRef(new Map<string, Point[]>());
  const [tick, setTick] = useState(0);
  const decisionsSeen = useRef('');

  useEffect(() => {
    // history of each site when the page opens; the stream extends it
    api<{ sites: Array<{ id: string }> }>('/api/v1/sites?limit=200').then(async (r) => {
      const from = new Date(Date.now() - 15 * 60_000).toISOString();
      await Promise.all(r.sites.map(async (s) => {
        const t = await api<{ points: Array<{ ts: string; gpu_power_w: number; asic_power_w: number }> }>(`/api/v1/telemetry?site=${encodeURIComponent(s.id)}&from=${from}&bucket=10s`);
        const past = t.points.map((p) => ({ t: secs(p.ts), asic: p.asic_power_w / 1000, gpu: p.gpu_power_w / 1000 }));
        const live = history.current.get(s.id) ?? [];
        history.current.set(s.id, [...past.filter((p) => !live.length || p.t < live[0]!.t), ...live]);
      }));
      setTick((n) => n + 1);
    }).catch((err) => setError(messageOf(err)));
  }, []);

  useLive<FleetSummary>('fleet', (f) => {
    setFleet(f);
    const t = secs(f.at);
    for (const s of f.sites) {
      const h = history.current.get(s.id) ?? [];
      h.push({ t, asic: s.asic_power_w / 1000, gpu: s.gpu_power_w / 1000 });
      while (h.length && h[0]!.t < t - WINDOW_S) h.shift();
      history.current.set(s.id, h);
    }
    setTick((n) => n + 1);
    // break-even and margins come with the decisions: read again when a decision is new
    const seen = f.sites.map((s) => s.decision?.at ?? '').join(',');
    if (seen !== decisionsSeen.current) {
      decisionsSeen.current = seen;
      api('/api/v1/economics?limit=20').then(setEconomics, () => {});
    }
  });

  // the fleet's stack, on the union of the sites' times (each site's newest point at or before t)
  const stacked = useMemo(() => {
    const all = [...history.current.values()];
    const times = [...new Set(all.flatMap((h) => h.map((p) => p.t)))].sort((a, b) => a - b);
    const asic: number[] = [], total: number[] = [], cap: number[] = [];
    const capKw = (fleet?.sites ?? []).reduce((n, s) => n + s.power_capacity_kw, 0);
    const idx = all.map(() => 0);
    for (const t of times) {
      let a = 0, g = 0;
      all.forEach((h, i) => {
        while (idx[i]! + 1 < h.length && h[idx[i]! + 1]!.t <= t) idx[i]!++;
        const p = h[idx[i]!];
        if (p && p.t <= t) { a += p.asic; g += p.gpu; }
      });
      asic.push(a);
      total.push(a + g);
      cap.push(capKw);
    }
    return [times, asic, total, cap];
  }, [tick, fleet?.sites.length]);

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!fleet) return <p>Waiting for the fleet…</p>;
  const breakeven = (site: string) => {
    const s = economics?.sites?.find((x: any) => x.id === site);
    return (s?.profitability ?? []) as Array<{ device_class: string; breakeven_usd_kwh: number | null; margin_usd_h: number }>;
  };
  return (
    <div class="page fleet" data-testid="fleet-page">
      <h2>Fleet</h2>
      <div class="totals">
        <div><span>Sites online</span><b>{fleet.fleet.sites_online} / {fleet.fleet.sites_total}</b></div>
        <div><span>Devices online</span><b>{fleet.fleet.devices_online} / {fleet.fleet.devices_total}</b></div>
        <div><span>Power</span><b>{kw(fleet.fleet.power_w)}</b></div>
        <div><span>Hashrate</span><b>{num(fleet.fleet.hashrate_ths / 1000, 2, 'PH/s')}</b></div>
        <div><span>GPU utilization</span><b>{num(fleet.fleet.gpu_utilization_pct, 0, '%')}</b></div>
        <div><span>BTC</span><b data-testid="btc">{usd(fleet.prices?.btc_usd?.price ?? null, 0)}</b></div>
        <div><span>GPU spot</span><b>{fleet.prices?.gpu_spot_usd_h ? `${usd(fleet.prices.gpu_spot_usd_h.price)}/h` : '–'}</b></div>
      </div>
      <Chart
        title="Fleet power (kW): ASIC and GPU stacked, with the capacity"
        testId="chart-fleet-power"
        data={stacked}
        yMin={0}
        series={[
          { label: 'ASIC', stroke: '#c77d00', fill: 'rgba(230,150,0,0.35)', unit: 'kW' },
          { label: 'ASIC + GPU', stroke: '#2266cc', fill: 'rgba(40,110,220,0.25)', unit: 'kW' },
          { label: 'capacity', stroke: '#cc2222', dash: [6, 4], unit: 'kW' },
        ]}
      />
      <div class="sites">
        {fleet.sites.map((s) => {
          const h = history.current.get(s.id) ?? [];
          const pct = s.power_capacity_kw ? Math.min(100, (s.power_w / 1000 / s.power_capacity_kw) * 100) : 0;
          const price = fleet.prices?.power_usd_kwh?.[s.id]?.price;
          return (
            <section class="site-card" data-testid={`site-card-${s.id}`}>
              <h3><Link href={`/sites/${s.id}`}>{s.name || s.id}</Link> <small>{s.region}</small> <span class={s.online ? 'ok' : 'bad'}>{s.online ? 'online' : 'offline'}</span></h3>
              <div class="bar" title={`${pct.toFixed(0)}% of capacity`}><div style={{ width: `${pct}%` }} /></div>
              <p>{kw(s.power_w)} of {s.power_capacity_kw} kW · {num(s.hashrate_ths, 0, 'TH/s')} · GPUs {num(s.gpu_utilization_pct, 0, '%')} used, {s.gpus_busy}/{s.gpus} busy · ASICs {s.asics_mining}/{s.asics} hashing</p>
              <p>Power {price !== undefined ? `${usd(price, 4)}/kWh` : '–'} · break-even {breakeven(s.id).filter((b) => b.breakeven_usd_kwh !== null).map((b) => `${b.device_class} ${usd(b.breakeven_usd_kwh, 4)}/kWh`).join(', ') || '–'}</p>
              <p class="decision" data-testid={`decision-${s.id}`}>Mode <b>{s.mode ?? '–'}</b> · {s.decision ? <><b>{s.decision.rule}</b>: {s.decision.summary} <small>({ago(s.decision.at)})</small></> : 'no decision yet'}</p>
              <Chart
                title={`${s.id} power (kW)`}
                testId={`chart-site-${s.id}`}
                height={140}
                yMin={0}
                data={[h.map((p) => p.t), h.map((p) => p.asic), h.map((p) => p.asic + p.gpu)]}
                series={[{ label: 'ASIC', stroke: '#c77d00', fill: 'rgba(230,150,0,0.35)', unit: 'kW' }, { label: 'total', stroke: '#2266cc', unit: 'kW' }]}
              />
            </section>
          );
        })}
      </div>
      <h3>Grid</h3>
      <table data-testid="grid-table">
        <thead><tr><th>Region</th><th>Phase</th><th>Frequency</th><th>Sites</th><th>Agent trips</th></tr></thead>
        <tbody>
          {(fleet.grid?.regions ?? []).map((r) => (
            <tr>
              <td>{r.region}</td>
              <td class={r.phase === 'normal' ? '' : 'bad'}>{r.phase}</td>
              <td>{num(r.last_hz, 3, 'Hz')} <small>{ago(r.last_reading_at)}</small></td>
              <td>{r.sites.join(', ')}</td>
              <td>{r.agent_trips.map((t) => `${t.site} ${t.armed ? `armed < ${t.threshold_hz} Hz` : 'off'}`).join('; ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
