// Workloads: submitted to the scheduler's queue, read with their allocations and history,
// cancelled; and explicit allocate/release (an operator's placement, outside the queue). Every
// change is the workload service's (workloads/service.ts); these routes validate and read.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import type { CommandRecord } from '../../commands/model.js';
import { listCommands } from '../../db/command-store.js';
import { allocationsOf, customerQuota, getWorkload, historyOf, listWorkloads, usageByCustomer, type WorkloadRow } from '../../db/workload-store.js';
import { commandView } from '../../commands/views.js';
import { WORKLOAD_STATES, WORKLOAD_TYPES } from '../../scheduler/workload-state.js';
import type { Principal } from '../../auth/roles.js';
import type { Api, HttpDeps } from '../deps.js';
import { isoTime } from '../time.js';
import { actorOf, principalOf } from '../deps.js';
import { commandsReply, WaitQuery } from './commands.js';

const Json = z.record(z.string(), z.unknown());
const res = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });

export { WORKLOAD_TYPES };
export const GPU_TYPES = ['h100'] as const;

const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).toISOString());
const invalid = (field: string, message: string, reason = 'validation_failed') =>
  new HcpError('invalid_argument', `${field}: ${message}`, reason, { fields: [{ field, message }] });

function workloadView(w: WorkloadRow) {
  const req = (typeof w.requirements === 'string' ? JSON.parse(w.requirements) : w.requirements) as Record<string, unknown>;
  return {
    id: w.id, customer_id: w.customer_id, workload_type: w.workload_type, priority: w.priority, state: w.state,
    requirements: { gpu_type: w.gpu_type, gpu_count: w.gpu_count, ...req },
    duration_s: w.duration_s, idempotency_key: w.idempotency_key,
    site: w.facility_id, preempted_count: w.preempted_count, allocate_attempts: w.allocate_attempts,
    created_at: iso(w.created_at), updated_at: iso(w.updated_at), started_at: iso(w.started_at), finished_at: iso(w.finished_at),
  };
}

/**
 * The customer a request acts for. A customer key acts for its own customer only: naming another
 * is refused; reading another's workload is 404 (it does not exist, as far as that key knows).
 */
function customerScope(p: Principal, given: string | undefined, field = 'customer_id'): string | undefined {
  if (p.role !== 'customer') return given;
  if (given !== undefined && given !== p.customerId) {
    throw new HcpError('permission_denied', `${field}: key ${p.name} acts for customer ${p.customerId} only`, 'customer_mismatch', { fields: [{ field, message: `must be ${p.customerId} (or left out)` }] });
  }
  return p.customerId!;
}

/** the workload, unless the caller is a customer key of another customer */
const visibleTo = (p: Principal, w: WorkloadRow | null): WorkloadRow | null => (w && (p.role !== 'customer' || w.customer_id === p.customerId) ? w : null);

