// Mining, curtailment and the command log. A mutating call answers 202 with its command ids;
// with ?wait=true it answers when every command is final (or at timeout_s, with what stands).
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { notFound } from '../../errors.js';
import { getCommand, listCommands } from '../../db/command-store.js';
import { COMMAND_STATES, isFinal, type CommandRecord } from '../../commands/model.js';
import { commandView } from '../../commands/views.js';
import { actorOf, type Api, type HttpDeps } from '../deps.js';

const Json = z.record(z.string(), z.unknown());
const res = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });

export const WaitQuery = z.object({
  wait: z.enum(['true', 'false']).optional(),
  timeout_s: z.coerce.number().int().min(1).max(600).optional(),
});

/** answers with the commands, after waiting for them when asked */
export async function commandsReply(c: Context, deps: HttpDeps, recs: CommandRecord[], q: z.infer<typeof WaitQuery>, extra: Record<string, unknown> = {}) {
  let out = recs;
  // Over the waiters' cap (HCP_MAX_WAITERS) the commands stand as submitted: answered 202 now,
  // as a wait that timed out at once would be, rather than refused after they were made.
  const release = q.wait === 'true' ? deps.waiters.enter() : null;
  if (q.wait === 'true' && !release) c.header('x-hcp-wait', 'refused: too many waiters');
  try {
    if (release) {
      const until = Math.min(Math.max(...recs.map((r) => r.deadlineMs)) - Date.now(), (q.timeout_s ?? 30) * 1000);
      out = await deps.bus.waitFinal(recs.map((r) => r.id), Math.max(0, until));
    }
  } finally {
    release?.();
  }
  const done = out.every((r) => isFinal(r.state));
  return c.json({ ...extra, commands: out.map(commandView) }, release && done ? 200 : 202);
}

export function registerCommandRoutes(app: Api, deps: HttpDeps): void {
  const { ops } = deps;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/sites/{id}/mining',
      summary: 'Switch a site’s ASICs (or listed ones) on or off, optionally at a power target',
      request: {
        params: z.object({ id: z.string().min(1).max(63) }),
        query: WaitQuery,
        ...body(z.object({
          enabled: z.boolean(),
          power_target_w: z.number().positive().max(10_000).nullable().optional(),
          device_ids: z.array(z.string().min(1).max(128)).max(20_000).optional(),
          deadline_s: z.number().int().min(1).max(86_400).optional(),
        }).strict()),
      },
      responses: res('the command'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      const recs = await ops.setMining({ site: id, enabled: b.enabled, powerTargetW: b.power_target_w ?? null, deviceIds: b.device_ids, actor: actorOf(c), deadlineS: b.deadline_s });
      return commandsReply(c, deps, recs, c.req.valid('query')) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/curtail',
      summary: 'Curtail every ASIC of the listed sites, or of the whole fleet',
      request: {
        query: WaitQuery,
        ...body(z.object({
          sites: z.array(z.string().min(1).max(63)).max(10_000).optional(),
          all: z.boolean().optional(),
          reason: z.string().min(1).max(500),
          deadline_s: z.number().int().min(1).max(86_400).optional(),
        }).strict()),
      },
      responses: res('one command per site'),
    }),
    async (c) => {
      const b = c.req.valid('json');
      const recs = await ops.curtail({ sites: b.sites, all: b.all, reason: b.reason, actor: actorOf(c), deadlineS: b.deadline_s });
      return commandsReply(c, deps, recs, c.req.valid('query')) as never;
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/commands/{id}',
      request: { params: z.object({ id: z.string().min(1).max(100) }) },
      responses: res('one command'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const r = deps.bus.get(id) ?? (await getCommand(deps.db, id));
      if (!r) throw notFound('command', id);
      return c.json(commandView(r), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/commands',
      request: {
        query: z.object({
          site: z.string().min(1).max(63).optional(),
          state: z.enum(COMMAND_STATES).optional(),
          workload_id: z.string().min(1).max(100).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
      },
      responses: res('commands, newest first'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (q.site && !deps.registry.site(q.site)) throw notFound('site', q.site);
      await deps.bus.flush();
      const rows = await listCommands(deps.readDb, { site: q.site, state: q.state, workloadId: q.workload_id, limit: q.limit });
      return c.json({ commands: rows.map((r) => commandView(deps.bus.get(r.id) ?? r)) }, 200);
    },
  );
}
