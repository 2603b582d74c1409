// Grid frequency simulator, one reading per region per interval. It holds nominal 60 Hz with a
// tiny deterministic jitter (±0.01 Hz, well inside ERCOT's ±0.036 Hz governor dead-band) and
// departs from it only for events scheduled in its configuration, so a demo or a test decides
// exactly when a region sees an under-frequency event (ERCOT trips load resources at 59.7 Hz).
//
// Wiring: feeds-main.ts calls `createLiveGrid({ clock, … }).poll()` on a timer and publishes each
// reading as `{ ts, hz }` on hcp/v1/grid/<region>/frequency (proto/market-topics.ts).
import type { Clock } from './clock.js';
import { createRng } from './rng.js';

export const NOMINAL_HZ = 60;
export const DEFAULT_GRID_INTERVAL_MS = 1000;
const JITTER_HZ = 0.01;

export interface GridEvent {
  region: string;
  /** ISO-8601 time, or seconds after the simulator's start */
  at: string | number;
  /** frequency held for the whole event */
  hz: number;
  duration_s: number;
}

export interface GridReading {
  region: string;
  ts: string;
  hz: number;
}

export interface GridSimOptions {
  seed: number | string;
  regions: readonly string[];
  events?: readonly GridEvent[];
  /** sim time the simulator starts at; relative event times count from here */
  startMs: number;
  intervalMs?: number;
}

interface ResolvedEvent {
  region: string;
  fromMs: number;
  toMs: number;
  hz: number;
}

export class GridEventError extends Error {
  readonly code = 'invalid_grid_event';
  constructor(readonly problems: string[]) {
    super(`invalid grid events:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function resolveEvents(o: GridSimOptions): ResolvedEvent[] {
  const problems: string[] = [];
  const out: ResolvedEvent[] = [];
  (o.events ?? []).forEach((e, i) => {
    const fromMs = typeof e.at === 'number' ? o.startMs + e.at * 1000 : Date.parse(e.at);
    if (!Number.isFinite(fromMs)) problems.push(`event ${i}: at ${JSON.stringify(e.at)} is neither ISO-8601 nor seconds`);
    if (!o.regions.includes(e.region)) problems.push(`event ${i}: region ${JSON.stringify(e.region)} is not simulated (${o.regions.join(', ')})`);
    if (!(e.hz > 40 && e.hz < 80)) problems.push(`event ${i}: hz ${e.hz} is not a plausible frequency`);
    if (!(e.duration_s > 0)) problems.push(`event ${i}: duration_s must be > 0, got ${e.duration_s}`);
    out.push({ region: e.region, fromMs, toMs: fromMs + e.duration_s * 1000, hz: e.hz });
  });
  if (problems.length > 0) throw new GridEventError(problems);
  return out.sort((a, b) => a.fromMs - b.fromMs);
}

export interface GridSim {
  /** the frequency of a region at a time: the event's, or 60 Hz ± jitter */
  at(region: string, ms: number): GridReading;
  /** event start times in [fromMs, toMs], so a coarse poll never skips a short event */
  eventStartsBetween(region: string, fromMs: number, toMs: number): number[];
}

export function createGridSim(o: GridSimOptions): GridSim {
  const events = resolveEvents(o);
  const intervalMs = o.intervalMs ?? DEFAULT_GRID_INTERVAL_MS;
  const root = createRng(o.seed).fork('grid');
  return {
    at(region, ms) {
      const ev = events.find((e) => e.region === region && ms >= e.fromMs && ms < e.toMs);
      // The jitter is a function of (seed, region, interval), not of how often we are asked.
      const slot = Math.floor(ms / intervalMs);
      const hz = ev ? ev.hz : NOMINAL_HZ + (root.fork(`${region}/${slot}`).next() * 2 - 1) * JITTER_HZ;
      return { region, ts: new Date(ms).toISOString(), hz: Math.round(hz * 1000) / 1000 };
    },
    eventStartsBetween(region, fromMs, toMs) {
      return events.filter((e) => e.region === region && e.fromMs >= fromMs && e.fromMs <= toMs).map((e) => e.fromMs);
    },
  };
}

export interface LiveGridOptions extends Omit<GridSimOptions, 'startMs'> {
  clock: Clock;
  startMs?: number;
}

export interface GridSource {
  /**
   * Readings since the last call: per region the reading at each event start that passed (so a
   * short event is seen even when the clock runs fast) and the reading now; at most one per
   * interval slot.
   */
  poll(): GridReading[];
}

export function createLiveGrid(o: LiveGridOptions): GridSource {
  const startMs = o.startMs ?? o.clock.now();
  const sim = createGridSim({ ...o, startMs });
  const intervalMs = o.intervalMs ?? DEFAULT_GRID_INTERVAL_MS;
  let lastSlot = Math.floor(startMs / intervalMs) - 1;
  let lastMs = startMs - 1;
  return {
    poll() {
      const now = o.clock.now();
      const slot = Math.floor(now / intervalMs);
      if (slot <= lastSlot) return [];
      const out: GridReading[] = [];
      for (const region of o.regions) {
        for (const ms of sim.eventStartsBetween(region, lastMs + 1, now)) if (ms < now) out.push(sim.at(region, ms));
        out.push(sim.at(region, now));
      }
      lastSlot = slot;
      lastMs = now;
      return out.sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
    },
  };
}
