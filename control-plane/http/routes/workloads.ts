// Workloads in the seed's simple form (the scheduler issue turns this into a real queue), and
// explicit allocate/release.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { listCommands } from '../../db/command-store.js';
import { allocationsOf, customerExists, getWorkload, insertWorkload, listWorkloads, type WorkloadRow } from '../../db/workload-store.js';
import { commandView } from '../../commands/views.js';
import type { Api, HttpDeps } from '../app.js';
import { actorOf, commandsReply, WaitQuery } from './commands.js';

const Json = z.record(z.string(), z.unknown());
const res = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });

export const WORKLOAD_TYPES = ['ai_inference_realtime', 'ai_inference_batch', 'ai_training'] as const;
export const GPU_TYPES = ['h100'] as const;

const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).toISOString());

function workloadView(w: WorkloadRow) {
  return {
    id: w.id, customer_id: w.customer_id, workload_type: w.workload_type, priority: w.priority, state: w.state,
    requirements: { gpu_type: w.gpu_type, gpu_count: w.gpu_count, ...w.requirements },
    site: w.facility_id, created_at: iso(w.created_at), updated_at: iso(w.updated_at), started_at: iso(w.started_at), finished_at: iso(w.finished_at),
  };
}

export function registerWorkloadRoutes(app: Api, deps: HttpDeps): void {
  const { db, ops } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/workloads',
      request: {
        ...body(z.object({
          customer_id: z.string().min(1).max(64),
          workload_type: z.enum(WORKLOAD_TYPES),
          priority: z.number().int().min(1).max(10),
          requirements: z.object({
            gpu_type: z.string().min(1).max(32),
            gpu_count: z.number().int().min(1).max(1024),
          }),
        })),
      },
      responses: { 201: { description: 'the workload, pending', content: { 'application/json': { schema: Json } } } },
    }),
    async (c) => {
      const b = c.req.valid('json');
      const gpuType = b.requirements.gpu_type.toLowerCase();
      if (!(GPU_TYPES as readonly string[]).includes(gpuType)) {
        throw new HcpError('invalid_argument', `requirements.gpu_type: unknown GPU type ${b.requirements.gpu_type}; known: ${GPU_TYPES.join(', ')}`, 'unknown_gpu_type', {
          fields: [{ field: 'requirements.gpu_type', message: `unknown GPU type; known: ${GPU_TYPES.join(', ')}` }],
        });
      }
      if (!(await customerExists(db, b.customer_id))) throw notFound('customer', b.customer_id);
      const w = await insertWorkload(db, { customerId: b.customer_id, workloadType: b.workload_type, priority: b.priority, gpuType, gpuCount: b.requirements.gpu_count, requirements: {} });
      deps.audit.write({ actor: `customer:${b.customer_id}`, action: 'workload.submitted', subject: w.id, details: { type: b.workload_type, gpus: b.requirements.gpu_count } });
      return c.json(workloadView(w), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/workloads/{id}',
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: res('the workload with its allocations'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const w = await getWorkload(db, id);
      if (!w) throw notFound('workload', id);
      const allocations = (await allocationsOf(db, id)).map((a) => ({
        device_id: a.resource_id, site: a.facility_id, allocated_at: iso(a.allocated_at), released_at: iso(a.released_at), live: a.released_at === null,
      }));
      await deps.bus().flush();
      const commands = (await listCommands(db, { workloadId: id, limit: 50 })).map((r) => commandView(deps.bus().get(r.id) ?? r));
      return c.json({ ...workloadView(w), allocations, commands }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/workloads',
      request: {
        query: z.object({
          state: z.enum(['pending', 'scheduled', 'running', 'preempted', 'completed', 'failed', 'cancelled']).optional(),
          customer_id: z.string().min(1).max(64).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
      },
      responses: res('workloads, newest first'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      const rows = await listWorkloads(db, { state: q.state, customerId: q.customer_id, limit: q.limit });
      return c.json({ workloads: rows.map(workloadView) }, 200);
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
      const recs = await ops().allocate({ workloadId: b.workload_id, deviceIds: b.device_ids, actor: actorOf(c), deadlineS: b.deadline_s });
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
      const recs = await ops().release({ workloadId: b.workload_id, actor: actorOf(c), deadlineS: b.deadline_s });
      return commandsReply(c, deps, recs, c.req.valid('query'), { workload_id: b.workload_id }) as never;
    },
  );
}
