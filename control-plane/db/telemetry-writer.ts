// The hot ingest path. Samples are buffered and written in bulk with INSERT … SELECT FROM
// unnest($1::…[], …): one bind parameter per column whatever the row count, where Drizzle would
// build one per value and stop at 65,534 (ARCHITECTURE.md). The same statement runs on
// PostgreSQL, TimescaleDB and PGlite. ON CONFLICT DO NOTHING makes a redelivered batch (MQTT QoS
// 1 after a control-plane restart, when the sequence tracker has forgotten) harmless.
import type { Logger } from 'pino';
import { GpuState, MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import type { Metrics } from '../metrics.js';
import type { Db } from './client.js';

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

interface Pending {
  gpus: GpuSample[];
  gpuSite: string[];
  asics: AsicSample[];
  asicSite: string[];
  sentAt: number[];
}

const empty = (): Pending => ({ gpus: [], gpuSite: [], asics: [], asicSite: [], sentAt: [] });

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

  const writeGpus = async (rows: GpuSample[], sites: string[]) => {
    if (rows.length === 0) return;
    await o.db.query(GPU_SQL, [
      rows.map((r) => r.tsMs), sites, rows.map((r) => r.deviceId), rows.map((r) => r.utilizationPct),
      rows.map((r) => r.memoryUsedMib), rows.map((r) => r.memoryTotalMib), rows.map((r) => r.temperatureC),
      rows.map((r) => r.memoryTemperatureC), rows.map((r) => r.powerW), rows.map((r) => r.powerLimitW),
      rows.map((r) => r.smClockMhz), rows.map((r) => GPU_STATE_NAME[r.state] ?? 'unknown'),
      rows.map((r) => r.workloadId), rows.map((r) => r.energyMj), rows.map((r) => r.xidErrors),
    ]);
  };

  const writeAsics = async (rows: AsicSample[], sites: string[]) => {
    if (rows.length === 0) return;
    await o.db.query(ASIC_SQL, [
      rows.map((r) => r.tsMs), sites, rows.map((r) => r.deviceId), rows.map((r) => r.hashrate5sThs),
      rows.map((r) => r.hashrateAvgThs), rows.map((r) => r.powerW), rows.map((r) => pgArray(r.boardTemperaturesC)),
      rows.map((r) => pgArray(r.chipTemperaturesC)),
      rows.map((r) => (r.chipTemperaturesC.length ? Math.max(...r.chipTemperaturesC) : null)),
      rows.map((r) => pgArray(r.fanRpm)), rows.map((r) => r.acceptedShares), rows.map((r) => r.rejectedShares),
      rows.map((r) => r.hardwareErrors), rows.map((r) => MINING_STATE_NAME[r.miningState] ?? 'unknown'),
      rows.map((r) => r.powerTargetW),
    ]);
  };

  const runFlush = async () => {
    const batch = pending;
    pending = empty();
    o.metrics.ingestBuffered.set(0);
    if (batch.gpus.length + batch.asics.length === 0) return;
    const end = o.metrics.ingestFlush.startTimer();
    try {
      await writeGpus(batch.gpus, batch.gpuSite);
      await writeAsics(batch.asics, batch.asicSite);
      end();
      o.metrics.ingestSamples.inc({ kind: 'gpu' }, batch.gpus.length);
      o.metrics.ingestSamples.inc({ kind: 'asic' }, batch.asics.length);
      const t = Date.now();
      for (const s of batch.sentAt) o.metrics.ingestLag.observe(Math.max(0, (t - s) / 1000));
    } catch (err) {
      // Keep the rows for the next attempt (the database may be restarting), within the bound.
      o.log.error({ err, rows: batch.gpus.length + batch.asics.length }, 'telemetry write failed; will retry');
      pending = merge(batch, pending);
      trim();
    }
  };

  const merge = (a: Pending, b: Pending): Pending => ({
    gpus: [...a.gpus, ...b.gpus],
    gpuSite: [...a.gpuSite, ...b.gpuSite],
    asics: [...a.asics, ...b.asics],
    asicSite: [...a.asicSite, ...b.asicSite],
    sentAt: [...a.sentAt, ...b.sentAt],
  });

  const trim = () => {
    const over = buffered() - maxBuffered;
    if (over <= 0) return;
    const g = Math.min(over, pending.gpus.length);
    pending.gpus.splice(0, g);
    pending.gpuSite.splice(0, g);
    const a = Math.min(over - g, pending.asics.length);
    pending.asics.splice(0, a);
    pending.asicSite.splice(0, a);
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
      for (const g of gpus) {
        pending.gpus.push(g);
        pending.gpuSite.push(site);
      }
      for (const a of asics) {
        pending.asics.push(a);
        pending.asicSite.push(site);
      }
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
