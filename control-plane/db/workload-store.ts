// Workloads and their allocations. The partial unique index allocations_live_resource_idx makes
// "a GPU is never in two live allocations" a database guarantee, not just a check.
import { randomUUID } from 'node:crypto';
import type { Db } from './client.js';

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
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface AllocationRow {
  workload_id: string;
  resource_id: string;
  facility_id: string;
  allocated_at: string;
  released_at: string | null;
}

export async function customerExists(db: Db, id: string): Promise<boolean> {
  return (await db.query('SELECT 1 FROM customers WHERE id = $1', [id])).length > 0;
}

export async function insertWorkload(
  db: Db,
  w: { customerId: string; workloadType: string; priority: number; gpuType: string; gpuCount: number; requirements: Record<string, unknown> },
): Promise<WorkloadRow> {
  const [row] = await db.query<WorkloadRow>(
    `INSERT INTO workloads (id, customer_id, workload_type, priority, gpu_type, gpu_count, requirements)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING *`,
    [`wl-${randomUUID()}`, w.customerId, w.workloadType, w.priority, w.gpuType, w.gpuCount, JSON.stringify(w.requirements)],
  );
  return row!;
}

export async function getWorkload(db: Db, id: string): Promise<WorkloadRow | null> {
  const [row] = await db.query<WorkloadRow>('SELECT * FROM workloads WHERE id = $1', [id]);
  return row ?? null;
}

export async function listWorkloads(db: Db, f: { state?: string; customerId?: string; limit: number }): Promise<WorkloadRow[]> {
  return db.query<WorkloadRow>(
    `SELECT * FROM workloads WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR customer_id = $2)
     ORDER BY created_at DESC, id DESC LIMIT $3`,
    [f.state ?? null, f.customerId ?? null, f.limit],
  );
}

export async function allocationsOf(db: Db, workloadId: string): Promise<AllocationRow[]> {
  return db.query<AllocationRow>(
    `SELECT workload_id, resource_id, facility_id, allocated_at, released_at FROM allocations WHERE workload_id = $1 ORDER BY allocated_at, resource_id`,
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

export class AllocationConflict extends Error {
  constructor(readonly reason: 'device_busy' | 'workload_state', message: string) {
    super(message);
  }
}

/**
 * Reserves the GPUs and moves the workload pending → scheduled in one transaction. Throws
 * AllocationConflict when a GPU was taken meanwhile or the workload is no longer pending.
 */
export async function reserveAllocation(db: Db, workloadId: string, siteId: string, deviceIds: string[]): Promise<void> {
  await db.transaction(async (tx) => {
    const moved = await tx.query(
      `UPDATE workloads SET state = 'scheduled', facility_id = $2, updated_at = now() WHERE id = $1 AND state IN ('pending', 'preempted') RETURNING id`,
      [workloadId, siteId],
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
      `INSERT INTO allocation_history (workload_id, facility_id, resource_ids, from_state, to_state, reason) VALUES ($1, $2, $3::text[], 'pending', 'scheduled', 'allocate')`,
      [workloadId, siteId, deviceIds],
    );
  });
}

/** moves a workload between states and records it; false when it was not in `from` */
export async function transitionWorkload(db: Db, id: string, from: string[], to: string, reason: string, opts: { releaseAllocations?: boolean } = {}): Promise<boolean> {
  return db.transaction(async (tx) => {
    const rows = await tx.query<{ state: string; facility_id: string | null }>(
      `UPDATE workloads w SET state = $3, updated_at = now(),
         started_at = CASE WHEN $3 = 'running' THEN now() ELSE w.started_at END,
         finished_at = CASE WHEN $3 IN ('completed', 'failed', 'cancelled') THEN now() ELSE w.finished_at END
       FROM (SELECT state AS old_state FROM workloads WHERE id = $1 FOR UPDATE) o
       WHERE w.id = $1 AND o.old_state = ANY($2::text[])
       RETURNING o.old_state AS state, w.facility_id`,
      [id, from, to],
    );
    if (rows.length === 0) return false;
    let released: string[] = [];
    if (opts.releaseAllocations) {
      released = (await tx.query<{ resource_id: string }>(
        `UPDATE allocations SET released_at = now() WHERE workload_id = $1 AND released_at IS NULL RETURNING resource_id`,
        [id],
      )).map((r) => r.resource_id);
    }
    await tx.query(
      `INSERT INTO allocation_history (workload_id, facility_id, resource_ids, from_state, to_state, reason) VALUES ($1, $2, $3::text[], $4, $5, $6)`,
      [id, rows[0]!.facility_id, released, rows[0]!.state, to, reason],
    );
    return true;
  });
}

export async function countRunning(db: Db): Promise<number> {
  const [r] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM workloads WHERE state = 'running'`);
  return r?.n ?? 0;
}
