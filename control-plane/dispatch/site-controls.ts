// Operator settings per site: its time-of-day schedule and demand-response commitments (kept as
// claims while in force by claims/programs.ts), its grid-trip settings and its ramp limit. Held in
// memory, written through to the database. (Manual mode is an operator claim now:
// claims/operator.ts; the mode columns of site_controls are no longer written.)
import type { Logger } from 'pino';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import {
  insertDemandResponse, loadDemandResponse, loadSiteControls, saveSiteControl, type DemandResponseRow, type GridTripSetting, type SiteControl,
} from '../db/economics-store.js';
import type { ScheduleWindow } from '../economics/engine.js';

export async function createSiteControls(d: { db: Db; audit: AuditWriter; log: Logger; now?: () => number }) {
  const now = d.now ?? Date.now;
  const controls = new Map((await loadSiteControls(d.db)).map((c) => [c.siteId, c]));
  let dr = await loadDemandResponse(d.db, now());
  const get = (siteId: string): SiteControl =>
    controls.get(siteId) ?? { siteId, mode: 'auto', modeReason: null, modeChangedBy: null, modeChangedAtMs: 0, schedule: [], gridTrip: null, rampKwPerMin: null };

  return {
    get,
    async setSchedule(siteId: string, schedule: ScheduleWindow[], actor: string): Promise<SiteControl> {
      const next = { ...get(siteId), schedule };
      await saveSiteControl(d.db, next);
      controls.set(siteId, next);
      d.audit.write({ actor, action: 'site.schedule_set', subject: siteId, details: { schedule } });
      return next;
    },
    async setGridTrip(siteId: string, gridTrip: GridTripSetting | null, actor: string, reason: string | null = null): Promise<SiteControl> {
      const next = { ...get(siteId), gridTrip };
      await saveSiteControl(d.db, next);
      controls.set(siteId, next);
      d.audit.write({ actor, action: 'site.grid_trip_set', subject: siteId, details: { grid_trip: gridTrip, reason } });
      return next;
    },
    async setRamp(siteId: string, rampKwPerMin: number | null, actor: string): Promise<SiteControl> {
      const cur = get(siteId);
      const next = { ...cur, rampKwPerMin };
      await saveSiteControl(d.db, next);
      controls.set(siteId, next);
      d.audit.write({ actor, action: 'site.ramp_set', subject: siteId, details: { from: cur.rampKwPerMin, to: rampKwPerMin } });
      return next;
    },
    async addDemandResponse(c: Omit<DemandResponseRow, 'id'>): Promise<DemandResponseRow> {
      const row = await insertDemandResponse(d.db, c);
      dr = [...dr, row];
      d.audit.write({ actor: c.createdBy, action: 'site.demand_response_committed', subject: c.siteId, details: { ...row } });
      return row;
    },
    demandResponse(siteId: string, atMs = now()): DemandResponseRow[] {
      dr = dr.filter((c) => c.toMs > atMs);
      return dr.filter((c) => c.siteId === siteId);
    },
  };
}

export type SiteControls = Awaited<ReturnType<typeof createSiteControls>>;
