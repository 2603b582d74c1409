// Site: its series over a chosen range (telemetry endpoint), its devices live (the stream's
// `devices` events for this site) coloured by temperature with offline and divergent ones marked,
// its claims and desired state, and the controls a role with fleet.control may use.
import { useEffect, useState } from 'preact/hooks';
import { api, can, messageOf } from '../api.js';
import { Chart } from '../components/Chart.js';
import { Confirm } from '../components/Confirm.js';
import { ago, kw, num, secs } from '../format.js';
import { liveSite, useLive } from '../live.js';
import { Link } from '../router.js';
import type { PageProps } from './page.js';

const RANGES: Record<string, number> = { '15m': 15 * 60, '1h': 3600, '6h': 6 * 3600, '24h': 86400 };

interface Device {
  id: string; kind: 'gpu' | 'asic'; model: string; online: boolean; last_seen: string | null;
  latest: null | { mining_state?: string; hashrate_ths?: number; power_w: number; chip_temperature_c?: number[]; chip_temperatures_c?: number[]; temperature_c?: number; utilization_pct?: number; workload_id?: string | null; state?: string; power_target_w?: number | null };
}

export const tempOf = (d: Device): number | null => {
  const l = d.latest;
  if (!l) return null;
  if (d.kind === 'gpu') return l.temperature_c ?? null;
  const chips = l.chip_temperatures_c ?? [];
  return chips.length ? Math.max(...chips) : null;
};
/** cool blue → hot red over 30–95 °C */
const colourOf = (t: number | null) => {
  if (t === null) return '#bbb';
  const x = Math.max(0, Math.min(1, (t - 30) / 65));
  return `hsl(${Math.round(210 - 210 * x)}, 70%, ${Math.round(55 - 10 * x)}%)`;
};

type Action = { kind: 'mining'; enabled: boolean } | { kind: 'target' } | { kind: 'curtail' } | { kind: 'mode'; mode: 'auto' | 'manual' };

