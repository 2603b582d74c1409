// Grid events: each under-frequency event as it happened, from the reading to the devices asleep.
// Per region: the frequency over the last minutes (the control plane keeps 10 min of readings;
// the stream's grid.frequency extends it), the trip threshold, and each event: the reading that
// started it, every agent's local trip (its own time from the reading to the ASICs told to sleep,
// how many, the power they drew), the control plane's curtail of the region, the staged restore.
// The event log comes from GET /api/v1/grid, read again when the stream says something changed
// (an agent's trip, a reading past the thresholds): no timer.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, messageOf } from '../api.js';
import { Chart } from '../components/Chart.js';
import { ago, kw, num, secs } from '../format.js';
import { useLive } from '../live.js';
import type { PageProps } from './page.js';

interface GridAction {
  region: string; action: 'curtail' | 'restore' | 'restored' | 'agent_trip' | string; at: string;
  hz?: number; sites?: string[]; commands?: number; detail?: string; trip_ms?: number; devices?: number; shed_w?: number;
}
interface GridView {
  trip_hz: number; recover_hz: number; hold_s: number; stages: number; stage_interval_s: number;
  regions: Array<{ region: string; sites: string[]; phase: string; last_hz: number | null; last_reading_at: string | null; agent_trips: Array<{ site: string; armed: boolean; threshold_hz: number | null; custom: boolean }> }>;
  events: GridAction[];
  readings?: Record<string, Array<{ at: string; hz: number }>>;
}

/** one event: from the first trip or curtail in a region to its 'restored' */
interface Episode { region: string; start: string; end: string | null; lowest: number | null; actions: GridAction[] }

/** the log (newest first) as events, newest first: a trip or curtail opens one, 'restored' closes it */
export function episodesOf(events: GridAction[]): Episode[] {
  const open = new Map<string, Episode>();
  const all: Episode[] = [];
  for (const e of [...events].reverse()) {
    let ep = open.get(e.region);
    if (!ep && (e.action === 'curtail' || e.action === 'agent_trip')) {
      ep = { region: e.region, start: e.at, end: null, lowest: null, actions: [] };
      open.set(e.region, ep);
      all.push(ep);
    }
    if (!ep) continue;
    ep.actions.push(e);
    if (e.hz !== undefined && e.action !== 'restored') ep.lowest = ep.lowest === null ? e.hz : Math.min(ep.lowest, e.hz);
    if (e.action === 'restored') {
      ep.end = e.at;
      open.delete(e.region);
    }
  }
  // an action is stamped when it began (the curtail before its commands went), not when logged
  for (const ep of all) {
    ep.actions.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    ep.start = ep.actions[0]!.at;
  }
  return all.reverse();
}

const WINDOW_S = 10 * 60;

