// The one source of the database's shape: every table, column, default, key, CHECK and index
// (docs/database.md). `npm run db:generate` turns a change here into the next migrations/NNNN_*.sql;
// schema-drift.int.test.ts fails when a migrated database and this file differ. What Drizzle
// cannot express stays hand-written SQL: the TimescaleDB hypertables, continuous aggregates,
// compression and retention (migrations/0002_timescale.sql, 0007_timescale_economics.sql) and the
// seed rows (0001_schema.sql). Constraint names are PostgreSQL's own (<table>_<column>_check,
// _fkey, _key) because the frozen migrations 0001–0009 created them unnamed. CHECK bodies are
// written as PostgreSQL prints them back (pg_get_constraintdef), so comparing this file with a
// live database finds no false difference. Only control-plane/db imports Drizzle.
import { sql } from 'drizzle-orm';
import {
  bigint, bigserial, boolean, check, doublePrecision, foreignKey, index, integer, jsonb, pgSequence, pgTable, real,
  smallint, text, timestamp, uniqueIndex,
} from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** `col = ANY (ARRAY['a'::text, …])`, PostgreSQL's spelling of `col IN ('a', …)` */
const oneOf = (column: string, values: readonly string[]) =>
  sql.raw(`(${column} = ANY (ARRAY[${values.map((v) => `'${v}'::text`).join(', ')}]))`);

/** migrate.ts's record of the applied files (it creates the table itself before anything else) */
export const hcpMigrations = pgTable('hcp_migrations', {
  name: text('name').primaryKey(),
  status: text('status').notNull(),
  appliedAt: ts('applied_at').notNull().defaultNow(),
});

