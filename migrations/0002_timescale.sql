-- hcp:requires-extension timescaledb
-- Applied only where the timescaledb extension is available (the production compose file runs
-- the TimescaleDB image). On plain PostgreSQL the migrator records it as skipped and applies it
-- later if the extension appears; migrate_data converts tables that already hold rows.
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('gpu_telemetry', 'time', chunk_time_interval => INTERVAL '1 day', migrate_data => true, if_not_exists => true);
SELECT create_hypertable('asic_telemetry', 'time', chunk_time_interval => INTERVAL '1 day', migrate_data => true, if_not_exists => true);
SELECT create_hypertable('price_data', 'time', chunk_time_interval => INTERVAL '7 days', migrate_data => true, if_not_exists => true);
SELECT create_hypertable('profitability_scores', 'time', chunk_time_interval => INTERVAL '7 days', migrate_data => true, if_not_exists => true);
SELECT create_hypertable('allocation_history', 'time', chunk_time_interval => INTERVAL '7 days', migrate_data => true, if_not_exists => true);

-- Continuous aggregates at 1 min, 5 min and 1 h per device. WITH NO DATA: creating one WITH
-- DATA cannot run inside a transaction block (timescaledb#2389), and the refresh policies
-- below fill them.
CREATE MATERIALIZED VIEW gpu_telemetry_1m WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, site_id, device_id,
         avg(utilization_pct) AS utilization_pct, avg(power_w) AS power_w,
         max(temperature_c) AS max_temperature_c, avg(memory_used_mib) AS memory_used_mib, count(*) AS samples
  FROM gpu_telemetry GROUP BY bucket, site_id, device_id WITH NO DATA;
CREATE MATERIALIZED VIEW gpu_telemetry_5m WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '5 minutes', time) AS bucket, site_id, device_id,
         avg(utilization_pct) AS utilization_pct, avg(power_w) AS power_w,
         max(temperature_c) AS max_temperature_c, avg(memory_used_mib) AS memory_used_mib, count(*) AS samples
  FROM gpu_telemetry GROUP BY bucket, site_id, device_id WITH NO DATA;
CREATE MATERIALIZED VIEW gpu_telemetry_1h WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, site_id, device_id,
         avg(utilization_pct) AS utilization_pct, avg(power_w) AS power_w,
         max(temperature_c) AS max_temperature_c, avg(memory_used_mib) AS memory_used_mib, count(*) AS samples
  FROM gpu_telemetry GROUP BY bucket, site_id, device_id WITH NO DATA;

CREATE MATERIALIZED VIEW asic_telemetry_1m WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, site_id, device_id,
         avg(hashrate_5s_ths) AS hashrate_ths, avg(power_w) AS power_w,
         max(max_chip_temperature_c) AS max_chip_temperature_c, max(hardware_errors) AS hardware_errors, count(*) AS samples
  FROM asic_telemetry GROUP BY bucket, site_id, device_id WITH NO DATA;
CREATE MATERIALIZED VIEW asic_telemetry_5m WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '5 minutes', time) AS bucket, site_id, device_id,
         avg(hashrate_5s_ths) AS hashrate_ths, avg(power_w) AS power_w,
         max(max_chip_temperature_c) AS max_chip_temperature_c, max(hardware_errors) AS hardware_errors, count(*) AS samples
  FROM asic_telemetry GROUP BY bucket, site_id, device_id WITH NO DATA;
CREATE MATERIALIZED VIEW asic_telemetry_1h WITH (timescaledb.continuous) AS
  SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, site_id, device_id,
         avg(hashrate_5s_ths) AS hashrate_ths, avg(power_w) AS power_w,
         max(max_chip_temperature_c) AS max_chip_temperature_c, max(hardware_errors) AS hardware_errors, count(*) AS samples
  FROM asic_telemetry GROUP BY bucket, site_id, device_id WITH NO DATA;

SELECT add_continuous_aggregate_policy('gpu_telemetry_1m',  start_offset => INTERVAL '1 hour',  end_offset => INTERVAL '1 minute',  schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('gpu_telemetry_5m',  start_offset => INTERVAL '6 hours', end_offset => INTERVAL '5 minutes', schedule_interval => INTERVAL '5 minutes');
SELECT add_continuous_aggregate_policy('gpu_telemetry_1h',  start_offset => INTERVAL '3 days',  end_offset => INTERVAL '1 hour',    schedule_interval => INTERVAL '1 hour');
SELECT add_continuous_aggregate_policy('asic_telemetry_1m', start_offset => INTERVAL '1 hour',  end_offset => INTERVAL '1 minute',  schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('asic_telemetry_5m', start_offset => INTERVAL '6 hours', end_offset => INTERVAL '5 minutes', schedule_interval => INTERVAL '5 minutes');
SELECT add_continuous_aggregate_policy('asic_telemetry_1h', start_offset => INTERVAL '3 days',  end_offset => INTERVAL '1 hour',    schedule_interval => INTERVAL '1 hour');

-- Compression: raw samples older than a day compress per device (segmentby) in time order.
ALTER TABLE gpu_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'time DESC');
ALTER TABLE asic_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('gpu_telemetry', INTERVAL '1 day');
SELECT add_compression_policy('asic_telemetry', INTERVAL '1 day');

-- Retention: raw samples 30 days, 1-minute rollups 90 days, 5-minute 1 year; hourly kept.
SELECT add_retention_policy('gpu_telemetry', INTERVAL '30 days');
SELECT add_retention_policy('asic_telemetry', INTERVAL '30 days');
SELECT add_retention_policy('gpu_telemetry_1m', INTERVAL '90 days');
SELECT add_retention_policy('asic_telemetry_1m', INTERVAL '90 days');
SELECT add_retention_policy('gpu_telemetry_5m', INTERVAL '365 days');
SELECT add_retention_policy('asic_telemetry_5m', INTERVAL '365 days');
