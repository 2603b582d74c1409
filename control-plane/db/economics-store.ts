// The economic engine's tables: site controls (mode, schedule), demand-response commitments,
// decisions with their explanations, and the profitability time series. Rows a tick writes are
// one per site (and device class): Drizzle's typed builder, no bulk path needed. The row types
// are the stored shapes, defined here so db/ imports no domain module; the engine's types
// (control-plane/economics/) have the same shape.
import { and, asc, count, desc, eq, gt, gte, isNull, lt, sql, type SQL } from 'drizzle-orm';
import type { Db } from './client.js';
import { allocations, demandResponse, economicDecisions, profitabilityScores, siteControls } from './schema.js';

/** a time-of-day window in the site's local hours, [from, to) (control-plane/economics/engine.ts ScheduleWindow) */
export interface StoredScheduleWindow {
  fromHour: number;
  toHour: number;
  mining: 'off' | 'auto';
}

export interface SiteControl {
  siteId: string;
  mode: 'auto' | 'manual';
  modeReason: string | null;
  modeChangedBy: string | null;
  modeChangedAtMs: number;
  schedule: StoredScheduleWindow[];
  /** the agent's under-frequency trip for this site; null = the control plane's default */
  gridTrip: GridTripSetting | null;
  /** ASIC starts are limited to this many kW per minute; null = the control plane's default */
  rampKwPerMin: number | null;
}

export interface GridTripSetting {
  enabled: boolean;
  thresholdHz: number;
  /** empty = every ASIC of the site */
  deviceIds: string[];
}

export interface DemandResponseRow {
  id: number;
  siteId: string;
  mw: number;
  fromMs: number;
  toMs: number;
  program: string;
  createdBy: string;
}

const parsed = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;

export async function loadSiteControls(db: Db): Promise<SiteControl[]> {
  const rows = await db.orm.select().from(siteControls);
  return rows.map((r) => ({
    siteId: r.siteId,
    mode: r.mode as 'auto' | 'manual',
    modeReason: r.modeReason,
    modeChangedBy: r.modeChangedBy,
    modeChangedAtMs: r.modeChangedAt.getTime(),
    schedule: parsed<StoredScheduleWindow[]>(r.schedule),
    gridTrip: parsed<GridTripSetting | null>(r.gridTrip ?? null),
    rampKwPerMin: r.rampKwPerMin ?? null,
  }));
}

export async function saveSiteControl(db: Db, c: SiteControl): Promise<void> {
  const values = {
    siteId: c.siteId,
    mode: c.mode,
    modeReason: c.modeReason,
    modeChangedBy: c.modeChangedBy,
    modeChangedAt: new Date(c.modeChangedAtMs),
    schedule: c.schedule,
    gridTrip: c.gridTrip,
    rampKwPerMin: c.rampKwPerMin,
  };
  const { siteId: _, ...update } = values;
  await db.orm.insert(siteControls).values(values).onConflictDoUpdate({ target: siteControls.siteId, set: update });
}

export async function loadDemandResponse(db: Db, nowMs: number): Promise<DemandResponseRow[]> {
  const rows = await db.orm
    .select()
    .from(demandResponse)
    .where(gt(demandResponse.endsAt, new Date(nowMs)))
    .orderBy(demandResponse.startsAt);
  return rows.map((r) => ({
    id: r.id, siteId: r.siteId, mw: r.mw, fromMs: r.startsAt.getTime(), toMs: r.endsAt.getTime(), program: r.program, createdBy: r.createdBy,
  }));
}

export async function insertDemandResponse(db: Db, c: Omit<DemandResponseRow, 'id'>): Promise<DemandResponseRow> {
  const [r] = await db.orm
    .insert(demandResponse)
    .values({ siteId: c.siteId, mw: c.mw, startsAt: new Date(c.fromMs), endsAt: new Date(c.toMs), program: c.program, createdBy: c.createdBy })
    .returning({ id: demandResponse.id });
  return { ...c, id: Number(r!.id) };
}

export interface DecisionRow {
  timeMs: number;
  siteId: string;
  rule: string;
  summary: string;
  expectedMarginUsdH: number | null;
  explanation: unknown;
  commands: string[];
}

export async function insertDecisions(db: Db, rows: DecisionRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.orm.insert(economicDecisions).values(
    rows.map((r) => ({
      time: new Date(r.timeMs),
      siteId: r.siteId,
      rule: r.rule,
      summary: r.summary,
      // NaN is no margin (float8 would store it as NaN)
      expectedMarginUsdH: r.expectedMarginUsdH === null || Number.isNaN(r.expectedMarginUsdH) ? null : r.expectedMarginUsdH,
      explanation: r.explanation ?? null,
      commands: r.commands,
    })),
  );
}

const since = (time: typeof economicDecisions.time | typeof profitabilityScores.time, site: SQL | undefined, fromMs: number, toMs?: number) =>
  and(gte(time, new Date(fromMs)), toMs === undefined ? undefined : lt(time, new Date(toMs)), site);