export function registerWorkloadRoutes(app: Api, deps: HttpDeps): void {
  const { db, workloads, registry } = deps;

  // largestSite walks every GPU the registry knows; at 200 submits/s that was a sizeable share of
  // the event loop. The registry never forgets a device, so a cached figure only grows stale
  // downwards: a submit it would refuse is checked again against the registry first.
  const LARGEST_TTL_MS = 5_000;
  const largestCache = new Map<string, { at: number; v: { site: string | null; gpus: number } }>();
  function largestSiteFor(gpuType: string, minMemoryMib: number, site: string | null, count: number): { site: string | null; gpus: number } {
    const key = `${gpuType}\u0000${minMemoryMib}\u0000${site ?? ''}`;
    const c = largestCache.get(key);
    if (c && c.v.gpus >= count && performance.now() - c.at < LARGEST_TTL_MS) return c.v;
    const v = largestSite(gpuType, minMemoryMib, site);
    if (largestCache.size > 1000) largestCache.clear();
    largestCache.set(key, { at: performance.now(), v });
    return v;
  }

  /** the most GPUs of this type and memory any one site has (online or not): a gang larger than that can never run */
  function largestSite(gpuType: string, minMemoryMib: number, site: string | null): { site: string | null; gpus: number } {
    const per = new Map<string, number>();
    for (const g of registry.devices({ kind: 'gpu', site: site ?? undefined })) {
      if (!g.model.toLowerCase().includes(gpuType) || (g.memoryTotalMib ?? 0) < minMemoryMib) continue;
      per.set(g.siteId, (per.get(g.siteId) ?? 0) + 1);
    }
    let best = { site: null as string | null, gpus: 0 };
    for (const [s, n] of per) if (n > best.gpus) best = { site: s, gpus: n };
    return best;
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/workloads',
      summary: 'Submit a workload to the scheduler',
      request: {
        ...body(z.object({
          /** a customer key's own customer when left out */
          customer_id: z.string().min(1).max(64).optional(),
          workload_type: z.enum(WORKLOAD_TYPES),
          priority: z.number().int().min(1).max(10),
          requirements: z.object({
            gpu_type: z.string().min(1).max(32),
            gpu_count: z.number().int().min(1).max(1024),
          }),
          min_gpu_memory_mib: z.number().int().min(0).max(10_000_000).optional(),
          site: z.string().min(1).max(63).optional(),
          duration_s: z.number().int().min(1).max(30 * 86_400).optional(),
          idempotency_key: z.string().min(1).max(128).optional(),
        })),
      },
      responses: {
        201: { description: 'the workload, pending', content: { 'application/json': { schema: Json } } },
        200: { description: 'a repeated submit: the first workload with this idempotency key', content: { 'application/json': { schema: Json } } },
      },
    }),
    async (c) => {
      const b = { ...c.req.valid('json') };
      const customerId = customerScope(principalOf(c), b.customer_id);
      if (!customerId) throw invalid('customer_id', 'is required');
      b.customer_id = customerId;
      const gpuType = b.requirements.gpu_type.toLowerCase();
      if (!(GPU_TYPES as readonly string[]).includes(gpuType)) {
        throw invalid('requirements.gpu_type', `unknown GPU type ${b.requirements.gpu_type}; known: ${GPU_TYPES.join(', ')}`, 'unknown_gpu_type');
      }
      if (b.site && !registry.site(b.site)) throw notFound('site', b.site);
      const count = b.requirements.gpu_count;
      const minMem = b.min_gpu_memory_mib ?? 0;
      const overQuota = (quota: number) => invalid('requirements.gpu_count', `${count} GPUs exceed customer ${b.customer_id}'s quota of ${quota}`, 'over_quota');
      const largest = largestSiteFor(gpuType, minMem, b.site ?? null, count);
      if (count > largest.gpus) {
        // the customer's refusals come first, as they did when it was read before the check
        const customer = await customerQuota(db, customerId);
        if (!customer) throw notFound('customer', customerId);
        if (customer.quota !== null && count > customer.quota) throw overQuota(customer.quota);
        const where = b.site ? `site ${b.site} has ${largest.gpus}` : largest.site ? `the largest, ${largest.site}, has ${largest.gpus}` : 'no site has any';
        throw invalid('requirements.gpu_count', `${count} ${gpuType} GPUs${minMem ? ` of ${minMem} MiB or more` : ''} can never be placed: a workload's GPUs must all be at one site, and ${where}`, 'exceeds_site_capacity');
      }
      const requirements: Record<string, unknown> = {};
      if (b.min_gpu_memory_mib !== undefined) requirements.min_gpu_memory_mib = b.min_gpu_memory_mib;
      if (b.site) requirements.site = b.site;
      // One round trip: the insert itself checks the customer and its quota.
      const ins = await workloads.submit({
        customerId, workloadType: b.workload_type, priority: b.priority, gpuType, gpuCount: count, requirements,
        durationS: b.duration_s ?? null, idempotencyKey: b.idempotency_key ?? null,
      }, actorOf(c));
      if ('refused' in ins) throw ins.refused === 'unknown_customer' ? notFound('customer', customerId) : overQuota(ins.quota);
      const { row, created } = ins;
      return c.json(workloadView(row), created ? 201 : 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/workloads/{id}',
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: res('the workload with its allocations, history and commands'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const w = visibleTo(principalOf(c), await getWorkload(db, id));
      if (!w) throw notFound('workload', id);
      const [allocs, history] = await Promise.all([allocationsOf(db, id), historyOf(db, id)]);
      const allocations = allocs.map((a) => ({
        device_id: a.resource_id, site: a.facility_id, allocated_at: iso(a.allocated_at), released_at: iso(a.released_at), live: a.released_at === null,
      }));
      await deps.bus.flush();
      const commands = (await listCommands<CommandRecord>(db, { workloadId: id, limit: 50 })).map((r) => commandView(deps.bus.get(r.id) ?? r));
      return c.json({
        ...workloadView(w), allocations,
        history: history.map((h) => ({ time: iso(h.time), from: h.from_state, to: h.to_state, site: h.facility_id, device_ids: h.resource_ids, reason: h.reason })),
        commands,
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/workloads',
      request: {
        query: z.object({
          state: z.enum(WORKLOAD_STATES).optional(),
          customer_id: z.string().min(1).max(64).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          cursor: z.string().regex(/^[0-9]{1,18}$/, 'must be a next_cursor from an earlier page').optional(),
        }),
      },
      responses: res('workloads, newest first, a page at a time'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      const customerId = customerScope(principalOf(c), q.customer_id);
      const rows = await listWorkloads(deps.readDb, { state: q.state, customerId, limit: q.limit, before: q.cursor ? Number(q.cursor) : undefined });
      const last = rows.at(-1);
      return c.json({ workloads: rows.map(workloadView), next_cursor: rows.length === q.limit && last ? String(last.seq) : null }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/workloads/{id}/cancel',
      summary: 'Cancel a workload: dequeued, or its GPUs released',
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: res('the cancelled workload'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const p = principalOf(c);
      if (p.role === 'customer' && !visibleTo(p, await getWorkload(db, id))) throw notFound('workload', id);
      const w = await workloads.cancel(id, actorOf(c));
      return c.json(workloadView(w), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/allocate',
      summary: 'Place a workload on GPUs: the listed ones, or idle GPUs at one site',
      request: {
        query: WaitQuery,
        ...body(z.object({
          workload_id: z.string().min(1).max(100),
          device_ids: z.array(z.string().min(1).max(128)).min(1).max(1024).optional(),
          deadline_s: z.number().int().min(1).max(86_400).optional(),
        }).strict()),
      },
      responses: res('the allocate command'),
    }),
    async (c) => {
      const b = c.req.valid('json');
      const recs = await workloads.allocate({ workloadId: b.workload_id, deviceIds: b.device_ids, actor: actorOf(c), deadlineS: b.deadline_s });
      return commandsReply(c, deps, recs, c.req.valid('query'), { workload_id: b.workload_id }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/release',
      summary: 'Free a workload’s GPUs',
      request: {
        query: WaitQuery,
        ...body(z.object({ workload_id: z.string().min(1).max(100), deadline_s: z.number().int().min(1).max(86_400).optional() }).strict()),
      },
      responses: res('the release command(s)'),
    }),
    async (c) => {
      const b = c.req.valid('json');
      const recs = await workloads.release({ workloadId: b.workload_id, actor: actorOf(c), deadlineS: b.deadline_s });
      return commandsReply(c, deps, recs, c.req.valid('query'), { workload_id: b.workload_id }) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/usage',
      summary: "GPU usage per customer over a window (default the last 24 h); a customer key sees only its own",
      request: {
        query: z.object({
          customer_id: z.string().min(1).max(64).optional(),
          from: isoTime.optional(),
          to: isoTime.optional(),
        }),
      },
      responses: res('GPU-hours per customer'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      const customerId = customerScope(principalOf(c), q.customer_id);
      const toMs = q.to ? Date.parse(q.to) : Date.now();
      const fromMs = q.from ? Date.parse(q.from) : toMs - 24 * 3600_000;
      if (fromMs >= toMs) throw invalid('from', 'must be before to');
      const rows = await usageByCustomer(deps.readDb, { fromMs, toMs, customerId });
      return c.json({
        from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(),
        customers: rows.map((r) => ({ customer_id: r.customerId, gpu_hours: Math.round((r.gpuSeconds / 3600) * 1000) / 1000, gpus_now: r.liveGpus, workloads: r.workloads })),
      }, 200);
    },
  );
}
