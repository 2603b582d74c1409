-- hcp:requires-extension timescaledb
-- The economic engine's decisions are a time series like the prices they were made on: a
-- hypertable, compressed after a week, kept for a year (an operator audits a season, not a day).
SELECT create_hypertable('economic_decisions', 'time', chunk_time_interval => INTERVAL '7 days', migrate_data => true, if_not_exists => true);
ALTER TABLE economic_decisions SET (timescaledb.compress, timescaledb.compress_segmentby = 'site_id');
SELECT add_compression_policy('economic_decisions', INTERVAL '7 days');
SELECT add_retention_policy('economic_decisions', INTERVAL '365 days');
