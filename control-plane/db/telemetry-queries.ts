// Time-bucketed telemetry for the REST API. date_bin() exists on PostgreSQL 14+ and PGlite, and
// plans like time_bucket() on a hypertable, so one query serves every back end. The series are
// scans with a budget and stay SQL; the point reads (a device's newest sample) use Drizzle.
import { desc, eq } from 'drizzle-orm';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import type { Db } from './client.js';
import { asicTelemetry, gpuTelemetry } from './schema.js';
import { GPU_STATE_NAME, MINING_STATE_NAME } from './telemetry-writer.js';

export interface SeriesQuery {
  fromMs: number;
  toMs: number;
  bucketS: number;
  /**
   * the most stored samples the query may read, over every table it reads: past it the query
   * stops reading and throws ScanLimitError instead of answering
   */
  maxRows: number;
}

/** the range holds more stored samples than SeriesQuery.maxRows */
export class ScanLimitError extends Error {
  readonly code = 'too_many_rows';
  constructor(readonly maxRows: number) {
    super(`the range holds more than ${maxRows} stored samples`);
    this.name = 'ScanLimitError';
  }
}

export interface GpuPoint {
  ts: string;
  utilization_pct: number;
  power_w: number;
  max_temperature_c: number;
  memory_used_mib: number;
  samples: number;
}

export interface AsicPoint {
  ts: string;
  hashrate_ths: number;
  power_w: number;
  max_chip_temperature_c: number | null;
  samples: number;
}