export async function recentDecisions(db: Db, q: { site?: string; fromMs: number; toMs?: number; limit: number }): Promise<DecisionRow[]> {
  const rows = await db.orm
    .select()
    .from(economicDecisions)
    .where(since(economicDecisions.time, q.site === undefined ? undefined : eq(economicDecisions.siteId, q.site), q.fromMs, q.toMs))
    .orderBy(desc(economicDecisions.time))
    .limit(q.limit);
  return rows.map((r) => ({
    timeMs: r.time.getTime(), siteId: r.siteId, rule: r.rule, summary: r.summary, expectedMarginUsdH: r.expectedMarginUsdH,
    explanation: parsed<unknown>(r.explanation), commands: r.commands ?? [],
  }));
}

/** what a decision's explanation holds for scoring it (economics/window-profit.ts DecisionSnapshot) */
export interface DecisionScoreRow {
  timeMs: number;
  siteId: string;
  btcUsd: number | null;
  powerUsdKwh: number | null;
  models: Array<{ model: string; count: number; mining: number }>;
  expected: { asicRevenue: number; asicPowerCost: number } | null;
}

/**
 * Decisions in [fromMs, toMs) oldest first, with only the parts of the explanation that score
 * them: a week of one-minute decisions is ~10,000 rows a site, and the whole explanation would
 * carry every rule count and model summary along.
 */
export async function decisionsToScore(db: Db, q: { site?: string; fromMs: number; toMs: number; limit: number }): Promise<DecisionScoreRow[]> {
  const d = economicDecisions;
  const rows = await db.orm
    .select({
      time: d.time,
      siteId: d.siteId,
      inputs: sql<unknown>`${d.explanation}->'inputs'`,
      models: sql<unknown>`${d.explanation}->'models'`,
      expected: sql<unknown>`${d.explanation}->'expectedUsdH'`,
    })
    .from(d)
    .where(since(d.time, q.site === undefined ? undefined : eq(d.siteId, q.site), q.fromMs, q.toMs))
    .orderBy(asc(d.time))
    .limit(q.limit);
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return rows.map((r) => {
    const inputs = (parsed<Record<string, unknown> | null>(r.inputs) ?? {}) as Record<string, unknown>;
    const models = parsed<Array<Record<string, unknown>> | null>(r.models) ?? [];
    const e = parsed<Record<string, unknown> | null>(r.expected);
    const rev = num(e?.asicRevenue);
    const cost = num(e?.asicPowerCost);
    return {
      timeMs: r.time.getTime(),
      siteId: r.siteId,
      btcUsd: num(inputs.btcUsd),
      powerUsdKwh: num(inputs.powerUsdKwh),
      models: models.map((m) => ({ model: String(m.model), count: num(m.count) ?? 0, mining: num(m.mining) ?? 0 })),
      expected: rev === null || cost === null ? null : { asicRevenue: rev, asicPowerCost: cost },
    };
  });
}

/** one device class's economics at one site and instant (control-plane/economics/profitability.ts ProfitabilityRow) */
export interface ProfitabilityScoreRow {
  /** ISO 8601 */
  time: string;
  site_id: string;
  device_class: string;
  revenue_usd_h: number;
  power_cost_usd_h: number;
  margin_usd_h: number;
  breakeven_usd_kwh: number | null;
  details: Record<string, number | string>;
}

export async function insertProfitability(db: Db, rows: ProfitabilityScoreRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.orm.insert(profitabilityScores).values(
    rows.map((r) => ({
      time: new Date(r.time),
      siteId: r.site_id,
      deviceClass: r.device_class,
      revenueUsdH: r.revenue_usd_h,
      powerCostUsdH: r.power_cost_usd_h,
      marginUsdH: r.margin_usd_h,
      breakevenUsdKwh: r.breakeven_usd_kwh,
      details: r.details,
    })),
  );
}

export async function profitabilityHistory(db: Db, q: { site?: string; fromMs: number; toMs?: number; limit: number }): Promise<Record<string, unknown>[]> {
  const p = profitabilityScores;
  return db.orm
    .select({
      time: p.time, site_id: p.siteId, device_class: p.deviceClass, revenue_usd_h: p.revenueUsdH,
      power_cost_usd_h: p.powerCostUsdH, margin_usd_h: p.marginUsdH, breakeven_usd_kwh: p.breakevenUsdKwh,
    })
    .from(p)
    .where(since(p.time, q.site === undefined ? undefined : eq(p.siteId, q.site), q.fromMs, q.toMs))
    .orderBy(desc(p.time))
    .limit(q.limit);
}

/** GPUs in live allocations per site: power the scheduler has committed, busy or not yet */
export async function liveAllocatedGpus(db: Db): Promise<Map<string, number>> {
  const rows = await db.orm
    .select({ facilityId: allocations.facilityId, n: count() })
    .from(allocations)
    .where(isNull(allocations.releasedAt))
    .groupBy(allocations.facilityId);
  return new Map(rows.map((r) => [r.facilityId, Number(r.n)]));
}