export function SitePage({ me, params }: PageProps) {
  const id = params.id!;
  const [range, setRange] = useState('15m');
  const [series, setSeries] = useState<any[] | null>(null);
  const [prices, setPrices] = useState<Array<{ ts: string; price: number }>>([]);
  const [devices, setDevices] = useState<Device[]>([]);
  const [desired, setDesired] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [action, setAction] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const [reason, setReason] = useState('');
  const [targetW, setTargetW] = useState('3000');
  const control = can(me, 'fleet.control');

  useEffect(() => {
    liveSite(id);
    return () => liveSite(null);
  }, [id]);
  useEffect(() => {
    api(`/api/v1/sites/${encodeURIComponent(id)}`).then((s) => setDevices(s.devices), (e) => setError(messageOf(e)));
  }, [id]);
  const loadDesired = () => api(`/api/v1/sites/${encodeURIComponent(id)}/desired`).then(setDesired, (e) => setError(messageOf(e)));
  useEffect(() => void loadDesired(), [id]);
  useEffect(() => {
    const from = new Date(Date.now() - RANGES[range]! * 1000).toISOString();
    api(`/api/v1/telemetry?site=${encodeURIComponent(id)}&from=${from}`).then((t) => setSeries(t.points), (e) => setError(messageOf(e)));
    api(`/api/v1/prices?feed=power&site=${encodeURIComponent(id)}&from=${from}&limit=5000`).then((p) => setPrices([...p.ticks].reverse()), () => setPrices([]));
  }, [id, range]);

  useLive<{ site: string; devices: Device[] }>('devices', (e) => {
    if (e.site !== id) return;
    setDevices(e.devices);
    // the charts go on live: a point of the site's totals per update (the series' own fields)
    const on = e.devices.filter((d) => d.online && d.latest);
    const sum = (ds: Device[], f: (d: Device) => number) => ds.reduce((n, d) => n + f(d), 0);
    const g = on.filter((d) => d.kind === 'gpu');
    const a = on.filter((d) => d.kind === 'asic');
    const temps = (ds: Device[]) => ds.map(tempOf).filter((x): x is number => x !== null);
    const point = {
      ts: new Date().toISOString(),
      power_w: sum(on, (d) => d.latest!.power_w),
      gpu_power_w: sum(g, (d) => d.latest!.power_w),
      asic_power_w: sum(a, (d) => d.latest!.power_w),
      hashrate_ths: sum(a, (d) => d.latest!.hashrate_ths ?? 0),
      gpu_utilization_pct: g.length ? sum(g, (d) => d.latest!.utilization_pct ?? 0) / g.length : null,
      gpu_max_temperature_c: temps(g).length ? Math.max(...temps(g)) : null,
      asic_max_chip_temperature_c: temps(a).length ? Math.max(...temps(a)) : null,
    };
    setSeries((ps) => (ps ? [...ps.filter((p) => Date.parse(p.ts) >= Date.now() - RANGES[range]! * 1000), point] : ps));
  });
  // the desired state moves with claims and with the commands that carry them out
  useLive<{ claim: { site: string } }>('claim', (e) => {
    if (e.claim.site === id) void loadDesired();
  });
  useLive<{ site: string; state: string }>('command', (e) => {
    if (e.site === id && ['succeeded', 'failed', 'expired'].includes(e.state)) void loadDesired();
  });

  const run = async () => {
    if (!action) return;
    setBusy(true);
    setError(null);
    try {
      const site = encodeURIComponent(id);
      if (action.kind === 'mining') await api(`/api/v1/sites/${site}/mining`, { method: 'POST', body: { enabled: action.enabled, ...(reason ? { reason } : {}) } });
      else if (action.kind === 'target') await api(`/api/v1/sites/${site}/mining`, { method: 'POST', body: { enabled: true, power_target_w: Number(targetW), ...(reason ? { reason } : {}) } });
      else if (action.kind === 'curtail') await api('/api/v1/curtail', { method: 'POST', body: { sites: [id], reason } });
      else await api(`/api/v1/sites/${site}/mode`, { method: 'PUT', body: { mode: action.mode, ...(reason ? { reason } : {}) } });
      setNotice(`${describe(action)}: sent.`);
      setAction(null);
      setReason('');
      void loadDesired();
    } catch (err) {
      setError(messageOf(err));
      setAction(null);
    } finally {
      setBusy(false);
    }
  };
  const describe = (a: Action) =>
    a.kind === 'mining' ? `Mining ${a.enabled ? 'on' : 'off'} at ${id}` : a.kind === 'target' ? `Power target ${targetW} W per ASIC at ${id}` : a.kind === 'curtail' ? `Curtail ${id}` : `Mode ${a.mode} at ${id}`;

  const asics = devices.filter((d) => d.kind === 'asic');
  const gpus = devices.filter((d) => d.kind === 'gpu');
  const asleep = asics.filter((d) => d.online && d.latest?.mining_state === 'sleeping').length;
  // by the state the miner reports (a sleeping miner's 5 s hashrate can lag behind it)
  const hashing = asics.filter((d) => d.online && (d.latest?.mining_state === 'mining' || d.latest?.mining_state === 'ramping')).length;
  const divergent = new Map<string, string>((desired?.divergent ?? []).map((x: any) => [x.device_id, x.reason]));
  const t = (series ?? []).map((p) => secs(p.ts));
  const col = (k: string, scale = 1) => (series ?? []).map((p) => (p[k] === null || p[k] === undefined ? null : p[k] / scale));

  return (
    <div class="page site" data-testid="site-page">
      <p><Link href="/">← Fleet</Link></p>
      <h2>Site {id}</h2>
      {error && <p class="error" role="alert" data-testid="error">{error}</p>}
      {notice && <p class="notice" data-testid="notice">{notice}</p>}
      <div class="totals">
        <div><span>ASICs mining</span><b data-testid="asics-hashing">{hashing} / {asics.length}</b></div>
        <div><span>ASICs asleep</span><b data-testid="asics-asleep">{asleep} / {asics.length}</b></div>
        <div><span>GPUs busy</span><b>{gpus.filter((g) => g.latest?.workload_id).length} / {gpus.length}</b></div>
        <div><span>Power now</span><b>{kw(devices.reduce((n, d) => n + (d.online ? d.latest?.power_w ?? 0 : 0), 0))}</b></div>
        <div><span>Mode</span><b data-testid="mode">{desired?.mode ?? '–'}</b></div>
      </div>
      {control && (
        <div class="controls" data-testid="controls">
          <button data-testid="mining-on" onClick={() => setAction({ kind: 'mining', enabled: true })}>Mining on</button>
          <button data-testid="mining-off" onClick={() => setAction({ kind: 'mining', enabled: false })}>Mining off</button>
          <button data-testid="power-target" onClick={() => setAction({ kind: 'target' })}>Power target…</button>
          <button data-testid="curtail" onClick={() => setAction({ kind: 'curtail' })}>Curtail…</button>
          <button data-testid="mode-auto" onClick={() => setAction({ kind: 'mode', mode: 'auto' })}>Mode auto</button>
          <button data-testid="mode-manual" onClick={() => setAction({ kind: 'mode', mode: 'manual' })}>Mode manual</button>
        </div>
      )}
      {action && (
        <Confirm title={`${describe(action)}?`} busy={busy || (action.kind === 'curtail' && !reason.trim())} onCancel={() => setAction(null)} onConfirm={() => void run()}>
          {action.kind === 'target' && <label>Power target per ASIC (W) <input data-testid="target-w" type="number" min="1" max="10000" value={targetW} onInput={(e) => setTargetW((e.target as HTMLInputElement).value)} /></label>}
          <label>Reason{action.kind === 'curtail' ? ' (required)' : ''} <input data-testid="reason" value={reason} maxLength={500} onInput={(e) => setReason((e.target as HTMLInputElement).value)} /></label>
          <p>This is recorded in the audit log under your key ({me.name}).</p>
        </Confirm>
      )}
      <div class="range">
        Range: {Object.keys(RANGES).map((r) => <button class={r === range ? 'active' : ''} data-testid={`range-${r}`} onClick={() => setRange(r)}>{r}</button>)}
      </div>
      <div class="charts">
        <Chart title="Power (kW)" testId="chart-power" yMin={0} data={[t, col('asic_power_w', 1000), col('gpu_power_w', 1000), col('power_w', 1000)]} series={[{ label: 'ASIC', stroke: '#c77d00', unit: 'kW' }, { label: 'GPU', stroke: '#22aa55', unit: 'kW' }, { label: 'total', stroke: '#2266cc', unit: 'kW' }]} />
        <Chart title="Hashrate (TH/s)" testId="chart-hashrate" yMin={0} data={[t, col('hashrate_ths')]} series={[{ label: 'hashrate', stroke: '#c77d00', unit: 'TH/s' }]} />
        <Chart title="GPU utilization (%)" testId="chart-gpu" yMin={0} data={[t, col('gpu_utilization_pct')]} series={[{ label: 'utilization', stroke: '#22aa55', unit: '%' }]} />
        <Chart title="Temperatures (°C, hottest)" testId="chart-temp" data={[t, col('gpu_max_temperature_c'), col('asic_max_chip_temperature_c')]} series={[{ label: 'GPU', stroke: '#22aa55', unit: '°C' }, { label: 'ASIC chip', stroke: '#cc4400', unit: '°C' }]} />
        <Chart title="Power price ($/kWh, on the feed's clock)" testId="chart-price" data={[prices.map((p) => secs(p.ts)), prices.map((p) => p.price)]} series={[{ label: 'price', stroke: '#7744aa', unit: '$/kWh' }]} />
      </div>
      <h3>Devices <small>colour: temperature; ✕ offline; ! divergent from the desired state</small></h3>
      <div class="device-grid" data-testid="device-grid">
        {devices.map((d) => {
          const temp = tempOf(d);
          const div = divergent.get(d.id);
          const state = d.kind === 'asic' ? d.latest?.mining_state ?? 'unknown' : d.latest?.state ?? 'unknown';
          return (
            <Link href={`/devices/${encodeURIComponent(d.id)}`} class={`tile ${d.online ? '' : 'offline'} ${div ? 'divergent' : ''}`} testId={`device-${d.id}`}>
              <span style={{ background: d.online ? colourOf(temp) : '#888' }} data-state={state} title={`${d.id}: ${state}, ${num(temp, 0, '°C')}${div ? `, divergent: ${div}` : ''}`}>
                {d.kind === 'gpu' ? 'G' : 'A'}{!d.online ? '✕' : div ? '!' : ''}
                <small>{d.online ? state : 'offline'}</small>
              </span>
            </Link>
          );
        })}
      </div>
      <h3>Desired state</h3>
      {desired ? (
        <div data-testid="desired">
          <p>Cap {desired.desired?.cap_kw ?? 'none'} kW · desired: {desired.desired?.mining ?? '–'} mining, {desired.desired?.asleep ?? '–'} asleep · observed: {desired.observed?.mining ?? '–'} mining, {desired.observed?.asleep ?? '–'} asleep, {desired.observed?.offline ?? '–'} offline · {desired.divergent?.length ?? 0} divergent · reconciled {ago(desired.reconciled_at)}</p>
          <table>
            <thead><tr><th>Rule</th><th>Reason</th><th>Mining</th><th>Target W</th><th>Devices</th></tr></thead>
            <tbody>{(desired.desired?.groups ?? []).map((g: any) => <tr><td>{g.rule}</td><td>{g.reason ?? ''}</td><td>{g.mining ? 'yes' : 'no'}</td><td>{g.power_target_w ?? '–'}</td><td>{g.devices}</td></tr>)}</tbody>
          </table>
          <h3>Claims</h3>
          <table data-testid="claims">
            <thead><tr><th>Source</th><th>Kind</th><th>Reason</th><th>By</th><th>Since</th><th>Expires</th></tr></thead>
            <tbody>{(desired.claims ?? []).map((c: any) => <tr><td>{c.source}</td><td>{c.want?.kind === 'mining' ? `mining ${c.want.enabled ? 'on' : 'off'}${c.want.power_target_w ? ` @ ${c.want.power_target_w} W` : ''}` : `cap ${c.want?.cap_kw} kW`} ({c.devices})</td><td>{c.reason ?? ''}</td><td>{c.actor ?? ''}</td><td>{ago(c.created_at)}</td><td>{c.expires_at ? new Date(c.expires_at).toLocaleString() : 'never'}</td></tr>)}</tbody>
          </table>
        </div>
      ) : <p>Loading…</p>}
    </div>
  );
}
