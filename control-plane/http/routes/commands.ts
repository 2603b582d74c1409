// Mining, curtailment and the command log. Mining and curtail state operator claims
// (control-plane/claims/operator.ts): the answer carries the claim and the commands the site's
// reconciler sent for it, 202 (200 when nothing needed sending); with ?wait=true it answers when
// every command is final (or at timeout_s, with what stands). An expiry (expires_at or
// duration_s) hands control back when it passes; DELETE /api/v1/claims/:id releases it sooner.
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { notFound } from '../../errors.js';
import { getCommand, listCommands } from '../../db/command-store.js';
import { COMMAND_STATES, COMMAND_TYPES, isFinal, type CommandRecord } from '../../commands/model.js';
import { commandView } from '../../commands/views.js';
import { actorOf, type Api, type HttpDeps } from '../deps.js';
import { claimView } from '../../claims/views.js';
import { expiryOf } from '../../claims/operator.js';
import { isoTime } from '../time.js';

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
  return c.json({ ...extra, commands: out.map(commandView) }, (release && done) || out.length === 0 ? 200 : 202);
}

/** how long an operator claim lasts: until released, to an ISO time, or for a number of seconds */
const ClaimExpiry = {
  reason: z.string().min(1).max(500).optional(),
  expires_at: isoTime.optional(),
  duration_s: z.number().positive().max(366 * 86_400).optional(),
};

export function registerCommandRoutes(app: Api, deps: HttpDeps): void {
  const operator = () => deps.claims.operator;

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
          /** accepted for older clients; the reconciler sets its commands' deadlines */
          deadline_s: z.number().int().min(1).max(86_400).optional(),
          ...ClaimExpiry,
        }).strict()),
      },
      responses: res('the operator claim and the commands it caused'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const b = c.req.valid('json');
      if (!deps.registry.site(id)) throw notFound('site', id);
      const { claim, commands } = await operator().setMining({
        site: id, enabled: b.enabled, powerTargetW: b.power_target_w ?? null, deviceIds: b.device_ids, actor: actorOf(c), reason: b.reason, expiresAtMs: expiryOf(b),
      });
      return commandsReply(c, deps, commands, c.req.valid('query'), { claim: claimView(claim) }) as never;
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
          expires_at: isoTime.optional(),
          duration_s: z.number().positive().max(366 * 86_400).optional(),
        }).strict()),
      },
      responses: res('one operator claim per site, and the commands they caused'),
    }),
    async (c) => {
      const b = c.req.valid('json');
      const { claims, commands } = await operator().curtail({ sites: b.sites, all: b.all, reason: b.reason, actor: actorOf(c), expiresAtMs: expiryOf(b) });
      return commandsReply(c, deps, commands, c.req.valid('query'), { claims: claims.map(claimView) }) as never;
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
      const r = deps.bus.get(id) ?? (await getCommand<CommandRecord>(deps.db, id));
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
          type: z.enum(COMMAND_TYPES).optional(),
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
      const rows = await listCommands<CommandRecord>(deps.readDb, { site: q.site, state: q.state, type: q.type, workloadId: q.workload_id, limit: q.limit });
      return c.json({ commands: rows.map((r) => commandView(deps.bus.get(r.id) ?? r)) }, 200);
    },
  );
}
