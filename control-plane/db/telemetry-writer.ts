// The hot ingest path. Samples are buffered and written in bulk with INSERT … SELECT FROM
// unnest($1::…[], …): one bind parameter per column whatever the row count, where Drizzle would
// build one per value and stop at 65,534 (docs/architecture.md). The same statement runs on
// PostgreSQL, TimescaleDB and PGlite. ON CONFLICT DO NOTHING makes a redelivered batch (MQTT QoS
// 1 after a control-plane restart, when the sequence tracker has forgotten) harmless.
// A sample the database refuses (a value out of its column's range that ingest did not catch)
// is dead-lettered — logged, counted as db_rejected — and the rest of its batch is written; only
// a database fault keeps rows for another attempt (dead-letter.ts). Each table has its own
// batch-writer.ts, so a fault of one (a migration holding it) does not hold the other; the bound
// (maxBuffered) is on both together, oldest GPU samples dropped first, as before.
import type { Logger } from 'pino';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { createBatchWriter, type BatchWriter, type CounterLike, type GaugeLike, type HistogramLike } from './batch-writer.js';
import type { Db } from './client.js';

export interface TelemetryWriter {
  add(siteId: string, sentAtMs: number, gpus: GpuSample[], asics: AsicSample[]): void;
  /** writes everything buffered so far */
  flush(): Promise<void>;
  /** stops the timer and flushes; idempotent */
  close(): Promise<void>;
}

/**
 * The counters the writer moves, by shape: control-plane/metrics.ts's Prometheus metrics fit, and
 * db/ does not import them.
 */
export interface TelemetryWriterMetrics {
  ingestSamples: CounterLike<'kind'>;
  ingestRejected: CounterLike<'reason'>;
  dbRejectedRows: CounterLike<'writer'>;
  ingestBuffered: GaugeLike;
  ingestFlush: HistogramLike;
  ingestLag: HistogramLike;
}

export interface TelemetryWriterOptions {
  db: Db;
  metrics: TelemetryWriterMetrics;
  log: Logger;
  flushIntervalMs: number;
  /** flush early once this many samples wait */
  maxRows: number;
  /** past this many waiting samples (database down), the oldest are dropped and counted */
  maxBuffered?: number;
}

interface Row<S> {
  site: string;
  s: S;
  /** the batch's sent_at, on one row of each batch: its lag is observed when that row is stored */
  lagFrom?: number;
}

export const GPU_STATE_NAME: Record<number, string> = {
  [GpuState.GPU_STATE_IDLE]: 'idle',
  [GpuState.GPU_STATE_BUSY]: 'busy',
  [GpuState.GPU_STATE_FAULT]: 'fault',
};
export const MINING_STATE_NAME: Record<number, string> = {
  [MiningState.MINING_STATE_MINING]: 'mining',
  [MiningState.MINING_STATE_RAMPING]: 'ramping',
  [MiningState.MINING_STATE_SLEEPING]: 'sleeping',
  [MiningState.MINING_STATE_FAULT]: 'fault',
  [MiningState.MINING_STATE_UNREACHABLE]: 'unreachable',
};

const pgArray = (xs: number[]) => `{${xs.map((x) => (Number.isFinite(x) ? String(x) : 'NULL')).join(',')}}`;

const GPU_SQL = `
INSERT INTO gpu_telemetry (time, site_id, device_id, utilization_pct, memory_used_mib, memory_total_mib,
  temperature_c, memory_temperature_c, power_w, power_limit_w, sm_clock_mhz, state, workload_id, energy_mj, xid_errors)
SELECT to_timestamp(t / 1000.0), s, d, u, mu, mt, tc, mtc, p, pl, clk, st, nullif(w, ''), e, x
FROM unnest($1::float8[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
            $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::text[], $13::text[], $14::int8[], $15::int4[])
  AS r(t, s, d, u, mu, mt, tc, mtc, p, pl, clk, st, w, e, x)
ON CONFLICT DO NOTHING`;

const ASIC_SQL = `
INSERT INTO asic_telemetry (time, site_id, device_id, hashrate_5s_ths, hashrate_avg_ths, power_w,
  board_temperatures_c, chip_temperatures_c, max_chip_temperature_c, fan_rpm, accepted_shares, rejected_shares,
  hardware_errors, mining_state, power_target_w)
SELECT to_timestamp(t / 1000.0), s, d, h5, hav, p, bt::real[], ct::real[], mct, fan::int4[], acc, rej, hw, ms, nullif(pt, 0)
FROM unnest($1::float8[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[], $7::text[], $8::text[],
            $9::float8[], $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::text[], $15::float8[])
  AS r(t, s, d, h5, hav, p, bt, ct, mct, fan, acc, rej, hw, ms, pt)
ON CONFLICT DO NOTHING`;

