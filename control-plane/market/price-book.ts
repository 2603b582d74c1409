// The latest price of every feed, in memory: what the economic engine decides on. A feed with no
// tick yet is absent, and the engine leaves the sites that depend on it as they are.
//
// The latest tick *received* is current: publishers' clocks differ (the demo's market sim runs
// 144× real time, mosquitto_pub stamps wall time), so a tick's own time cannot order them. For
// power the engine decides on the highest price since its last decision: a spike between two
// decisions is a cost the site pays, not noise to be averaged away.
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
  private readonly peaks = new Map<string, Tick>();

  set(feed: string, site: string | null, t: Tick): void {
    if (feed === 'btc_usd') this.btcUsd = t;
    else if (feed === 'gpu_spot') this.gpuSpot = t;
    else if (feed === 'power' && site) {
      this.power.set(site, t);
      const peak = this.peaks.get(site);
      if (!peak || t.price > peak.price) this.peaks.set(site, t);
    }
  }

  /** the highest power price for the site since the last call (the latest when none came since) */
  takePowerPeak(site: string): Tick | null {
    const p = this.peaks.get(site) ?? this.power.get(site) ?? null;
    this.peaks.delete(site);
    return p;
  }

  load(rows: PriceRow[]): void {
    for (const r of [...rows].sort((a, b) => a.timeMs - b.timeMs)) this.set(r.feed, r.siteId, { price: r.price, tsMs: r.timeMs, receivedAtMs: r.timeMs });
    this.peaks.clear();
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
