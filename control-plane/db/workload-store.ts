// Workloads and their allocations. The partial unique index allocations_live_resource_idx makes
// "a GPU is never in two live allocations" a database guarantee, not just a check. Every state
// change leaves a row in allocation_history. Which moves are allowed is not decided here: the
// workload service (control-plane/workloads/service.ts) checks them against the state machine
// before it asks; a move here only happens when the workload is still in one of `from`.
//
// Ordinary queries use Drizzle's typed builder (schema.ts); the multi-row moves of a pass or a
// batch of results bind one array per column in raw SQL, in one transaction each.
//
// Every move is fenced when a singleton loop makes it (the scheduler: ha/lease.ts, ha/fence.ts):
// the transaction first checks the lease's token, and a deposed leader's move is refused with
// FencedError. The moves are conditional already (from-states, FOR UPDATE), so two replicas
// answering one workload's commands move it once.
import { randomUUID } from 'node:crypto';
import { and, asc, count, desc, eq, inArray, isNotNull, isNull, lt, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { allocationHistory, allocations, customers, workloads } from './schema.js';
import { checkFence, currentFence } from '../ha/fence.js';

/** workloads.state as stored (the state machine itself is control-plane/scheduler/workload-state.ts) */
export type StoredWorkloadState = 'pending' | 'scheduled' | 'running' | 'preempted' | 'completed' | 'failed' | 'cancelled';
type WorkloadState = StoredWorkloadState;

export interface WorkloadRow {
  id: string;
  customer_id: string;
  workload_type: string;
  priority: number;
  state: string;
  gpu_type: string;
  gpu_count: number;
  requirements: Record<string, unknown>;
  facility_id: string | null;
  duration_s: number | null;
  idempotency_key: string | null;
  seq: string | number;
  preempted_count: number;
  allocate_attempts: number;
  allocate_command_id: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_state_change: string;
}

const isoOf = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

/** a workloads row as the rest of the control plane reads it (snake_case, times as ISO strings) */
function toWorkloadRow(r: typeof workloads.$inferSelect): WorkloadRow {
  return {
    id: r.id, customer_id: r.customerId, workload_type: r.workloadType, priority: r.priority, state: r.state, gpu_type: r.gpuType, gpu_count: r.gpuCount,
    requirements: (r.requirements ?? {}) as Record<string, unknown>, facility_id: r.facilityId, duration_s: r.durationS, idempotency_key: r.idempotencyKey,
    seq: r.seq, preempted_count: r.preemptedCount, allocate_attempts: r.allocateAttempts, allocate_command_id: r.allocateCommandId,
    created_at: isoOf(r.createdAt)!, updated_at: isoOf(r.updatedAt)!, started_at: isoOf(r.startedAt), finished_at: isoOf(r.finishedAt), last_state_change: isoOf(r.lastStateChange)!,
  };
}

export interface AllocationRow {
  workload_id: string;
  resource_id: string;
  facility_id: string;
  allocated_at: string;
  released_at: string | null;
}

export interface HistoryRow {
  time: string;
  facility_id: string | null;
  resource_ids: string[];
  from_state: string | null;
  to_state: string;
  reason: string | null;
}

export async function customerQuota(db: Db, id: string): Promise<{ quota: number | null } | null> {
  const [r] = await db.orm.select({ quota: customers.gpuQuota }).from(customers).where(eq(customers.id, id));
  return r ? { quota: r.quota } : null;
}

export async function customerExists(db: Db, id: string): Promise<boolean> {
  return (await customerQuota(db, id)) !== null;
}

export async function customerQuotas(db: Db): Promise<Map<string, number | null>> {
  const rows = await db.orm.select({ id: customers.id, quota: customers.gpuQuota }).from(customers);
  return new Map(rows.map((r) => [r.id, r.quota]));
}

export interface NewWorkload {
  customerId: string;
  workloadType: string;
  priority: number;
  gpuType: string;
  gpuCount: number;
  requirements: Record<string, unknown>;
  durationS?: number | null;
  idempotencyKey?: string | null;
}

export type CheckedInsert = { row: WorkloadRow; created: boolean } | { refused: 'unknown_customer' } | { refused: 'over_quota'; quota: number };

/**
 * The submit path in one round trip: inserts only when the customer exists and the gang fits its
 * quota. Only a refusal or a repeated idempotency key costs a second query, to say which.
 */
export async function insertWorkloadChecked(db: Db, w: NewWorkload): Promise<CheckedInsert> {
  const [row] = await db.query<WorkloadRow>(
    `INSERT INTO workloads (id, customer_id, workload_type, priority, gpu_type, gpu_count, requirements, duration_s, idempotency_key)
     SELECT $1, c.id, $3, $4, $5, $6, $7::jsonb, $8, $9 FROM customers c WHERE c.id = $2 AND (c.gpu_quota IS NULL OR $6 <= c.gpu_quota)
     ON CONFLICT (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING *`,
    [`wl-${randomUUID()}`, w.customerId, w.workloadType, w.priority, w.gpuType, w.gpuCount, JSON.stringify(w.requirements), w.durationS ?? null, w.idempotencyKey ?? null],
  );
  if (row) return { row, created: true };
  const c = await customerQuota(db, w.customerId);
  if (!c) return { refused: 'unknown_customer' };
  if (c.quota !== null && w.gpuCount > c.quota) return { refused: 'over_quota', quota: c.quota };
  const [first] = await db.orm.select().from(workloads).where(and(eq(workloads.customerId, w.customerId), eq(workloads.idempotencyKey, w.idempotencyKey!)));
  return { row: toWorkloadRow(first!), created: false };
}

export async function getWorkload(db: Db, id: string): Promise<WorkloadRow | null> {
  const [row] = await db.orm.select().from(workloads).where(eq(workloads.id, id));
  return row ? toWorkloadRow(row) : null;
}

/** newest first; `before` is the seq of the last row of the previous page */
export async function listWorkloads(db: Db, f: { state?: string; customerId?: string; limit: number; before?: number }): Promise<WorkloadRow[]> {
  const rows = await db.orm.select().from(workloads)
    .where(and(
      f.state !== undefined ? eq(workloads.state, f.state) : undefined,
      f.customerId !== undefined ? eq(workloads.customerId, f.customerId) : undefined,
      f.before !== undefined ? lt(workloads.seq, f.before) : undefined,
    ))
    .orderBy(desc(workloads.seq)).limit(f.limit);
  return rows.map(toWorkloadRow);
}

export async function pendingWorkloads(db: Db): Promise<WorkloadRow[]> {
  return (await db.orm.select().from(workloads).where(eq(workloads.state, 'pending')).orderBy(asc(workloads.seq))).map(toWorkloadRow);
}

/** ids of the workloads waiting for an eviction's Release */
export async function preemptedWorkloads(db: Db): Promise<string[]> {
  return (await db.orm.select({ id: workloads.id }).from(workloads).where(eq(workloads.state, 'preempted')).orderBy(asc(workloads.seq))).map((r) => r.id);
}

export async function allocationsOf(db: Db, workloadId: string): Promise<AllocationRow[]> {
  const rows = await db.orm.select().from(allocations).where(eq(allocations.workloadId, workloadId)).orderBy(asc(allocations.allocatedAt), asc(allocations.resourceId));
  return rows.map((a) => ({ workload_id: a.workloadId, resource_id: a.resourceId, facility_id: a.facilityId, allocated_at: isoOf(a.allocatedAt)!, released_at: isoOf(a.releasedAt) }));
}

export async function historyOf(db: Db, workloadId: string): Promise<HistoryRow[]> {
  const rows = await db.orm.select().from(allocationHistory).where(eq(allocationHistory.workloadId, workloadId)).orderBy(asc(allocationHistory.time), asc(allocationHistory.toState));
  return rows.map((h) => ({ time: isoOf(h.time)!, facility_id: h.facilityId, resource_ids: h.resourceIds, from_state: h.fromState, to_state: h.toState, reason: h.reason }));
}

/** GPU ids in a live allocation, among the given ones (all when ids is null) */
export async function busyGpus(db: Db, ids: string[] | null): Promise<Map<string, string>> {
  const rows = await db.orm.select({ resourceId: allocations.resourceId, workloadId: allocations.workloadId }).from(allocations)
    .where(and(isNull(allocations.releasedAt), ids === null ? undefined : inArray(allocations.resourceId, ids)));
  return new Map(rows.map((r) => [r.resourceId, r.workloadId]));
}

export interface LiveHolderRow {
  id: string;
  customer_id: string;
  workload_type: string;
  priority: number;
  state: string;
  started_at: string | null;
  facility_id: string;
  gpu_ids: string[];
}

/** workloads holding GPUs, with their GPUs */
export async function liveHolders(db: Db): Promise<LiveHolderRow[]> {
  const rows = await db.orm
    .select({
      id: workloads.id, customerId: workloads.customerId, workloadType: workloads.workloadType, priority: workloads.priority, state: workloads.state,
      startedAt: workloads.startedAt, facilityId: allocations.facilityId,
      gpuIds: sql<string[]>`array_agg(${allocations.resourceId} ORDER BY ${allocations.resourceId})`,
    })
    .from(allocations).innerJoin(workloads, eq(workloads.id, allocations.workloadId))
    .where(isNull(allocations.releasedAt))
    .groupBy(workloads.id, allocations.facilityId);
  return rows.map((r) => ({
    id: r.id, customer_id: r.customerId, workload_type: r.workloadType, priority: r.priority, state: r.state,
    started_at: isoOf(r.startedAt), facility_id: r.facilityId, gpu_ids: r.gpuIds,
  }));
}

/** running workloads whose duration_s has elapsed */
/** which of these Allocate command ids placed a run that still holds its GPUs (scheduled or running) */
export async function liveAllocateIds(db: Db, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.orm.select({ id: workloads.allocateCommandId }).from(workloads)
    .where(and(inArray(workloads.allocateCommandId, [...ids]), inArray(workloads.state, ['scheduled', 'running'])));
  return new Set(rows.map((r) => r.id).filter((id): id is string => id !== null));
}

export async function dueCompletions(db: Db, limit = 1000): Promise<string[]> {
  const rows = await db.orm.select({ id: workloads.id }).from(workloads)
    .where(and(eq(workloads.state, 'running'), isNotNull(workloads.durationS), sql`${workloads.startedAt} + ${workloads.durationS} * interval '1 second' <= now()`))
    .orderBy(asc(workloads.startedAt)).limit(limit);
  return rows.map((r) => r.id);
}

export async function liveAtSite(db: Db, siteId: string): Promise<Array<{ id: string; state: string }>> {
  return db.orm.select({ id: workloads.id, state: workloads.state }).from(workloads)
    .where(and(eq(workloads.facilityId, siteId), inArray(workloads.state, ['scheduled', 'running'])));
}

export class AllocationConflict extends Error {
  constructor(readonly reason: 'device_busy' | 'workload_state', message: string) {
    super(message);
  }
}

/**
 * Reserves the GPUs and moves the workload pending → scheduled in one transaction, naming the
 * Allocate command that will carry it. Throws AllocationConflict when a GPU was taken meanwhile
 * or the workload is no longer pending.
 */
export async function reserveAllocation(db: Db, workloadId: string, siteId: string, deviceIds: string[], commandId: string, reason = 'allocate'): Promise<void> {
  await db.transaction(async (tx) => {
    await checkFence(tx, currentFence());
    const moved = await tx.query(
      `UPDATE workloads SET state = 'scheduled', facility_id = $2, allocate_command_id = $3, updated_at = now(), last_state_change = now()
       WHERE id = $1 AND state = 'pending' RETURNING id`,
      [workloadId, siteId, commandId],
    );
    if (moved.length === 0) throw new AllocationConflict('workload_state', `workload ${workloadId} is not waiting for GPUs`);
    try {
      await tx.query(
        `INSERT INTO allocations (workload_id, resource_id, facility_id) SELECT $1, r, $2 FROM unnest($3::text[]) AS r`,
        [workloadId, siteId, deviceIds],
      );
    } catch (err) {
      // 23505: unique_violation on allocations_live_resource_idx
      if ((err as { code?: string }).code === '23505') throw new AllocationConflict('device_busy', 'a requested GPU is already allocated');
      throw err;
    }
    await tx.query(
      `INSERT INTO allocation_history (workload_id, facility_id, resource_ids, from_state, to_state, reason, details) VALUES ($1, $2, $3::text[], 'pending', 'scheduled', $4, $5::jsonb)`,
      [workloadId, siteId, deviceIds, reason, JSON.stringify({ command_id: commandId })],
    );
  });
}

export interface TransitionOptions {
  /** mark the workload's live allocations released */
  releaseAllocations?: boolean;
  /** only when the workload's current Allocate is this command */
  allocateCommandId?: string;
  /** count a failed allocate */
  countAttempt?: boolean;
}

export interface Transitioned {
  from: WorkloadState;
  siteId: string | null;
  /** GPUs whose live allocation this released, by site */
  released: Array<{ resource_id: string; facility_id: string }>;
}

/**
 * Moves a workload between states and records it; null
 * when it was not in one of `from` (someone else moved it first).
 */
export async function transitionWorkload(db: Db, id: string, from: WorkloadState[], to: WorkloadState, reason: string, opts: TransitionOptions = {}): Promise<Transitioned | null> {
  return db.transaction(async (tx) => {
    await checkFence(tx, currentFence());
    const rows = await tx.query<{ state: WorkloadState; facility_id: string | null }>(
      `UPDATE workloads w SET state = $3, updated_at = now(), last_state_change = now(),
         started_at = CASE WHEN $3 = 'running' THEN now() WHEN $3 = 'pending' THEN NULL ELSE w.started_at END,
         finished_at = CASE WHEN $3 IN ('completed', 'failed', 'cancelled') THEN now() ELSE w.finished_at END,
         preempted_count = w.preempted_count + CASE WHEN $3 = 'preempted' THEN 1 ELSE 0 END,
         allocate_attempts = w.allocate_attempts + CASE WHEN $5 THEN 1 ELSE 0 END,
         facility_id = CASE WHEN $3 = 'pending' THEN NULL ELSE w.facility_id END
       FROM (SELECT state AS old_state, facility_id AS old_site FROM workloads WHERE id = $1 FOR UPDATE) o
       WHERE w.id = $1 AND o.old_state = ANY($2::text[]) AND ($4::text IS NULL OR w.allocate_command_id = $4)
       RETURNING o.old_state AS state, o.old_site AS facility_id`,
      [id, from, to, opts.allocateCommandId ?? null, opts.countAttempt ?? false],
    );
    if (rows.length === 0) return null;
    let released: Transitioned['released'] = [];
    if (opts.releaseAllocations) {
      released = await tx.query<{ resource_id: string; facility_id: string }>(
        `UPDATE allocations SET released_at = now() WHERE workload_id = $1 AND released_at IS NULL RETURNING resource_id, facility_id`,
        [id],
      );
    }
    await tx.query(
      `INSERT INTO allocation_history (workload_id, facility_id, resource_ids, from_state, to_state, reason) VALUES ($1, $2, $3::text[], $4, $5, $6)`,
      [id, rows[0]!.facility_id, released.map((r) => r.resource_id), rows[0]!.state, to, reason],
    );
    return { from: rows[0]!.state, siteId: rows[0]!.facility_id, released };
  });
}

export interface BatchTransition {
  id: string;
  reason: string;
  /** only when the workload's current Allocate is this command */
  allocateCommandId?: string;
}

/**
 * transitionWorkload for many workloads leaving one state, in one transaction of three
 * statements (a tick's completions, a burst of confirmed Allocates, a pass's evictions). Returns
 * those that moved; the others were not in `from` (someone moved them first). `to` is never
 * pending, so each keeps its site.
 */
export async function transitionMany(db: Db, items: BatchTransition[], from: WorkloadState, to: Exclude<WorkloadState, 'pending'>, opts: { releaseAllocations?: boolean } = {}): Promise<Map<string, Transitioned>> {
  const out = new Map<string, Transitioned>();
  if (items.length === 0) return out;
  return db.transaction(async (tx) => {
    await checkFence(tx, currentFence());
    const moved = await tx.query<{ id: string; facility_id: string | null }>(
      `UPDATE workloads w SET state = $3, updated_at = now(), last_state_change = now(),
         started_at = CASE WHEN $3 = 'running' THEN now() ELSE w.started_at END,
         finished_at = CASE WHEN $3 IN ('completed', 'failed', 'cancelled') THEN now() ELSE w.finished_at END,
         preempted_count = w.preempted_count + CASE WHEN $3 = 'preempted' THEN 1 ELSE 0 END
       FROM unnest($1::text[], $4::text[]) AS r(id, c)
       WHERE w.id = r.id AND w.state = $2 AND (r.c IS NULL OR w.allocate_command_id = r.c)
       RETURNING w.id, w.facility_id`,
      [items.map((i) => i.id), from, to, items.map((i) => i.allocateCommandId ?? null)],
    );
    if (moved.length === 0) return out;
    for (const m of moved) out.set(m.id, { from, siteId: m.facility_id, released: [] });
    if (opts.releaseAllocations) {
      const released = await tx.query<{ workload_id: string; resource_id: string; facility_id: string }>(
        `UPDATE allocations SET released_at = now() WHERE workload_id = ANY($1::text[]) AND released_at IS NULL RETURNING workload_id, resource_id, facility_id`,
        [moved.map((m) => m.id)],
      );
      for (const r of released) out.get(r.workload_id)!.released.push({ resource_id: r.resource_id, facility_id: r.facility_id });
    }
    const reason = new Map(items.map((i) => [i.id, i.reason]));
    const ids = [...out.keys()];
    await tx.query(
      `INSERT INTO allocation_history (workload_id, facility_id, resource_ids, from_state, to_state, reason)
       SELECT id, s, string_to_array(g, ','), $4, $5, why FROM unnest($1::text[], $2::text[], $3::text[], $6::text[]) AS r(id, s, g, why)`,
      [ids, ids.map((id) => out.get(id)!.siteId), ids.map((id) => out.get(id)!.released.map((r) => r.resource_id).join(',')), from, to, ids.map((id) => reason.get(id)!)],
    );
    return out;
  });
}

export async function countRunning(db: Db): Promise<number> {
  const [r] = await db.orm.select({ n: count() }).from(workloads).where(eq(workloads.state, 'running'));
  return Number(r?.n ?? 0);
}

export interface Reservation {
  workloadId: string;
  siteId: string;
  deviceIds: string[];
  commandId: string;
  reason: string;
}

/**
 * Many reservations in one transaction of a few statements (a scheduling pass): each moves its
 * workload pending → scheduled with its GPUs, or is left out when the workload is no longer
 * pending or one of its GPUs was taken meanwhile. Returns the ids reserved, and those refused
 * for a busy GPU.
 */
export async function reserveMany(db: Db, rs: Reservation[]): Promise<{ reserved: Set<string>; busy: Set<string> }> {
  if (rs.length === 0) return { reserved: new Set(), busy: new Set() };
  return db.transaction(async (tx) => {
    await checkFence(tx, currentFence());
    const moved = new Set((await tx.query<{ id: string }>(
      `UPDATE workloads w SET state = 'scheduled', facility_id = r.s, allocate_command_id = r.c, updated_at = now(), last_state_change = now()
       FROM unnest($1::text[], $2::text[], $3::text[]) AS r(id, s, c) WHERE w.id = r.id AND w.state = 'pending' RETURNING w.id`,
      [rs.map((r) => r.workloadId), rs.map((r) => r.siteId), rs.map((r) => r.commandId)],
    )).map((r) => r.id));
    const rows = rs.filter((r) => moved.has(r.workloadId)).flatMap((r) => r.deviceIds.map((g) => [r.workloadId, g, r.siteId] as const));
    const inserted = await tx.query<{ workload_id: string }>(
      `INSERT INTO allocations (workload_id, resource_id, facility_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
       ON CONFLICT (resource_id) WHERE released_at IS NULL DO NOTHING RETURNING workload_id`,
      [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])],
    );
    const got = new Map<string, number>();
    for (const r of inserted) got.set(r.workload_id, (got.get(r.workload_id) ?? 0) + 1);
    // A gang is all or nothing: one taken GPU sends the workload back to pending, untouched.
    const busy = new Set(rs.filter((r) => moved.has(r.workloadId) && (got.get(r.workloadId) ?? 0) < r.deviceIds.length).map((r) => r.workloadId));
    if (busy.size) {
      await tx.query(`DELETE FROM allocations WHERE workload_id = ANY($1::text[]) AND released_at IS NULL`, [[...busy]]);
      await tx.query(`UPDATE workloads SET state = 'pending', facility_id = NULL, allocate_command_id = NULL WHERE id = ANY($1::text[])`, [[...busy]]);
    }
    const ok = rs.filter((r) => moved.has(r.workloadId) && !busy.has(r.workloadId));
    if (ok.length) {
      await tx.query(
        `INSERT INTO allocation_history (workload_id, facility_id, resource_ids, from_state, to_state, reason, details)
         SELECT id, s, string_to_array(g, ','), 'pending', 'scheduled', why, jsonb_build_object('command_id', c)
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(id, s, g, why, c)`,
        [ok.map((r) => r.workloadId), ok.map((r) => r.siteId), ok.map((r) => r.deviceIds.join(',')), ok.map((r) => r.reason), ok.map((r) => r.commandId)],
      );
    }
    return { reserved: new Set(ok.map((r) => r.workloadId)), busy };
  });
}