export function createTelemetryWriter(o: TelemetryWriterOptions): TelemetryWriter {
  const maxBuffered = o.maxBuffered ?? 200_000;

  const writeGpus = async (rows: Row<GpuSample>[]) => {
    await o.db.query(GPU_SQL, [
      rows.map((r) => r.s.tsMs), rows.map((r) => r.site), rows.map((r) => r.s.deviceId), rows.map((r) => r.s.utilizationPct),
      rows.map((r) => r.s.memoryUsedMib), rows.map((r) => r.s.memoryTotalMib), rows.map((r) => r.s.temperatureC),
      rows.map((r) => r.s.memoryTemperatureC), rows.map((r) => r.s.powerW), rows.map((r) => r.s.powerLimitW),
      rows.map((r) => r.s.smClockMhz), rows.map((r) => GPU_STATE_NAME[r.s.state] ?? 'unknown'),
      rows.map((r) => r.s.workloadId), rows.map((r) => r.s.energyMj), rows.map((r) => r.s.xidErrors),
    ]);
  };

  const writeAsics = async (rows: Row<AsicSample>[]) => {
    await o.db.query(ASIC_SQL, [
      rows.map((r) => r.s.tsMs), rows.map((r) => r.site), rows.map((r) => r.s.deviceId), rows.map((r) => r.s.hashrate5sThs),
      rows.map((r) => r.s.hashrateAvgThs), rows.map((r) => r.s.powerW), rows.map((r) => pgArray(r.s.boardTemperaturesC)),
      rows.map((r) => pgArray(r.s.chipTemperaturesC)),
      rows.map((r) => (r.s.chipTemperaturesC.length ? Math.max(...r.s.chipTemperaturesC) : null)),
      rows.map((r) => pgArray(r.s.fanRpm)), rows.map((r) => r.s.acceptedShares), rows.map((r) => r.s.rejectedShares),
      rows.map((r) => r.s.hardwareErrors), rows.map((r) => MINING_STATE_NAME[r.s.miningState] ?? 'unknown'),
      rows.map((r) => r.s.powerTargetW),
    ]);
  };

  let gpus: BatchWriter<Row<GpuSample>> | null = null;
  let asics: BatchWriter<Row<AsicSample>> | null = null;
  const total = () => (gpus?.size ?? 0) + (asics?.size ?? 0);
  // The bound is on both tables together: past it the oldest GPU samples go first, then ASIC ones.
  const trim = () => {
    const over = total() - maxBuffered;
    if (over <= 0 || !gpus || !asics) return;
    const g = gpus.dropOldest(over);
    asics.dropOldest(over - g);
  };
  const writer = <S extends GpuSample | AsicSample>(kind: 'gpu' | 'asic', write: (rows: Row<S>[]) => Promise<void>) => {
    const table = kind === 'gpu' ? 'gpu_telemetry' : 'asic_telemetry';
    return createBatchWriter<Row<S>>({
      name: table,
      log: o.log,
      write,
      identify: (r) => ({ site: r.site, device: r.s.deviceId }),
      flushIntervalMs: o.flushIntervalMs,
      flushAtRows: o.maxRows,
      maxBuffered,
      onWritten: (rows) => {
        const t = Date.now();
        for (const r of rows) if (r.lagFrom !== undefined) o.metrics.ingestLag.observe(Math.max(0, (t - r.lagFrom) / 1000));
      },
      metrics: {
        written: (n) => o.metrics.ingestSamples.inc({ kind }, n),
        rejected: (n) => {
          o.metrics.ingestRejected.inc({ reason: 'db_rejected' }, n);
          o.metrics.dbRejectedRows.inc({ writer: table }, n);
        },
        dropped: (n) => o.metrics.ingestRejected.inc({ reason: 'backpressure' }, n),
        buffered: () => {
          trim();
          o.metrics.ingestBuffered.set(total());
        },
        flushed: (s, ok) => {
          if (ok) o.metrics.ingestFlush.observe(s);
        },
      },
    });
  };
  gpus = writer<GpuSample>('gpu', writeGpus);
  asics = writer<AsicSample>('asic', writeAsics);
  const g = gpus;
  const a = asics;

  return {
    add(site, sentAtMs, gpuSamples, asicSamples) {
      const gRows: Row<GpuSample>[] = gpuSamples.map((s) => ({ site, s }));
      const aRows: Row<AsicSample>[] = asicSamples.map((s) => ({ site, s }));
      const owner = gRows[0] ?? aRows[0];
      if (owner) owner.lagFrom = sentAtMs;
      g.addMany(gRows);
      a.addMany(aRows);
    },
    async flush() {
      await Promise.all([g.flush(), a.flush()]);
    },
    async close() {
      await Promise.all([g.close(), a.close()]);
    },
  };
}
