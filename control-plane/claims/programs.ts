// Standing programs an operator sets up ahead of time, kept as claims as their windows open and
// close (checked every second, and at once when a program changes):
// - a time-of-day schedule's 'off' window (site local time) is a `schedule` claim: every ASIC off
//   until the window closes;
// - a demand-response commitment in force is a `demand_response` site cap: the site's capacity
//   less the MW committed, until the commitment ends (its expiry).
import type { Logger } from 'pino';
import { scheduleOffAt } from '../economics/engine.js';
import { utcOffsetHours } from '../dispatch/economic-dispatch.js';
import type { SiteControls } from '../dispatch/site-controls.js';
import type { Registry } from '../registry/registry.js';
import type { ClaimsService } from './service.js';
import { ALWAYS_LEADING, type Leadership } from '../ha/lease.js';

export const PROGRAMS_ACTOR = 'system:programs';

export interface ProgramsDeps {
  claims: ClaimsService;
  controls: SiteControls;
  registry: Registry;
  /** facility time zones, for schedules in local time */
  timezoneOf: (siteId: string) => string;
  log: Logger;
  intervalMs?: number;
  now?: () => number;
  /** a singleton loop (ha/lease.ts): runs only while this replica leads; default: always */
  leader?: Pick<Leadership, 'leading' | 'fenced'>;
}

export function createPrograms(d: ProgramsDeps) {
  const now = d.now ?? Date.now;

  async function syncSite(siteId: string, at: number): Promise<void> {
    const site = d.registry.site(siteId);
    if (!site) return;
    const mine = d.claims.list(siteId);
    // the schedule
    const ctl = d.controls.get(siteId);
    const off = scheduleOffAt(ctl.schedule, at, utcOffsetHours(d.timezoneOf(siteId), at));
    const sched = mine.filter((c) => c.source === 'schedule');
    if (off && sched.length === 0) {
      await d.claims.set({ siteId, source: 'schedule', deviceIds: [], want: { kind: 'mining', enabled: false, powerTargetW: null }, reason: 'schedule: an off window is open', actor: PROGRAMS_ACTOR, expiresAtMs: null });
    } else if (!off) {
      for (const c of sched) await d.claims.release(c.id, PROGRAMS_ACTOR, 'schedule: the off window closed');
    }
    // demand response: what is in force now, as one cap
    const active = d.controls.demandResponse(siteId, at).filter((c) => c.fromMs <= at && c.toMs > at);
    const dr = mine.filter((c) => c.source === 'demand_response');
    if (active.length && site.powerCapacityKw > 0) {
      const capKw = Math.max(0, site.powerCapacityKw - active.reduce((kw, c) => kw + c.mw * 1000, 0));
      const until = Math.min(...active.map((c) => c.toMs));
      const cur = dr[0];
      if (!cur || dr.length > 1 || cur.want.kind !== 'site_cap' || cur.want.capKw !== capKw || cur.expiresAtMs !== until) {
        await d.claims.set({
          siteId, source: 'demand_response', deviceIds: [], want: { kind: 'site_cap', capKw }, actor: PROGRAMS_ACTOR, expiresAtMs: until,
          reason: `demand response: ${active.map((c) => `${c.mw} MW${c.program ? ` (${c.program})` : ''}`).join(' + ')} committed`,
        });
      }
    } else {
      for (const c of dr) await d.claims.release(c.id, PROGRAMS_ACTOR, 'demand response: no commitment in force');
    }
  }

  let running: Promise<void> | null = null;
  const syncAll = async () => {
    const at = now();
    for (const s of d.registry.sites()) {
      try {
        await syncSite(s.id, at);
      } catch (err) {
        d.log.error({ err, site: s.id }, 'could not keep the site programs as claims');
      }
    }
  };
  const leader = d.leader ?? ALWAYS_LEADING;
  const tick = () => {
    if (running || !leader.leading()) return;
    running = leader.fenced(syncAll).finally(() => {
      running = null;
    });
  };
  const timer = setInterval(tick, d.intervalMs ?? 1000);
  timer.unref();

  return {
    /** after an operator changed a schedule or a commitment */
    async syncNow(siteId?: string): Promise<void> {
      while (running) await running;
      if (siteId) await syncSite(siteId, now());
      else await syncAll();
    },
    async close(): Promise<void> {
      clearInterval(timer);
      await running;
    },
  };
}

export type Programs = ReturnType<typeof createPrograms>;
