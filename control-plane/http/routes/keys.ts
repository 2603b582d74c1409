// Keys and the sites they are bound to (admin only, http/policy.ts), and whoami (any key):
//   POST   /api/v1/keys        { name?, role, customer_id?, site? } → 201 with the secret, shown this once
//   GET    /api/v1/keys        the keys, never their secrets (?include_revoked=true for all)
//   DELETE /api/v1/keys/:id    revokes one: it stops working within a second, with no restart
//   POST   /api/v1/sites       { id, name?, region, power_capacity_kw?, timezone? }
//   GET    /api/v1/whoami      the caller's key, name and role
import { createRoute, z } from '@hono/zod-openapi';
import { ROLES } from '../../auth/roles.js';
import type { KeyRow } from '../../db/key-store.js';
import type { Api, HttpDeps } from '../deps.js';
import { actorOf, principalOf } from '../deps.js';

const Json = z.record(z.string(), z.unknown());
const ok = (status: 200 | 201, description: string) => ({ [status]: { description, content: { 'application/json': { schema: Json } } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { content: { 'application/json': { schema } }, required: true } });
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const keyView = (k: KeyRow) => ({
  id: k.id, name: k.name, role: k.role, customer_id: k.customerId, site: k.siteId,
  created_at: iso(k.createdAtMs), created_by: k.createdBy, revoked_at: iso(k.revokedAtMs), revoked_by: k.revokedBy, revoke_reason: k.revokeReason,
});

export function registerKeyRoutes(app: Api, deps: HttpDeps): void {
  const keys = () => deps.security.keys;

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/keys',
      summary: 'Make an API key or a site credential; the secret is in this answer only',
      request: {
        ...body(z.object({
          name: z.string().min(1).max(63).optional(),
          role: z.enum(ROLES),
          customer_id: z.string().min(1).max(64).optional(),
          site: z.string().min(1).max(63).optional(),
        }).strict()),
      },
      responses: ok(201, 'the key, with its secret'),
    }),
    async (c) => {
      const b = c.req.valid('json');
      const { key, secret } = await keys().create({ name: b.name, role: b.role, customerId: b.customer_id, siteId: b.site }, actorOf(c));
      return c.json({ ...keyView(key), secret }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/keys',
      summary: 'The keys, without their secrets',
      request: { query: z.object({ include_revoked: z.enum(['true', 'false']).optional() }) },
      responses: ok(200, 'keys'),
    }),
    async (c) => {
      const q = c.req.valid('query');
      return c.json({ keys: (await keys().list({ includeRevoked: q.include_revoked === 'true' })).map(keyView) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/api/v1/keys/{id}',
      summary: 'Revoke a key (?reason=…)',
      request: { params: z.object({ id: z.string().min(1).max(64) }), query: z.object({ reason: z.string().min(1).max(500).optional() }) },
      responses: ok(200, 'the revoked key'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const k = await keys().revoke(id, actorOf(c), c.req.valid('query').reason ?? null);
      return c.json(keyView(k), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/api/v1/sites',
      summary: 'Create a site (an agent credential for a new site creates it too)',
      request: {
        ...body(z.object({
          id: z.string().min(1).max(63),
          name: z.string().min(1).max(200).optional(),
          region: z.string().min(1).max(63),
          power_capacity_kw: z.number().min(0).max(10_000_000).optional(),
          timezone: z.string().min(1).max(64).optional(),
        }).strict()),
      },
      responses: ok(201, 'the site'),
    }),
    async (c) => {
      const b = c.req.valid('json');
      const s = await keys().createSite({ id: b.id, name: b.name, region: b.region, powerCapacityKw: b.power_capacity_kw, timezone: b.timezone }, actorOf(c));
      return c.json({ id: s.id, name: s.name, region: s.region, power_capacity_kw: s.powerCapacityKw }, 201);
    },
  );

  app.openapi(
    createRoute({ method: 'get', path: '/api/v1/whoami', summary: "The caller's key", responses: ok(200, 'the principal') }),
    (c) => {
      const p = principalOf(c);
      return c.json({ key_id: p.keyId, name: p.name, role: p.role, customer_id: p.customerId, site: p.siteId }, 200);
    },
  );
}
