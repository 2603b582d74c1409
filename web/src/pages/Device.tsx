// Device: its latest reading, its series over a chosen range (telemetry endpoint) and the commands
// that named it (the site's commands, live from the stream's `command` events).
import { useEffect, useState } from 'preact/hooks';
import { api, messageOf } from '../api.js';
import { Chart } from '../components/Chart.js';
import { ago, num, secs } from '../format.js';
import { liveSite, useLive } from '../live.js';
import { Link } from '../router.js';
import type { PageProps } from './page.js';

const RANGES: Record<string, number> = { '15m': 15 * 60, '1h': 3600, '6h': 6 * 3600 };

export function DevicePage({ params }: PageProps) {
  const id = params.id!;
  const [device, setDevice] = useState<any>(null);
  const [range, setRange] = useState('15m');
  const [points, setPoints] = useState<any[]>([]);
  const [commands, setCommands] = useState<any[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api(`/api/v1/devices/${encodeURIComponent(id)}`).then((d) => {
      setDevice(d);
      return api(`/api/v1/commands?site=${encodeURIComponent(d.site)}&limit=200`).then((r) => setCommands(r.commands));
    }).catch((e) => setError(messageOf(e)));
  }, [id]);
  useEffect(() => {
    const from = new Date(Date.now() - RANGES[range]! * 1000).toISOString();
    api(`/api/v1/telemetry?device=${encodeURIComponent(id)}&from=${from}`).then((t) => setPoints(t.points), (e) => setError(messageOf(e)));
  }, [id, range]);
  // live: its site's devices once a second (the stream's `devices`), its reading and a point each
  useEffect(() => {
    if (!device?.site) return;
    liveSite(device.site);
    return () => liveSite(null);
  }, [device?.site]);
  useLive<{ site: string; devices: any[] }>('devices', (e) => {
    const d = e.devices.find((x) => x.id === id);
    if (!d) return;
    setDevice(d);
    const l = d.latest;
    if (!l) return;
    const point = d.kind === 'asic'
      ? { ts: l.ts, power_w: l.power_w, hashrate_ths: l.hashrate_ths, max_chip_temperature_c: l.chip_temperatures_c?.length ? Math.max(...l.chip_temperatures_c) : null }
      : { ts: l.ts, power_w: l.power_w, utilization_pct: l.utilization_pct, max_temperature_c: l.temperature_c };
    setPoints((ps) => (ps.length && ps[ps.length - 1].ts >= l.ts ? ps : [...ps, point]));
  });
  useLive<any>('command', (c) => {
    if (!device || c.site !== device.site) return;
    setCommands((list) => [c, ...list.filter((x) => x.id !== c.id)].slice(0, 200));
  });

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!device) return <p>Loading…</p>;
  const t = points.map((p) => secs(p.ts));
  const col = (k: string) => points.map((p) => p[k] ?? null);
  // a command names its devices (devices[]) or, with none named, is for the whole site
  const mine = commands.filter((c) => !c.devices || c.devices.length === 0 || c.devices.some((d: any) => d.device_id === id) || (c.params?.device_ids ?? []).includes(id));
  const l = device.latest ?? {};
  return (
    <div class="page device" data-testid="device-page">
      <p><Link href={`/sites/${device.site}`}>← {device.site}</Link></p>
      <h2>{device.kind.toUpperCase()} {id}</h2>
      <div class="totals">
        <div><span>Model</span><b>{device.model}</b></div>
        <div><span>State</span><b class={device.online ? 'ok' : 'bad'}>{device.online ? (device.kind === 'asic' ? l.mining_state : l.state) : 'offline'}</b></div>
        <div><span>Power</span><b>{num(l.power_w, 0, 'W')}</b></div>
        {device.kind === 'asic' ? <div><span>Hashrate</span><b>{num(l.hashrate_ths, 1, 'TH/s')}</b></div> : <div><span>Utilization</span><b>{num(l.utilization_pct, 0, '%')}</b></div>}
        <div><span>Last seen</span><b>{ago(device.last_seen)}</b></div>
      </div>
      <div class="range">Range: {Object.keys(RANGES).map((r) => <button class={r === range ? 'active' : ''} onClick={() => setRange(r)}>{r}</button>)}</div>
      <div class="charts">
        <Chart title="Power (W)" testId="chart-device-power" yMin={0} data={[t, col('power_w')]} series={[{ label: 'power', stroke: '#2266cc', unit: 'W' }]} />
        {device.kind === 'asic'
          ? <Chart title="Hashrate (TH/s)" testId="chart-device-hashrate" yMin={0} data={[t, col('hashrate_ths')]} series={[{ label: 'hashrate', stroke: '#c77d00', unit: 'TH/s' }]} />
          : <Chart title="Utilization (%)" testId="chart-device-util" yMin={0} data={[t, col('utilization_pct')]} series={[{ label: 'utilization', stroke: '#22aa55', unit: '%' }]} />}
        <Chart title="Temperature (°C)" testId="chart-device-temp" data={[t, device.kind === 'asic' ? col('max_chip_temperature_c') : col('max_temperature_c')]} series={[{ label: 'temperature', stroke: '#cc4400', unit: '°C' }]} />
      </div>
      <h3>Commands</h3>
      <table data-testid="device-commands">
        <thead><tr><th>Created</th><th>Type</th><th>State</th><th>By</th><th>Why</th></tr></thead>
        <tbody>{mine.map((c) => <tr><td>{ago(c.created_at)}</td><td>{c.type}</td><td>{c.state}</td><td>{c.actor}</td><td>{c.details?.reason ?? c.message ?? ''}</td></tr>)}</tbody>
      </table>
    </div>
  );
}
