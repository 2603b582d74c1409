// Drizzle's view of the tables that migrations/*.sql create. The SQL files are the source of
// truth for DDL (they carry the TimescaleDB parts Drizzle cannot express); this file types the
// ordinary queries. Only control-plane/db imports Drizzle.
import {
  bigint, bigserial, boolean, doublePrecision, integer, jsonb, pgTable, real, smallint, text, timestamp,
} from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const facilities = pgTable('facilities', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  region: text('region').notNull(),
  powerCapacityKw: doublePrecision('power_capacity_kw').notNull(),
  timezone: text('timezone').notNull(),
  online: boolean('online').notNull(),
  lastSeenAt: ts('last_seen_at'),
  agentVersion: text('agent_version'),
  agentSession: text('agent_session'),
  agentHostname: text('agent_hostname'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const resources = pgTable('resources', {
  id: text('id').primaryKey(),
  facilityId: text('facility_id').notNull(),
  kind: text('kind', { enum: ['gpu', 'asic'] }).notNull(),
  model: text('model').notNull(),
  driver: text('driver').notNull(),
  endpoint: text('endpoint'),
  serial: text('serial'),
  ratedPowerW: doublePrecision('rated_power_w').notNull(),
  ratedHashrateThs: doublePrecision('rated_hashrate_ths'),
  memoryTotalMib: doublePrecision('memory_total_mib'),
  online: boolean('online').notNull(),
  lastSeenAt: ts('last_seen_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

export const customers = pgTable('customers', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  gpuQuota: integer('gpu_quota'),
  createdAt: ts('created_at').notNull().defaultNow(),
});

export const workloads = pgTable('workloads', {
  id: text('id').primaryKey(),
  customerId: text('customer_id').notNull(),
  workloadType: text('workload_type').notNull(),
  priority: smallint('priority').notNull(),
  state: text('state').notNull(),
  gpuType: text('gpu_type').notNull(),
  gpuCount: integer('gpu_count').notNull(),
  requirements: jsonb('requirements').notNull(),
  facilityId: text('facility_id'),
  idempotencyKey: text('idempotency_key'),
  durationS: integer('duration_s'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
  startedAt: ts('started_at'),
  finishedAt: ts('finished_at'),
  seq: bigserial('seq', { mode: 'number' }).notNull(),
  preemptedCount: integer('preempted_count').notNull().default(0),
  allocateAttempts: integer('allocate_attempts').notNull().default(0),
  allocateCommandId: text('allocate_command_id'),
  lastStateChange: ts('last_state_change').notNull().defaultNow(),
});

export const allocations = pgTable('allocations', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  workloadId: text('workload_id').notNull(),
  resourceId: text('resource_id').notNull(),
  facilityId: text('facility_id').notNull(),
  allocatedAt: ts('allocated_at').notNull().defaultNow(),
  releasedAt: ts('released_at'),
});

export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  time: ts('time').notNull().defaultNow(),
  actor: text('actor').notNull(),
  action: text('action').notNull(),
  subject: text('subject'),
  details: jsonb('details').notNull(),
});

export const gpuTelemetry = pgTable('gpu_telemetry', {
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
  xidErrors: integer('xid_errors').notNull(),
  receivedAt: ts('received_at').notNull(),
});

export const asicTelemetry = pgTable('asic_telemetry', {
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
  receivedAt: ts('received_at').notNull(),
});

export const priceData = pgTable('price_data', {
  time: ts('time').notNull(),
  feed: text('feed').notNull(),
  siteId: text('site_id'),
  price: doublePrecision('price').notNull(),
  source: text('source').notNull(),
});

export const profitabilityScores = pgTable('profitability_scores', {
  time: ts('time').notNull(),
  siteId: text('site_id').notNull(),
  deviceClass: text('device_class').notNull(),
  revenueUsdH: doublePrecision('revenue_usd_h').notNull(),
  powerCostUsdH: doublePrecision('power_cost_usd_h').notNull(),
  marginUsdH: doublePrecision('margin_usd_h').notNull(),
  breakevenUsdKwh: doublePrecision('breakeven_usd_kwh'),
  details: jsonb('details').notNull(),
});

export const allocationHistory = pgTable('allocation_history', {
  time: ts('time').notNull().defaultNow(),
  workloadId: text('workload_id').notNull(),
  facilityId: text('facility_id'),
  resourceIds: text('resource_ids').array().notNull(),
  fromState: text('from_state'),
  toState: text('to_state').notNull(),
  reason: text('reason'),
  details: jsonb('details').notNull(),
});

export const commands = pgTable('commands', {
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
});

export const siteControls = pgTable('site_controls', {
  siteId: text('site_id').primaryKey(),
  mode: text('mode').notNull().default('auto'),
  modeReason: text('mode_reason'),
  modeChangedBy: text('mode_changed_by'),
  modeChangedAt: ts('mode_changed_at').notNull().defaultNow(),
  schedule: jsonb('schedule').notNull(),
  gridTrip: jsonb('grid_trip'),
  /** ASIC starts are limited to this many kW per minute; null = the control plane's default */
  rampKwPerMin: doublePrecision('ramp_kw_per_min'),
});

export const demandResponse = pgTable('demand_response', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  siteId: text('site_id').notNull(),
  mw: doublePrecision('mw').notNull(),
  startsAt: ts('starts_at').notNull(),
  endsAt: ts('ends_at').notNull(),
  program: text('program').notNull().default(''),
  createdBy: text('created_by').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
});

export const economicDecisions = pgTable('economic_decisions', {
  time: ts('time').notNull(),
  siteId: text('site_id').notNull(),
  rule: text('rule').notNull(),
  summary: text('summary').notNull(),
  expectedMarginUsdH: doublePrecision('expected_margin_usd_h'),
  explanation: jsonb('explanation').notNull(),
  commands: text('commands').array().notNull(),
});

export const apiKeys = pgTable('api_keys', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  role: text('role').notNull(),
  customerId: text('customer_id'),
  siteId: text('site_id'),
  secretSha256: text('secret_sha256').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
  createdBy: text('created_by').notNull(),
  revokedAt: ts('revoked_at'),
  revokedBy: text('revoked_by'),
  revokeReason: text('revoke_reason'),
  version: bigint('version', { mode: 'number' }).notNull(),
});

/** what each part of the control plane wants a site's ASICs to do (control-plane/claims/model.ts) */
export const claims = pgTable('claims', {
  id: text('id').primaryKey(),
  siteId: text('site_id').notNull(),
  source: text('source').notNull(),
  /** empty = every ASIC of the site */
  deviceIds: text('device_ids').array().notNull(),
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
});
