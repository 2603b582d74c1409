-- HCP seed schema. Plain PostgreSQL (15+; PGlite too): every table and query here works without
-- TimescaleDB. 0002_timescale.sql adds hypertables, continuous aggregates, compression and
-- retention when the extension is available.

CREATE TABLE facilities (
  id               text PRIMARY KEY,
  name             text NOT NULL,
  region           text NOT NULL,           -- grid region, e.g. 'ercot'
  power_capacity_kw double precision NOT NULL DEFAULT 0,
  timezone         text NOT NULL DEFAULT 'UTC',
  online           boolean NOT NULL DEFAULT false,
  last_seen_at     timestamptz,
  agent_version    text,
  agent_session    text,
  agent_hostname   text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE resources (
  id                 text PRIMARY KEY,      -- gpu-<site>-0001, asic-<site>-00001
  facility_id        text NOT NULL REFERENCES facilities(id),
  kind               text NOT NULL CHECK (kind IN ('gpu', 'asic')),
  model              text NOT NULL,
  driver             text NOT NULL DEFAULT '',
  endpoint           text,                  -- cgminer API host:port
  serial             text,
  rated_power_w      double precision NOT NULL DEFAULT 0,
  rated_hashrate_ths double precision,
  memory_total_mib   double precision,
  online             boolean NOT NULL DEFAULT false,
  last_seen_at       timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resources_facility_kind_idx ON resources (facility_id, kind);

CREATE TABLE customers (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  gpu_quota  integer,                       -- max GPUs in live allocations; NULL = unlimited
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workloads (
  id                 text PRIMARY KEY,
  customer_id        text NOT NULL REFERENCES customers(id),
  workload_type      text NOT NULL CHECK (workload_type IN ('ai_inference_realtime', 'ai_inference_batch', 'ai_training')),
  priority           smallint NOT NULL CHECK (priority BETWEEN 1 AND 10),
  state              text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'scheduled', 'running', 'preempted', 'completed', 'failed', 'cancelled')),
  gpu_type           text NOT NULL,
  gpu_count          integer NOT NULL CHECK (gpu_count > 0),
  requirements       jsonb NOT NULL DEFAULT '{}'::jsonb,
  facility_id        text REFERENCES facilities(id),
  idempotency_key    text,
  duration_s         integer,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  started_at         timestamptz,
  finished_at        timestamptz
);
CREATE INDEX workloads_state_idx ON workloads (state, priority, created_at);
CREATE UNIQUE INDEX workloads_idempotency_idx ON workloads (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE allocations (
  id           bigserial PRIMARY KEY,
  workload_id  text NOT NULL REFERENCES workloads(id),
  resource_id  text NOT NULL REFERENCES resources(id),
  facility_id  text NOT NULL REFERENCES facilities(id),
  allocated_at timestamptz NOT NULL DEFAULT now(),
  released_at  timestamptz
);
-- A GPU is never in two live allocations.
CREATE UNIQUE INDEX allocations_live_resource_idx ON allocations (resource_id) WHERE released_at IS NULL;
CREATE INDEX allocations_workload_idx ON allocations (workload_id);

CREATE TABLE audit_log (
  id       bigserial PRIMARY KEY,
  time     timestamptz NOT NULL DEFAULT now(),
  actor    text NOT NULL,                   -- 'operator:<name>', 'scheduler', 'engine', 'agent:<site>'
  action   text NOT NULL,
  subject  text,
  details  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_time_idx ON audit_log (time DESC);

-- Time series: one wide row per device sample (docs/architecture.md "Wide rows").
CREATE TABLE gpu_telemetry (
  time                  timestamptz NOT NULL,
  site_id               text NOT NULL,
  device_id             text NOT NULL,
  utilization_pct       real NOT NULL,
  memory_used_mib       real NOT NULL,
  memory_total_mib      real NOT NULL,
  temperature_c         real NOT NULL,
  memory_temperature_c  real,
  power_w               real NOT NULL,
  power_limit_w         real,
  sm_clock_mhz          real NOT NULL,
  state                 text NOT NULL,
  workload_id           text,
  energy_mj             bigint,
  xid_errors            integer NOT NULL DEFAULT 0,
  received_at           timestamptz NOT NULL DEFAULT now()
);
-- Unique per device and instant: a redelivered batch (MQTT QoS 1) is written once.
CREATE UNIQUE INDEX gpu_telemetry_device_time_idx ON gpu_telemetry (device_id, time DESC);
CREATE INDEX gpu_telemetry_site_time_idx ON gpu_telemetry (site_id, time DESC);

CREATE TABLE asic_telemetry (
  time                 timestamptz NOT NULL,
  site_id              text NOT NULL,
  device_id            text NOT NULL,
  hashrate_5s_ths      real NOT NULL,
  hashrate_avg_ths     real NOT NULL,
  power_w              real NOT NULL,
  board_temperatures_c real[] NOT NULL,
  chip_temperatures_c  real[] NOT NULL,
  max_chip_temperature_c real,
  fan_rpm              integer[] NOT NULL,
  accepted_shares      bigint NOT NULL,
  rejected_shares      bigint NOT NULL,
  hardware_errors      bigint NOT NULL,
  mining_state         text NOT NULL,
  power_target_w       real,
  received_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX asic_telemetry_device_time_idx ON asic_telemetry (device_id, time DESC);
CREATE INDEX asic_telemetry_site_time_idx ON asic_telemetry (site_id, time DESC);

CREATE TABLE price_data (
  time     timestamptz NOT NULL,
  feed     text NOT NULL,                   -- 'btc_usd', 'power', 'gpu_spot'
  site_id  text,                            -- power prices are per site
  price    double precision NOT NULL,
  source   text NOT NULL DEFAULT 'sim'
);
CREATE INDEX price_data_feed_time_idx ON price_data (feed, site_id, time DESC);

CREATE TABLE profitability_scores (
  time                 timestamptz NOT NULL,
  site_id              text NOT NULL,
  device_class         text NOT NULL,       -- 'asic:s21-xp', 'gpu:h100'
  revenue_usd_h        double precision NOT NULL,
  power_cost_usd_h     double precision NOT NULL,
  margin_usd_h         double precision NOT NULL,
  breakeven_usd_kwh    double precision,
  details              jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX profitability_scores_site_time_idx ON profitability_scores (site_id, time DESC);

CREATE TABLE allocation_history (
  time         timestamptz NOT NULL DEFAULT now(),
  workload_id  text NOT NULL,
  facility_id  text,
  resource_ids text[] NOT NULL DEFAULT '{}',
  from_state   text,
  to_state     text NOT NULL,
  reason       text,
  details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX allocation_history_workload_time_idx ON allocation_history (workload_id, time DESC);
CREATE INDEX allocation_history_time_idx ON allocation_history (time DESC);

-- Seed rows.
INSERT INTO facilities (id, name, region, power_capacity_kw, timezone) VALUES
  ('texas-1',  'Texas 1',  'ercot', 250, 'America/Chicago'),
  ('texas-2',  'Texas 2',  'ercot', 250, 'America/Chicago'),
  ('canada-1', 'Canada 1', 'ieso',  250, 'America/Toronto');

INSERT INTO customers (id, name, gpu_quota) VALUES
  ('cust-001', 'Sample customer 1', NULL),
  ('cust-002', 'Sample customer 2', 16),
  ('cust-003', 'Sample customer 3', 8);