export function GridEventsPage(_: PageProps) {
  const [view, setView] = useState<GridView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const readings = useRef(new Map<string, Array<{ t: number; hz: number }>>());
  const [tick, setTick] = useState(0);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);

  const load = () =>
    api<GridView>('/api/v1/grid').then((v) => {
      setView(v);
      setError(null);
      for (const [region, xs] of Object.entries(v.readings ?? {})) {
        const live = readings.current.get(region) ?? [];
        const past = xs.map((x) => ({ t: secs(x.at), hz: x.hz })).filter((p) => !live.length || p.t < live[0]!.t);
        readings.current.set(region, [...past, ...live]);
      }
      setTick((n) => n + 1);
    }, (err) => setError(messageOf(err)));
  // the control plane records its actions just after the stream tells of their cause: read once
  // the burst is over, not once per event
  const reload = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      void load();
    }, 400);
  };
  useEffect(() => {
    void load();
    return () => pending.current && clearTimeout(pending.current);
  }, []);

  useLive<{ region: string; hz: number; at: string }>('grid.frequency', (r) => {
    const xs = readings.current.get(r.region) ?? [];
    const t = secs(r.at);
    xs.push({ t, hz: r.hz });
    while (xs.length && xs[0]!.t < t - WINDOW_S) xs.shift();
    readings.current.set(r.region, xs);
    setTick((n) => n + 1);
    const region = view?.regions.find((x) => x.region === r.region);
    // past a threshold, or back while the region is held: the guard may act on this reading
    if (view && (r.hz < view.trip_hz || (region && region.phase !== 'normal' && r.hz >= view.recover_hz))) reload();
  });
  useLive('grid.trip', () => reload());

  const episodes = useMemo(() => (view ? episodesOf(view.events) : []), [view]);

  if (error && !view) return <div class="error" data-testid="grid-error">{error}</div>;
  if (!view) return <p>Loading…</p>;
  return (
    <div data-testid="grid-page">
      <h2>Grid events</h2>
      {error && <div class="error">{error}</div>}
      <p class="hint">
        The control plane takes every ASIC of a region off below {view.trip_hz} Hz and hands them back in {view.stages} stages,{' '}
        {view.stage_interval_s} s apart, once the frequency has held at {view.recover_hz} Hz or more for {view.hold_s} s. Agents with a local
        trip armed put their ASICs to sleep themselves, on their own reading, without waiting for the control plane.
      </p>
      <div class="charts">
        {view.regions.map((r) => {
          const xs = readings.current.get(r.region) ?? [];
          const trip = r.agent_trips.find((t) => t.armed)?.threshold_hz ?? view.trip_hz;
          return (
            <section class="site-card" data-testid={`region-${r.region}`}>
              <h3>{r.region} <span class={r.phase === 'normal' ? 'ok' : 'bad'} data-testid={`phase-${r.region}`}>{r.phase}</span></h3>
              <p>
                {num(r.last_hz, 3, 'Hz')} <small>{ago(r.last_reading_at)}</small> · sites {r.sites.join(', ') || '–'} · local trips:{' '}
                {r.agent_trips.map((t) => `${t.site} ${t.armed ? `armed below ${t.threshold_hz} Hz${t.custom ? ' (set)' : ''}` : 'off'}`).join('; ') || '–'}
              </p>
              <Chart
                title={`${r.region} frequency (Hz)`}
                testId={`chart-frequency-${r.region}`}
                height={160}
                data={[xs.map((p) => p.t), xs.map((p) => p.hz), xs.map(() => trip)]}
                series={[{ label: 'frequency', stroke: '#2266cc', unit: 'Hz' }, { label: 'trip', stroke: '#cc2222', dash: [6, 4], unit: 'Hz' }]}
              />
            </section>
          );
        })}
      </div>
      <h3>Events</h3>
      {episodes.length === 0 && <p data-testid="no-grid-events">No under-frequency event since this control plane started.</p>}
      {episodes.map((ep, i) => <EpisodeView ep={ep} index={i} />)}
      <span hidden>{tick}</span>
    </div>
  );
}

function EpisodeView({ ep, index }: { ep: Episode; index: number }) {
  const t0 = Date.parse(ep.start);
  const since = (at: string) => `+${Math.max(0, (Date.parse(at) - t0) / 1000).toFixed(1)} s`;
  const trips = ep.actions.filter((a) => a.action === 'agent_trip');
  const shed = trips.reduce((n, a) => n + (a.shed_w ?? 0), 0);
  return (
    <section class="site-card episode" data-testid={`grid-event-${index}`} data-region={ep.region}>
      <h4>
        {ep.region}: {new Date(ep.start).toLocaleString()} · lowest {num(ep.lowest, 3, 'Hz')} ·{' '}
        {ep.end ? <span class="ok">restored after {((Date.parse(ep.end) - t0) / 1000).toFixed(0)} s</span> : <span class="bad">in progress</span>}
      </h4>
      {trips.length > 0 && (
        <table data-testid={`grid-event-${index}-trips`}>
          <thead><tr><th>Agent</th><th>Reading</th><th>Trip (reading → ASICs told to sleep)</th><th>ASICs</th><th>Power shed</th></tr></thead>
          <tbody>
            {trips.map((a) => (
              <tr data-testid={`trip-${a.sites?.[0]}`}>
                <td>{a.sites?.[0]}</td>
                <td>{num(a.hz ?? null, 3, 'Hz')}</td>
                <td data-testid={`trip-ms-${a.sites?.[0]}`}>{a.trip_ms !== undefined ? `${a.trip_ms} ms` : '–'}</td>
                <td>{a.devices ?? '–'}</td>
                <td>{kw(a.shed_w ?? null)}</td>
              </tr>
            ))}
          </tbody>
          <tfoot><tr><td colSpan={4}>Shed by the agents' own trips</td><td data-testid={`grid-event-${index}-shed`}>{kw(shed)}</td></tr></tfoot>
        </table>
      )}
      <ol class="timeline">
        {ep.actions.filter((a) => a.action !== 'agent_trip').map((a) => (
          <li>
            <small>{since(a.at)}</small> <b>{a.action}</b>
            {a.action === 'curtail' && <> at {num(a.hz ?? null, 3, 'Hz')}: every ASIC of {a.sites?.join(', ') || 'no site'} off, {a.commands ?? 0} {a.commands === 1 ? 'command' : 'commands'}</>}
            {a.detail && <> · {a.detail}</>}
          </li>
        ))}
      </ol>
    </section>
  );
}