export interface SitePoint {
  ts: string;
  power_w: number;
  /** of power_w: the GPUs' and the ASICs' */
  gpu_power_w: number;
  asic_power_w: number;
  hashrate_ths: number;
  gpu_utilization_pct: number | null;
  /** the hottest GPU and the hottest ASIC chip in the bucket */
  gpu_max_temperature_c: number | null;
  asic_max_chip_temperature_c: number | null;
  gpus_reporting: number;
  asics_reporting: number;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const iso = (v: unknown) => new Date(v as string | Date).toISOString();
/** $1 bucket, $2 from, $3 to, $4 the device or site, $5 the scan limit */
const params = (q: SeriesQuery, id: string, budget: number) =>
  [`${q.bucketS} seconds`, new Date(q.fromMs).toISOString(), new Date(q.toMs).toISOString(), id, budget + 1];
const BIN = `date_bin($1::interval, time, TIMESTAMPTZ '2000-01-01')`;

/**
 * The raw samples a series aggregates, read at most $5 of them (the budget plus one, so that
 * reading past the budget shows). The LIMIT sits on the scan itself, below every aggregate: the
 * executor stops pulling rows from the index once it is reached, so a range far too large costs
 * one budget's worth of reading, not the whole range. Below the limit every row is read, and the
 * aggregates are exact.
 */
const rawSamples = (table: string, columns: string, by: 'device_id' | 'site_id') =>
  `(SELECT time, ${columns} FROM ${table}
     WHERE ${by} = $4 AND time >= $2::timestamptz AND time < $3::timestamptz LIMIT $5) raw`;

/** the samples the buckets counted; throws when that is past the budget */
function checkScanned(rows: Array<Record<string, unknown>>, column: string, budget: number, q: SeriesQuery): number {
  const scanned = rows.reduce((n, r) => n + num(r[column])!, 0);
  if (scanned > budget) throw new ScanLimitError(q.maxRows);
  return scanned;
}

export async function gpuSeries(db: Db, deviceId: string, q: SeriesQuery): Promise<GpuPoint[]> {
  const rows = await db.query(
    `SELECT ${BIN} AS b, avg(utilization_pct) AS u, avg(power_w) AS p, max(temperature_c) AS t,
            avg(memory_used_mib) AS m, count(*) AS n
     FROM ${rawSamples('gpu_telemetry', 'utilization_pct, power_w, temperature_c, memory_used_mib', 'device_id')}
     GROUP BY b ORDER BY b`,
    params(q, deviceId, q.maxRows),
  );
  checkScanned(rows, 'n', q.maxRows, q);
  return rows.map((r) => ({
    ts: iso(r.b), utilization_pct: num(r.u)!, power_w: num(r.p)!, max_temperature_c: num(r.t)!,
    memory_used_mib: num(r.m)!, samples: num(r.n)!,
  }));
}

export async function asicSeries(db: Db, deviceId: string, q: SeriesQuery): Promise<AsicPoint[]> {
  const rows = await db.query(
    `SELECT ${BIN} AS b, avg(hashrate_5s_ths) AS h, avg(power_w) AS p, max(max_chip_temperature_c) AS t, count(*) AS n
     FROM ${rawSamples('asic_telemetry', 'hashrate_5s_ths, power_w, max_chip_temperature_c', 'device_id')}
     GROUP BY b ORDER BY b`,
    params(q, deviceId, q.maxRows),
  );
  checkScanned(rows, 'n', q.maxRows, q);
  return rows.map((r) => ({ ts: iso(r.b), hashrate_ths: num(r.h)!, power_w: num(r.p)!, max_chip_temperature_c: num(r.t), samples: num(r.n)! }));
}

/**
 * A site's totals per bucket: each device's mean within the bucket, summed over devices, so a
 * bucket holding two samples of one device is not counted twice. The GPUs' samples and the
 * ASICs' share one budget: the ASIC query may read what the GPU query left.
 */
export async function siteSeries(db: Db, siteId: string, q: SeriesQuery): Promise<SitePoint[]> {
  const gpu = await db.query(
    `SELECT b, sum(p) AS p, avg(u) AS u, max(t) AS t, count(*) AS n, sum(k) AS k FROM (
       SELECT ${BIN} AS b, device_id, avg(power_w) AS p, avg(utilization_pct) AS u, max(temperature_c) AS t, count(*) AS k
       FROM ${rawSamples('gpu_telemetry', 'device_id, power_w, utilization_pct, temperature_c', 'site_id')}
       GROUP BY b, device_id) d GROUP BY b`,
    params(q, siteId, q.maxRows),
  );
  const left = q.maxRows - checkScanned(gpu, 'k', q.maxRows, q);
  const asic = await db.query(
    `SELECT b, sum(p) AS p, sum(h) AS h, max(t) AS t, count(*) AS n, sum(k) AS k FROM (
       SELECT ${BIN} AS b, device_id, avg(power_w) AS p, avg(hashrate_5s_ths) AS h, max(max_chip_temperature_c) AS t, count(*) AS k
       FROM ${rawSamples('asic_telemetry', 'device_id, power_w, hashrate_5s_ths, max_chip_temperature_c', 'site_id')}
       GROUP BY b, device_id) d GROUP BY b`,
    params(q, siteId, left),
  );
  checkScanned(asic, 'k', left, q);
  const points = new Map<string, SitePoint>();
  const at = (b: unknown) => {
    const ts = iso(b);
    let p = points.get(ts);
    if (!p) points.set(ts, (p = { ts, power_w: 0, gpu_power_w: 0, asic_power_w: 0, hashrate_ths: 0, gpu_utilization_pct: null, gpu_max_temperature_c: null, asic_max_chip_temperature_c: null, gpus_reporting: 0, asics_reporting: 0 }));
    return p;
  };
  for (const r of gpu) {
    const p = at(r.b);
    p.power_w += num(r.p)!;
    p.gpu_power_w = num(r.p)!;
    p.gpu_max_temperature_c = num(r.t);
    p.gpu_utilization_pct = num(r.u);
    p.gpus_reporting = num(r.n)!;
  }
  for (const r of asic) {
    const p = at(r.b);
    p.power_w += num(r.p)!;
    p.asic_power_w = num(r.p)!;
    p.asic_max_chip_temperature_c = num(r.t);
    p.hashrate_ths = num(r.h)!;
    p.asics_reporting = num(r.n)!;
  }
  return [...points.values()].sort((a, b) => a.ts.localeCompare(b.ts));
}

const STATE_OF_GPU = Object.fromEntries(Object.entries(GPU_STATE_NAME).map(([k, v]) => [v, Number(k)]));
const STATE_OF_ASIC = Object.fromEntries(Object.entries(MINING_STATE_NAME).map(([k, v]) => [v, Number(k)]));

/** the newest stored sample of a device, for a device the control plane has not heard since start */
export async function latestGpuSample(db: Pick<Db, 'orm'>, deviceId: string): Promise<GpuSample | null> {
  const [r] = await db.orm.select().from(gpuTelemetry).where(eq(gpuTelemetry.deviceId, deviceId)).orderBy(desc(gpuTelemetry.time)).limit(1);
  if (!r) return null;
  return {
    deviceId, tsMs: r.time.getTime(), utilizationPct: r.utilizationPct, memoryUsedMib: r.memoryUsedMib, memoryTotalMib: r.memoryTotalMib,
    temperatureC: r.temperatureC, powerW: r.powerW, smClockMhz: r.smClockMhz, state: STATE_OF_GPU[r.state] ?? GpuState.GPU_STATE_UNSPECIFIED,
    workloadId: r.workloadId ?? '', memoryTemperatureC: r.memoryTemperatureC ?? 0, powerLimitW: r.powerLimitW ?? 0,
    energyMj: r.energyMj ?? 0, xidErrors: r.xidErrors,
  };
}

export async function latestAsicSample(db: Pick<Db, 'orm'>, deviceId: string): Promise<AsicSample | null> {
  const [r] = await db.orm.select().from(asicTelemetry).where(eq(asicTelemetry.deviceId, deviceId)).orderBy(desc(asicTelemetry.time)).limit(1);
  if (!r) return null;
  return {
    deviceId, tsMs: r.time.getTime(), hashrate5sThs: r.hashrate5sThs, hashrateAvgThs: r.hashrateAvgThs, powerW: r.powerW,
    boardTemperaturesC: r.boardTemperaturesC ?? [], chipTemperaturesC: r.chipTemperaturesC ?? [], fanRpm: r.fanRpm ?? [],
    acceptedShares: r.acceptedShares, rejectedShares: r.rejectedShares, hardwareErrors: r.hardwareErrors,
    miningState: STATE_OF_ASIC[r.miningState] ?? MiningState.MINING_STATE_UNSPECIFIED, powerTargetW: r.powerTargetW ?? 0,
  };
}
