// The latest price of every feed, in memory: what the economic engine decides on. A feed with no
// tick yet is absent, and the engine leaves the sites that depend on it as they are.
import type { PriceRow } from '../db/price-store.js';

export interface Tick {
  price: number;
  /** the tick's own time (the publisher's clock, which may be a fast sim clock) */
  tsMs: number;
  /** when the control plane heard it */
  receivedAtMs: number;
}

export class PriceBook {
  btcUsd: Tick | null = null;
  gpuSpot: Tick | null = null;
  readonly power = new Map<string, Tick>();

  set(feed: string, site: string | null, t: Tick): void {
    if (feed === 'btc_usd') this.btcUsd = newer(this.btcUsd, t);
    else if (feed === 'gpu_spot') this.gpuSpot = newer(this.gpuSpot, t);
    else if (feed === 'power' && site) this.power.set(site, newer(this.power.get(site) ?? null, t));
  }

  load(rows: PriceRow[]): void {
    for (const r of rows) this.set(r.feed, r.siteId, { price: r.price, tsMs: r.timeMs, receivedAtMs: r.timeMs });
  }

  view() {
    const v = (t: Tick | null) => (t ? { price: t.price, ts: new Date(t.tsMs).toISOString(), received_at: new Date(t.receivedAtMs).toISOString() } : null);
    return {
      btc_usd: v(this.btcUsd),
      gpu_spot_usd_h: v(this.gpuSpot),
      power_usd_kwh: Object.fromEntries([...this.power].sort(([a], [b]) => a.localeCompare(b)).map(([s, t]) => [s, v(t)])),
    };
  }
}

// A replayed or delayed tick older than the one held does not replace it.
const newer = (held: Tick | null, t: Tick): Tick => (held && held.tsMs > t.tsMs ? held : t);