export const facilities = pgTable('facilities', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** grid region, e.g. 'ercot' */
  region: text('region').notNull(),
  powerCapacityKw: doublePrecision('power_capacity_kw').notNull().default(0),
  timezone: text('timezone').notNull().default('UTC'),
  online: boolean('online').notNull().default(false),
  lastSeenAt: ts('last_seen_at'),
  agentVersion: text('agent_version'),
  agentSession: text('agent_session'),
  agentHostname: text('agent_hostname'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const RESOURCE_KINDS = ['gpu', 'asic'] as const;

export const resources = pgTable(
  'resources',
  {
    /** gpu-<site>-0001, asic-<site>-00001 */
    id: text('id').primaryKey(),
    facilityId: text('facility_id').notNull(),
    kind: text('kind', { enum: RESOURCE_KINDS }).notNull(),
    model: text('model').notNull(),
    driver: text('driver').notNull().default(''),
    /** cgminer API host:port */
    endpoint: text('endpoint'),
    serial: text('serial'),
    ratedPowerW: doublePrecision('rated_power_w').notNull().default(0),
    ratedHashrateThs: doublePrecision('rated_hashrate_ths'),
    memoryTotalMib: doublePrecision('memory_total_mib'),
    online: boolean('online').notNull().default(false),
    lastSeenAt: ts('last_seen_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: 'resources_facility_id_fkey', columns: [t.facilityId], foreignColumns: [facilities.id] }),
    check('resources_kind_check', oneOf('kind', RESOURCE_KINDS)),
    index('resources_facility_kind_idx').on(t.facilityId, t.kind),
  ],
);

export const customers = pgTable('customers', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** max GPUs in live allocations; null = unlimited */
  gpuQuota: integer('gpu_quota'),
  createdAt: ts('created_at').notNull().defaultNow(),
});

export const WORKLOAD_TYPES = ['ai_inference_realtime', 'ai_inference_batch', 'ai_training'] as const;
export const WORKLOAD_STATES = ['pending', 'scheduled', 'running', 'preempted', 'completed', 'failed', 'cancelled'] as const;

export const workloads = pgTable(
  'workloads',
  {
    id: text('id').primaryKey(),
    customerId: text('customer_id').notNull(),
    workloadType: text('workload_type').notNull(),
    priority: smallint('priority').notNull(),
    state: text('state').notNull().default('pending'),
    gpuType: text('gpu_type').notNull(),
    gpuCount: integer('gpu_count').notNull(),
    requirements: jsonb('requirements').notNull().default(sql`'{}'::jsonb`),
    facilityId: text('facility_id'),
    idempotencyKey: text('idempotency_key'),
    durationS: integer('duration_s'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    startedAt: ts('started_at'),
    finishedAt: ts('finished_at'),
    /** submission order: FIFO within a priority, and the keyset cursor of GET /api/v1/workloads */
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    preemptedCount: integer('preempted_count').notNull().default(0),
    allocateAttempts: integer('allocate_attempts').notNull().default(0),
    /** the Allocate that placed the current run; a late result of an older placement is ignored */
    allocateCommandId: text('allocate_command_id'),
    lastStateChange: ts('last_state_change').notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: 'workloads_customer_id_fkey', columns: [t.customerId], foreignColumns: [customers.id] }),
    foreignKey({ name: 'workloads_facility_id_fkey', columns: [t.facilityId], foreignColumns: [facilities.id] }),
    check('workloads_workload_type_check', oneOf('workload_type', WORKLOAD_TYPES)),
    check('workloads_priority_check', sql`((priority >= 1) AND (priority <= 10))`),
    check('workloads_state_check', oneOf('state', WORKLOAD_STATES)),
    check('workloads_gpu_count_check', sql`(gpu_count > 0)`),
    index('workloads_state_idx').on(t.state, t.priority, t.createdAt),
    uniqueIndex('workloads_idempotency_idx').on(t.customerId, t.idempotencyKey).where(sql`(idempotency_key IS NOT NULL)`),
    uniqueIndex('workloads_seq_idx').on(t.seq),
    index('workloads_state_seq_idx').on(t.state, t.seq),
    index('workloads_customer_seq_idx').on(t.customerId, t.seq),
    index('workloads_live_site_idx').on(t.facilityId).where(sql`(state = ANY (ARRAY['scheduled'::text, 'running'::text]))`),
  ],
);

export const allocations = pgTable(
  'allocations',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    workloadId: text('workload_id').notNull(),
    resourceId: text('resource_id').notNull(),
    facilityId: text('facility_id').notNull(),
    allocatedAt: ts('allocated_at').notNull().defaultNow(),
    releasedAt: ts('released_at'),
  },
  (t) => [
    foreignKey({ name: 'allocations_workload_id_fkey', columns: [t.workloadId], foreignColumns: [workloads.id] }),
    foreignKey({ name: 'allocations_resource_id_fkey', columns: [t.resourceId], foreignColumns: [resources.id] }),
    foreignKey({ name: 'allocations_facility_id_fkey', columns: [t.facilityId], foreignColumns: [facilities.id] }),
    // A GPU is never in two live allocations.
    uniqueIndex('allocations_live_resource_idx').on(t.resourceId).where(sql`(released_at IS NULL)`),
    index('allocations_workload_idx').on(t.workloadId),
  ],
);

export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    time: ts('time').notNull().defaultNow(),
    /** 'operator:<name>', 'scheduler', 'engine', 'agent:<site>' */
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    subject: text('subject'),
    details: jsonb('details').notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [index('audit_log_time_idx').on(t.time.desc().nullsFirst())],
);

