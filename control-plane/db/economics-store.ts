// The economic engine's tables: site controls (mode, schedule), demand-response commitments,
// decisions with their explanations, and the profitability time series.
import type { ProfitabilityRow } from '../economics/profitability.js';
import type { ScheduleWindow } from '../economics/engine.js';
import type { Db } from './client.js';

export interface SiteControl {
  siteId: string;
  mode: 'auto' | 'manual';
  modeReason: string | null;
  modeChangedBy: string | null;
  modeChangedAtMs: number;
  schedule: ScheduleWindow[];
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

const ms = (v: unknown) => (v instanceof Date ? v.getTime() : Date.parse(String(v)));

export async function loadSiteControls(db: Db): Promise<SiteControl[]> {
  const rows = await db.query<Record<string, unknown>>('SELECT site_id, mode, mode_reason, mode_changed_by, mode_changed_at, schedule, grid_trip, ramp_kw_per_min FROM site_controls');
  return rows.map((r) => ({
    siteId: r.site_id as string,
    mode: r.mode as 'auto' | 'manual',
    modeReason: (r.mode_reason as string | null) ?? null,
    modeChangedBy: (r.mode_changed_by as string | null) ?? null,
    modeChangedAtMs: ms(r.mode_changed_at),
    schedule: (typeof r.schedule === 'string' ? JSON.parse(r.schedule) : r.schedule) as ScheduleWindow[],
    gridTrip: (typeof r.grid_trip === 'string' ? JSON.parse(r.grid_trip) : (r.grid_trip ?? null)) as GridTripSetting | null,
    rampKwPerMin: r.ramp_kw_per_min === null || r.ramp_kw_per_min === undefined ? null : Number(r.ramp_kw_per_min),
  }));
}

export async function saveSiteControl(db: Db, c: SiteControl): Promise<void> {
  await db.query(
    `INSERT INTO site_controls (site_id, mode, mode_reason, mode_changed_by, mode_changed_at, schedule, grid_trip, ramp_kw_per_min)
     VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0), $6::jsonb, $7::jsonb, $8)
     ON CONFLICT (site_id) DO UPDATE SET mode = EXCLUDED.mode, mode_reason = EXCLUDED.mode_reason,
       mode_changed_by = EXCLUDED.mode_changed_by, mode_changed_at = EXCLUDED.mode_changed_at, schedule = EXCLUDED.schedule,
       grid_trip = EXCLUDED.grid_trip, ramp_kw_per_min = EXCLUDED.ramp_kw_per_min`,
    [c.siteId, c.mode, c.modeReason, c.modeChangedBy, c.modeChangedAtMs, JSON.stringify(c.schedule), c.gridTrip ? JSON.stringify(c.gridTrip) : null, c.rampKwPerMin],
  );
}

export async function loadDemandResponse(db: Db, nowMs: number): Promise<DemandResponseRow[]> {
  const rows = await db.query<Record<string, unknown>>(
    'SELECT id, site_id, mw, starts_at, ends_at, program, created_by FROM demand_response WHERE ends_at > to_timestamp($1 / 1000.0) ORDER BY starts_at',
    [nowMs],
  );
  return rows.map((r) => ({ id: Number(r.id), siteId: r.site_id as string, mw: Number(r.mw), fromMs: ms(r.starts_at), toMs: ms(r.ends_at), program: r.program as string, createdBy: r.created_by as string }));
}

export async function insertDemandResponse(db: Db, c: Omit<DemandResponseRow, 'id'>): Promise<DemandResponseRow> {
  const [r] = await db.query<{ id: number | string }>(
    `INSERT INTO demand_response (site_id, mw, starts_at, ends_at, program, created_by)
     VALUES ($1, $2, to_timestamp($3 / 1000.0), to_timestamp($4 / 1000.0), $5, $6) RETURNING id`,
    [c.siteId, c.mw, c.fromMs, c.toMs, c.program, c.createdBy],
  );
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
  await db.query(
    `INSERT INTO economic_decisions (time, site_id, rule, summary, expected_margin_usd_h, explanation, commands)
     SELECT to_timestamp(t / 1000.0), s, r, sm, nullif(m, 'NaN'::float8), e::jsonb, coalesce(string_to_array(nullif(c, ''), ','), '{}')
     FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::text[]) AS x(t, s, r, sm, m, e, c)`,
    [
      rows.map((r) => r.timeMs), rows.map((r) => r.siteId), rows.map((r) => r.rule), rows.map((r) => r.summary),
      rows.map((r) => r.expectedMarginUsdH ?? Number.NaN), rows.map((r) => JSON.stringify(r.explanation)), rows.map((r) => r.commands.join(',')),
    ],
  );
}

export async function recentDecisions(db: Db, q: { site?: string; fromMs: number; limit: number }): Promise<DecisionRow[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT extract(epoch FROM time) * 1000 AS t, site_id, rule, summary, expected_margin_usd_h, explanation, commands
     FROM economic_decisions WHERE time >= to_timestamp($1 / 1000.0) AND ($2::text IS NULL OR site_id = $2)
     ORDER BY time DESC LIMIT $3`,
    [q.fromMs, q.site ?? null, q.limit],
  );
  return rows.map((r) => ({
    timeMs: Math.round(Number(r.t)), siteId: r.site_id as string, rule: r.rule as string, summary: r.summary as string,
    expectedMarginUsdH: r.expected_margin_usd_h === null ? null : Number(r.expected_margin_usd_h),
    explanation: typeof r.explanation === 'string' ? JSON.parse(r.explanation) : r.explanation, commands: (r.commands as string[]) ?? [],
  }));
}

export async function insertProfitability(db: Db, rows: ProfitabilityRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO profitability_scores (time, site_id, device_class, revenue_usd_h, power_cost_usd_h, margin_usd_h, breakeven_usd_kwh, details)
     SELECT t::timestamptz, s, dc, rv, pc, mg, be, d::jsonb
     FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::text[]) AS x(t, s, dc, rv, pc, mg, be, d)`,
    [
      rows.map((r) => r.time), rows.map((r) => r.site_id), rows.map((r) => r.device_class), rows.map((r) => r.revenue_usd_h),
      rows.map((r) => r.power_cost_usd_h), rows.map((r) => r.margin_usd_h), rows.map((r) => r.breakeven_usd_kwh), rows.map((r) => JSON.stringify(r.details)),
    ],
  );
}

export async function profitabilityHistory(db: Db, q: { site?: string; fromMs: number; limit: number }) {
  return db.query<Record<string, unknown>>(
    `SELECT time, site_id, device_class, revenue_usd_h, power_cost_usd_h, margin_usd_h, breakeven_usd_kwh
     FROM profitability_scores WHERE time >= to_timestamp($1 / 1000.0) AND ($2::text IS NULL OR site_id = $2)
     ORDER BY time DESC LIMIT $3`,
    [q.fromMs, q.site ?? null, q.limit],
  );
}

/** GPUs in live allocations per site: power the scheduler has committed, busy or not yet */
export async function liveAllocatedGpus(db: Db): Promise<Map<string, number>> {
  const rows = await db.query<{ facility_id: string; n: number | string }>(
    'SELECT facility_id, count(*) AS n FROM allocations WHERE released_at IS NULL GROUP BY facility_id',
  );
  return new Map(rows.map((r) => [r.facility_id, Number(r.n)]));
}
