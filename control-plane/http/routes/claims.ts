// Claims and the desired state (control-plane/claims/model.ts):
//   GET    /api/v1/sites/:id/desired  the live claims, the resolved desired state with the rule
//                                     that won for each group, the observed state, and the
//                                     devices that do not converge (and why)
//   GET    /api/v1/claims             live claims (?site=, ?source=)
//   DELETE /api/v1/claims/:id         releases an operator's claim (a grid claim: admins only;
//                                     the engine's, a schedule's or a commitment's: change that)
//   PUT    /api/v1/sites/:id/ramp     { kw_per_min: number | null }: the site's ramp limit for
//                                     bringing ASICs back (null: the control plane's default)
import { createRoute, z } from '@hono/zod-openapi';
import { can } from '../../auth/roles.js';
import { CLAIM_SOURCES } from '../../claims/model.js';
import { claimView, desiredView, reconcilerView } from '../../claims/views.js';
import { HcpError, notFound } from '../../errors.js';
import { actorOf, principalOf, type Api, type HttpDeps } from '../deps.js';

const Json = z.record(z.string(), z.unknown());
const ok = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });

export function registerClaimRoutes(app: Api, deps: HttpDeps): void {
  const site = (id: string) => {
    const s = deps.registry.site(id);
    if (!s) throw notFound('site', id);
    return s;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/sites/{id}/desired',
      summary: 'What the site’s ASICs should be doing, who decided it, and what they do',
      request: { params: z.object({ id: z.string().min(1).max(63) }) },
      responses: ok('the desired state'),
    }),
    (c) => {
      const { id } = c.req.valid('param');
      site(id);
      return c.json({
        site: id,
        mode: deps.claims.operator.mode(id),
        ramp_kw_per_min: deps.claims.ramp.of(id),
        claims: deps.claims.service.list(id).map(claimView),
        desired: desiredView(deps.claims.service.desired(id)),
        ...reconcilerView(deps.claims.reconciler.view(id)),
      }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/claims',
      summary: 'Live claims, oldest first',
      request: { query: z.object({ site: z.string().min(1).max(63).optional(), source: z.enum(CLAIM_SOURCES).optional() }) },
      responses: ok('claims'),
    }),
    (c) => {
      const q = c.req.valid('query');
      if (q.site) site(q.site);
      return c.json({ claims: deps.claims.service.list(q.site).filter((x) => !q.source || x.source === q.source).map(claimView) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/claims/{id}',
      summary: 'Release a claim: control passes to the next claim down',
      request: { params: z.object({ id: z.string().min(1).max(100) }), query: z.object({ reason: z.string().min(1).max(500).optional() }) },
      responses: ok('the released claim and the commands it caused'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { service, reconciler } = deps.claims;
      const claim = service.get(id);
      if (!claim) throw notFound('claim', id);
      if (claim.source === 'grid' && !can(principalOf(c), 'grid.admin')) {
        throw new HcpError('permission_denied', 'releasing a grid claim takes grid protection off the site: admins only', 'grid_admin_required');
      }
      if (claim.source !== 'operator' && claim.source !== 'grid') {
        throw new HcpError('conflict', `claim ${id} is held by ${claim.source}; change its program (schedule, demand response) or state an operator claim over it`, 'claim_not_releasable', { source: claim.source });
      }
      const actor = actorOf(c);
      await service.release(id, actor, c.req.valid('query').reason ?? `released by ${actor}`);
      const commands = await reconciler.reconcileNow([claim.siteId]);
      return c.json({ released: claimView(claim), commands: commands.map((r) => r.id) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/api/v1/sites/{id}/ramp',
      summary: 'The site’s ramp limit for starting ASICs, kW per minute (curtailment is never limited)',
      request: { params: z.object({ id: z.string().min(1).max(63) }), ...body(z.object({ kw_per_min: z.number().positive().max(1_000_000).nullable() }).strict()) },
      responses: ok('the ramp limit'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      site(id);
      const b = c.req.valid('json');
      await deps.claims.ramp.set(id, b.kw_per_min, actorOf(c));
      void deps.claims.reconciler.poke(id);
      return c.json({ site: id, ramp_kw_per_min: deps.claims.ramp.of(id), custom: b.kw_per_min !== null }, 200);
    },
  );
}
