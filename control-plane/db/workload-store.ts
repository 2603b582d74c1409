// Workloads and their allocations. The partial unique index allocations_live_resource_idx makes
// "a GPU is never in two live allocations" a database guarantee, not just a check. Every state
// change leaves a row in allocation_history. Which moves are allowed is not decided here: the
// workload service (control-plane/workloads/service.ts) checks them against the state machine
// before it asks; a move here only happens when the workload is still in one of `from`.
import { randomUUID } from 'node:crypto';
import type { Db } from './client.js';

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
  const [r] = await db.query<{ gpu_quota: number | null }>('SELECT gpu_quota FROM customers WHERE id = $1', [id]);
  return r ? { quota: r.gpu_quota } : null;
}

export async function customerExists(db: Db, id: string): Promise<boolean> {
  return (await customerQuota(db, id)) !== null;
}

export async function customerQuotas(db: Db): Promise<Map<string, number | null>> {
  const rows = await db.query<{ id: string; gpu_quota: number | null }>('SELECT id, gpu_quota FROM customers');
  return new Map(rows.map((r) => [r.id, r.gpu_quota]));
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
  const [first] = await db.query<WorkloadRow>('SELECT * FROM workloads WHERE customer_id = $1 AND idempotency_key = $2', [w.customerId, w.idempotencyKey]);
  return { row: first!, created: false };
}

export async function getWorkload(db: Db, id: string): Promise<WorkloadRow | null> {
  const [row] = await db.query<WorkloadRow>('SELECT * FROM workloads WHERE id = $1', [id]);
  return row ?? null;
}

/** newest first; `before` is the seq of the last row of the previous page */
export async function listWorkloads(db: Db, f: { state?: string; customerId?: string; limit: number; before?: number }): Promise<WorkloadRow[]> {
  return db.query<WorkloadRow>(
    `SELECT * FROM workloads WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR customer_id = $2) AND ($4::bigint IS NULL OR seq < $4)
     ORDER BY seq DESC LIMIT $3`,
    [f.state ?? null, f.customerId ?? null, f.limit, f.before ?? null],
  );
}

export async function pendingWorkloads(db: Db): Promise<WorkloadRow[]> {
  return db.query<WorkloadRow>(`SELECT * FROM workloads WHERE state = 'pending' ORDER BY seq`);
}

export async function allocationsOf(db: Db, workloadId: string): Promise<AllocationRow[]> {
  return db.query<AllocationRow>(
    `SELECT workload_id, resource_id, facility_id, allocated_at, released_at FROM allocations WHERE workload_id = $1 ORDER BY allocated_at, resource_id`,
    [workloadId],
  );
}

export async function historyOf(db: Db, workloadId: string): Promise<HistoryRow[]> {
  return db.query<HistoryRow>(
    `SELECT time, facility_id, resource_ids, from_state, to_state, reason FROM allocation_history WHERE workload_id = $1 ORDER BY time, to_state`,
    [workloadId],
  );
}

/** GPU ids in a live allocation, among the given ones (all when ids is null) */
export async function busyGpus(db: Db, ids: string[] | null): Promise<Map<string, string>> {
  const rows = await db.query<{ resource_id: string; workload_id: string }>(
    `SELECT resource_id, workload_id FROM allocations WHERE released_at IS NULL AND ($1::text[] IS NULL OR resource_id = ANY($1::text[]))`,
    [ids],
  );
  return new Map(rows.map((r) => [r.resource_id, r.workload_id]));
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
  return db.query<LiveHolderRow>(
    `SELECT w.id, w.customer_id, w.workload_type, w.priority, w.state, w.started_at, a.facility_id, array_agg(a.resource_id ORDER BY a.resource_id) AS gpu_ids
     FROM allocations a JOIN workloads w ON w.id = a.workload_id
     WHERE a.released_at IS NULL
     GROUP BY w.id, a.facility_id`,
  );
}

/** running workloads whose duration_s has elapsed */
export async function dueCompletions(db: Db, limit = 1000): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM workloads WHERE state = 'running' AND duration_s IS NOT NULL AND started_at + duration_s * interval '1 second' <= now() ORDER BY started_at LIMIT $1`,
    [limit],
  );
  return rows.map((r) => r.id);
}

export async function liveAtSite(db: Db, siteId: string): Promise<Array<{ id: string; state: string }>> {
  return db.query(`SELECT id, state FROM workloads WHERE facility_id = $1 AND state IN ('scheduled', 'running')`, [siteId]);
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
  const [r] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM workloads WHERE state = 'running'`);
  return r?.n ?? 0;
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