// Time series: one wide row per device sample (docs/architecture.md "Wide rows"). Unique per
// device and instant: a redelivered batch (MQTT QoS 1) is written once.
export const gpuTelemetry = pgTable(
  'gpu_telemetry',
  {
    time: ts('time').notNull(),
    siteId: text('site_id').notNull(),
    deviceId: text('device_id').notNull(),
    utilizationPct: real('utilization_pct').notNull(),
    memoryUsedMib: real('memory_used_mib').notNull(),
    memoryTotalMib: real('memory_total_mib').notNull(),
    temperatureC: real('temperature_c').notNull(),
    memoryTemperatureC: real('memory_temperature_c'),
    powerW: real('power_w').notNull(),
    powerLimitW: real('power_limit_w'),
    smClockMhz: real('sm_clock_mhz').notNull(),
    state: text('state').notNull(),
    workloadId: text('workload_id'),
    energyMj: bigint('energy_mj', { mode: 'number' }),
    xidErrors: integer('xid_errors').notNull().default(0),
    receivedAt: ts('received_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('gpu_telemetry_device_time_idx').on(t.deviceId, t.time.desc().nullsFirst()),
    index('gpu_telemetry_site_time_idx').on(t.siteId, t.time.desc().nullsFirst()),
  ],
);

export const asicTelemetry = pgTable(
  'asic_telemetry',
  {
    time: ts('time').notNull(),
    siteId: text('site_id').notNull(),
    deviceId: text('device_id').notNull(),
    hashrate5sThs: real('hashrate_5s_ths').notNull(),
    hashrateAvgThs: real('hashrate_avg_ths').notNull(),
    powerW: real('power_w').notNull(),
    boardTemperaturesC: real('board_temperatures_c').array().notNull(),
    chipTemperaturesC: real('chip_temperatures_c').array().notNull(),
    maxChipTemperatureC: real('max_chip_temperature_c'),
    fanRpm: integer('fan_rpm').array().notNull(),
    acceptedShares: bigint('accepted_shares', { mode: 'number' }).notNull(),
    rejectedShares: bigint('rejected_shares', { mode: 'number' }).notNull(),
    hardwareErrors: bigint('hardware_errors', { mode: 'number' }).notNull(),
    miningState: text('mining_state').notNull(),
    powerTargetW: real('power_target_w'),
    receivedAt: ts('received_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('asic_telemetry_device_time_idx').on(t.deviceId, t.time.desc().nullsFirst()),
    index('asic_telemetry_site_time_idx').on(t.siteId, t.time.desc().nullsFirst()),
  ],
);

export const priceData = pgTable(
  'price_data',
  {
    time: ts('time').notNull(),
    /** 'btc_usd', 'power', 'gpu_spot' */
    feed: text('feed').notNull(),
    /** power prices are per site */
    siteId: text('site_id'),
    price: doublePrecision('price').notNull(),
    source: text('source').notNull().default('sim'),
  },
  (t) => [index('price_data_feed_time_idx').on(t.feed, t.siteId, t.time.desc().nullsFirst())],
);

export const profitabilityScores = pgTable(
  'profitability_scores',
  {
    time: ts('time').notNull(),
    siteId: text('site_id').notNull(),
    /** 'asic:s21-xp', 'gpu:h100' */
    deviceClass: text('device_class').notNull(),
    revenueUsdH: doublePrecision('revenue_usd_h').notNull(),
    powerCostUsdH: doublePrecision('power_cost_usd_h').notNull(),
    marginUsdH: doublePrecision('margin_usd_h').notNull(),
    breakevenUsdKwh: doublePrecision('breakeven_usd_kwh'),
    details: jsonb('details').notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [index('profitability_scores_site_time_idx').on(t.siteId, t.time.desc().nullsFirst())],
);

export const allocationHistory = pgTable(
  'allocation_history',
  {
    time: ts('time').notNull().defaultNow(),
    workloadId: text('workload_id').notNull(),
    facilityId: text('facility_id'),
    resourceIds: text('resource_ids').array().notNull().default([]),
    fromState: text('from_state'),
    toState: text('to_state').notNull(),
    reason: text('reason'),
    details: jsonb('details').notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [
    index('allocation_history_workload_time_idx').on(t.workloadId, t.time.desc().nullsFirst()),
    index('allocation_history_time_idx').on(t.time.desc().nullsFirst()),
  ],
);

export const COMMAND_TYPES = ['allocate', 'release', 'set_mining', 'curtail', 'arm_grid_trip'] as const;
export const COMMAND_STATES = ['pending', 'sent', 'acked', 'succeeded', 'failed', 'expired'] as const;

// Commands to agents. Stored before they are sent; pending → sent → acked → succeeded | failed |
// expired, and a control-plane restart resumes every command that is not final.
export const commands = pgTable(
  'commands',
  {
    id: text('id').primaryKey(),
    siteId: text('site_id').notNull(),
    type: text('type').notNull(),
    payload: jsonb('payload').notNull(),
    state: text('state').notNull(),
    actor: text('actor').notNull(),
    workloadId: text('workload_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    deadline: ts('deadline').notNull(),
    sentAt: ts('sent_at'),
    ackedAt: ts('acked_at'),
    finishedAt: ts('finished_at'),
    attempts: integer('attempts').notNull().default(0),
    reasonCode: text('reason_code'),
    message: text('message'),
    devices: jsonb('devices'),
    /** why the command was sent: for the reconciler's, the claim that won (source, claim id, reason) */
    details: jsonb('details'),
  },
  (t) => [
    foreignKey({ name: 'commands_site_id_fkey', columns: [t.siteId], foreignColumns: [facilities.id] }),
    check('commands_type_check', oneOf('type', COMMAND_TYPES)),
    check('commands_state_check', oneOf('state', COMMAND_STATES)),
    index('commands_live_idx').on(t.siteId, t.createdAt).where(sql`(state = ANY (ARRAY['pending'::text, 'sent'::text, 'acked'::text]))`),
    index('commands_created_idx').on(t.createdAt.desc().nullsFirst()),
    index('commands_site_state_idx').on(t.siteId, t.state, t.createdAt.desc().nullsFirst()),
    index('commands_workload_idx').on(t.workloadId).where(sql`(workload_id IS NOT NULL)`),
  ],
);

// Each site is in automatic mode (the engine decides) or manual (an operator does), with
// time-of-day windows in the site's local time.
export const siteControls = pgTable(
  'site_controls',
  {
    siteId: text('site_id').primaryKey(),
    mode: text('mode').notNull().default('auto'),
    modeReason: text('mode_reason'),
    modeChangedBy: text('mode_changed_by'),
    modeChangedAt: ts('mode_changed_at').notNull().defaultNow(),
    schedule: jsonb('schedule').notNull().default(sql`'[]'::jsonb`),
    /** the agent's under-frequency trip settings; null keeps the control plane's default */
    gridTrip: jsonb('grid_trip'),
    /** ASIC starts are limited to this many kW per minute; null = the control plane's default */
    rampKwPerMin: doublePrecision('ramp_kw_per_min'),
  },
  (t) => [
    foreignKey({ name: 'site_controls_site_id_fkey', columns: [t.siteId], foreignColumns: [facilities.id] }),
    check('site_controls_mode_check', oneOf('mode', ['auto', 'manual'])),
  ],
);

/** demand-response commitments: MW the site promised to shed for a window */
export const demandResponse = pgTable(
  'demand_response',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    siteId: text('site_id').notNull(),
    mw: doublePrecision('mw').notNull(),
    startsAt: ts('starts_at').notNull(),
    endsAt: ts('ends_at').notNull(),
    program: text('program').notNull().default(''),
    createdBy: text('created_by').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: 'demand_response_site_id_fkey', columns: [t.siteId], foreignColumns: [facilities.id] }),
    check('demand_response_mw_check', sql`(mw > (0)::double precision)`),
    check('demand_response_check', sql`(ends_at > starts_at)`),
    index('demand_response_site_window_idx').on(t.siteId, t.endsAt),
  ],
);

/** every decision of the economic engine with its explanation: inputs, rule, expected USD/h */
export const economicDecisions = pgTable(
  'economic_decisions',
  {
    time: ts('time').notNull(),
    siteId: text('site_id').notNull(),
    rule: text('rule').notNull(),
    summary: text('summary').notNull(),
    expectedMarginUsdH: doublePrecision('expected_margin_usd_h'),
    explanation: jsonb('explanation').notNull(),
    commands: text('commands').array().notNull().default([]),
  },
  (t) => [index('economic_decisions_site_time_idx').on(t.siteId, t.time.desc().nullsFirst())],
);

/** moves on every key insert and revocation: a control plane polls one max() to learn its key ring is stale */
export const apiKeysVersionSeq = pgSequence('api_keys_version_seq');

export const API_KEY_ROLES = ['admin', 'operator', 'customer', 'viewer', 'agent', 'feed'] as const;

// Only a secret's SHA-256 is stored: the secret is shown once, when the key is made
// (docs/security.md).
export const apiKeys = pgTable(
  'api_keys',
  {
    /** key_<hex>; public, safe to log */
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    role: text('role').notNull(),
    customerId: text('customer_id'),
    siteId: text('site_id'),
    secretSha256: text('secret_sha256').notNull().unique('api_keys_secret_sha256_key'),
    createdAt: ts('created_at').notNull().defaultNow(),
    createdBy: text('created_by').notNull(),
    revokedAt: ts('revoked_at'),
    revokedBy: text('revoked_by'),
    revokeReason: text('revoke_reason'),
    version: bigint('version', { mode: 'number' }).notNull().default(sql`nextval('api_keys_version_seq'::regclass)`),
  },
  (t) => [
    foreignKey({ name: 'api_keys_customer_id_fkey', columns: [t.customerId], foreignColumns: [customers.id] }),
    foreignKey({ name: 'api_keys_site_id_fkey', columns: [t.siteId], foreignColumns: [facilities.id] }),
    check('api_keys_name_check', sql`(name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'::text)`),
    check('api_keys_role_check', oneOf('role', API_KEY_ROLES)),
    check('api_keys_secret_sha256_check', sql`(secret_sha256 ~ '^[0-9a-f]{64}$'::text)`),
    check('api_keys_check', sql`((role = 'customer'::text) = (customer_id IS NOT NULL))`),
    check('api_keys_check1', sql`((role = 'agent'::text) = (site_id IS NOT NULL))`),
    // A name belongs to one live key at a time; a revoked key's name may be used again.
    uniqueIndex('api_keys_live_name_idx').on(t.name).where(sql`(revoked_at IS NULL)`),
    index('api_keys_version_idx').on(t.version),
  ],
);

export const CLAIM_SOURCES = ['grid', 'operator', 'demand_response', 'scheduler', 'schedule', 'economics'] as const;

/** what each part of the control plane wants a site's ASICs to do (control-plane/claims/model.ts) */
export const claims = pgTable(
  'claims',
  {
    id: text('id').primaryKey(),
    siteId: text('site_id').notNull(),
    source: text('source').notNull(),
    /** empty = every ASIC of the site */
    deviceIds: text('device_ids').array().notNull().default([]),
    /** ClaimWant: {kind: 'mining', enabled, powerTargetW} | {kind: 'site_cap', capKw} */
    want: jsonb('want').notNull(),
    reason: text('reason').notNull(),
    actor: text('actor').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
    expiresAt: ts('expires_at'),
    /** set when it ended (released, expired or replaced); a live claim has none */
    endedAt: ts('ended_at'),
    endedBy: text('ended_by'),
    endReason: text('end_reason'),
  },
  (t) => [
    foreignKey({ name: 'claims_site_id_fkey', columns: [t.siteId], foreignColumns: [facilities.id] }),
    check('claims_source_check', oneOf('source', CLAIM_SOURCES)),
    index('claims_live_idx').on(t.siteId).where(sql`(ended_at IS NULL)`),
  ],
);

/**
 * The ledger of committed telemetry batches (docs/reliability.md "Control plane: acknowledge after
 * commit"): one row per batch, written in the same transaction as the batch's samples
 * (control-plane/db/telemetry-writer.ts). Its key decides whether a batch's rows are inserted, so
 * a batch replayed by an agent, redelivered by the broker or taken by two replicas lands once.
 * `rows` is what the batch stored; 0 for a batch refused for good (every sample bad). Rows older
 * than HCP_INGEST_LEDGER_RETENTION_S (48 h, past the agent's 24 h spool) are deleted
 * (telemetry-ledger.ts). A plain table everywhere: a hypertable's unique key would have to hold
 * committed_at. Its key is a unique index, not a composite primary key: ON CONFLICT and lookups use
 * either alike, and drizzle-kit 0.31's push introspection (test/harness/schema-drift.ts) loses the
 * parameters of its composite-primary-key query (pgPushIntrospect in node_modules/drizzle-kit/api.js),
 * so the drift check could not read one.
 */
export const telemetryBatches = pgTable(
  'telemetry_batches',
  {
    siteId: text('site_id').notNull(),
    /** TelemetryBatch.stream, or its agent_session when it has none */
    stream: text('stream').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    rows: integer('rows').notNull(),
    committedAt: ts('committed_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('telemetry_batches_key_idx').on(t.siteId, t.stream, t.seq),
    index('telemetry_batches_committed_at_idx').on(t.committedAt),
  ],
);

/**
 * Leases of the singleton loops when several control planes share one database
 * (control-plane/ha/lease.ts). One row per lease; `token` grows by one at every change of holder
 * and fences the holder's writes (control-plane/ha/fence.ts). `expires_at` is database time.
 */
export const leases = pgTable('leases', {
  name: text('name').primaryKey(),
  holder: text('holder').notNull(),
  token: bigint('token', { mode: 'bigint' }).notNull(),
  expiresAt: ts('expires_at').notNull(),
  acquiredAt: ts('acquired_at').notNull().defaultNow(),
});