/** GPU-seconds each customer's workloads held between from and to (allocations overlapping it), and GPUs held now */
export async function usageByCustomer(db: Pick<Db, 'query'>, f: { fromMs: number; toMs: number; customerId?: string }): Promise<Array<{ customerId: string; gpuSeconds: number; liveGpus: number; workloads: number }>> {
  const rows = await db.query<{ customer_id: string; gpu_seconds: string | number; live_gpus: string | number; workloads: string | number }>(
    `SELECT w.customer_id,
            coalesce(sum(extract(epoch FROM least(coalesce(a.released_at, now()), to_timestamp($2 / 1000.0))
                                          - greatest(a.allocated_at, to_timestamp($1 / 1000.0)))), 0) AS gpu_seconds,
            count(*) FILTER (WHERE a.released_at IS NULL) AS live_gpus,
            count(DISTINCT w.id) AS workloads
     FROM allocations a JOIN workloads w ON w.id = a.workload_id
     WHERE a.allocated_at < to_timestamp($2 / 1000.0)
       AND (a.released_at IS NULL OR a.released_at > to_timestamp($1 / 1000.0))
       AND ($3::text IS NULL OR w.customer_id = $3)
     GROUP BY w.customer_id ORDER BY w.customer_id`,
    [f.fromMs, f.toMs, f.customerId ?? null],
  );
  return rows.map((r) => ({ customerId: r.customer_id, gpuSeconds: Math.max(0, Number(r.gpu_seconds)), liveGpus: Number(r.live_gpus), workloads: Number(r.workloads) }));
}
