// The hot ingest path. Samples are buffered and written in bulk with INSERT … SELECT FROM
// unnest($1::…[], …): one bind parameter per column whatever the row count, where Drizzle would
// build one per value and stop at 65,534 (docs/architecture.md). The same statement runs on
// PostgreSQL, TimescaleDB and PGlite. ON CONFLICT DO NOTHING makes a redelivered batch (MQTT QoS
// 1 after a control-plane restart, when the sequence tracker has forgotten) harmless.
// A sample the database refuses (a value out of its column's range that ingest did not catch)
// is dead-lettered — logged, counted as db_rejected — and the rest of its batch is written; only
// a database fault keeps rows for another attempt (dead-letter.ts).
import type { Logger } from 'pino';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import type { Metrics } from '../metrics.js';
import type { Db } from './client.js';
import { createDeadLetterLog } from './dead-letter-log.js';
import { WriteInterruptedError, writeWithDeadLetters, type DeadLetter } from './dead-letter.js';

export interface TelemetryWriter {
  add(siteId: string, sentAtMs: number, gpus: GpuSample[], asics: AsicSample[]): void;
  /** writes everything buffered so far */
  flush(): Promise<void>;
  /** stops the timer and flushes; idempotent */
  close(): Promise<void>;
}

export interface TelemetryWriterOptions {
  db: Db;
  metrics: Metrics;
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
}

interface Pending {
  gpus: Row<GpuSample>[];
  asics: Row<AsicSample>[];
  sentAt: number[];
}

const empty = (): Pending => ({ gpus: [], asics: [], sentAt: [] });

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
  let pending = empty();
  let inFlight: Promise<void> | null = null;
  let closed = false;
  const buffered = () => pending.gpus.length + pending.asics.length;

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

  const deadLetters = (writer: 'gpu_telemetry' | 'asic_telemetry') =>
    createDeadLetterLog<Row<GpuSample | AsicSample>>({
      log: o.log,
      writer,
      count: (n) => {
        o.metrics.ingestRejected.inc({ reason: 'db_rejected' }, n);
        o.metrics.dbRejectedRows.inc({ writer }, n);
      },
    });
  const report = { gpu: deadLetters('gpu_telemetry'), asic: deadLetters('asic_telemetry') };
  const identify = (r: Row<GpuSample | AsicSample>) => ({ site: r.site, device: r.s.deviceId });

  /** writes one kind; returns the rows a database fault left unwritten */
  const writeKind = async <S extends GpuSample | AsicSample>(
    kind: 'gpu' | 'asic', rows: Row<S>[], write: (rows: Row<S>[]) => Promise<void>,
  ): Promise<{ unwritten: Row<S>[]; err?: unknown }> => {
    let dead: DeadLetter<Row<S>>[];
    try {
      dead = await writeWithDeadLetters(rows, write);
    } catch (err) {
      if (!(err instanceof WriteInterruptedError)) return { unwritten: rows, err };
      const e = err as WriteInterruptedError<Row<S>>;
      report[kind](e.rejected, identify);
      o.metrics.ingestSamples.inc({ kind }, rows.length - e.unwritten.length - e.rejected.length);
      return { unwritten: e.unwritten, err: e.cause };
    }
    report[kind](dead, identify);
    o.metrics.ingestSamples.inc({ kind }, rows.length - dead.length);
    return { unwritten: [] };
  };

  const runFlush = async () => {
    const batch = pending;
    pending = empty();
    o.metrics.ingestBuffered.set(0);
    if (batch.gpus.length + batch.asics.length === 0) return;
    const end = o.metrics.ingestFlush.startTimer();
    // each table on its own: a fault of one (a migration holding it) does not hold the other
    const g = await writeKind('gpu', batch.gpus, writeGpus);
    const a = await writeKind('asic', batch.asics, writeAsics);
    const err = g.err ?? a.err;
    if (err === undefined) {
      end();
      const t = Date.now();
      for (const s of batch.sentAt) o.metrics.ingestLag.observe(Math.max(0, (t - s) / 1000));
      return;
    }
    // Keep the rows for the next attempt (the database may be restarting), within the bound.
    o.log.error({ err, rows: g.unwritten.length + a.unwritten.length }, 'telemetry write failed; will retry');
    pending = merge({ gpus: g.unwritten, asics: a.unwritten, sentAt: batch.sentAt }, pending);
    trim();
    o.metrics.ingestBuffered.set(buffered());
  };

  const merge = (a: Pending, b: Pending): Pending => ({
    gpus: [...a.gpus, ...b.gpus],
    asics: [...a.asics, ...b.asics],
    sentAt: [...a.sentAt, ...b.sentAt],
  });

  const trim = () => {
    const over = buffered() - maxBuffered;
    if (over <= 0) return;
    const g = Math.min(over, pending.gpus.length);
    pending.gpus.splice(0, g);
    const a = Math.min(over - g, pending.asics.length);
    pending.asics.splice(0, a);
    o.metrics.ingestRejected.inc({ reason: 'backpressure' }, g + a);
    o.log.warn({ dropped: g + a }, 'telemetry buffer full; oldest samples dropped');
  };

  const flush = (): Promise<void> => {
    if (inFlight) return inFlight.then(() => (buffered() > 0 ? flush() : undefined));
    inFlight = runFlush().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };

  const timer = setInterval(() => {
    if (!inFlight && buffered() > 0) void flush();
  }, o.flushIntervalMs);
  timer.unref();

  return {
    add(site, sentAtMs, gpus, asics) {
      if (closed) return;
      for (const s of gpus) pending.gpus.push({ site, s });
      for (const s of asics) pending.asics.push({ site, s });
      pending.sentAt.push(sentAtMs);
      trim();
      o.metrics.ingestBuffered.set(buffered());
      if (buffered() >= o.maxRows && !inFlight) void flush();
    },
    flush,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await flush();
    },
  };
}
