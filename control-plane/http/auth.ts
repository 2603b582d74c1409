// Authentication and authorization of /api/v1 (Kubernetes' order: authn → authz → the handler,
// which audits the authenticated principal). `Authorization: Bearer <key>`; no key or a bad key
// is 401, a key whose role lacks the route's permission is 403, a key over its rate is 429 with
// Retry-After. The route's permission comes from policy.ts; a route not listed there is refused.
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from 'pino';
import type { KeyRing } from '../auth/key-ring.js';
import type { RateLimiter } from '../auth/rate-limit.js';
import { can, type Principal } from '../auth/roles.js';
import { bearerOf } from '../auth/secrets.js';
import { HcpError } from '../errors.js';
import { currentRequest, runInRequest } from '../request-context.js';
import { errorBody } from './errors.js';
import { policyFor } from './policy.js';

const PRINCIPAL = 'principal';

/** the caller of a route behind `requireKey` */
export function principalOf(c: Context): Principal {
  const p = c.get(PRINCIPAL as never) as Principal | undefined;
  if (!p) throw new HcpError('unauthenticated', 'no API key', 'missing_key');
  return p;
}

export function requireKey(o: { ring: KeyRing; limiter: RateLimiter; log: Logger }): MiddlewareHandler {
  const lastLogged = new Map<string, number>();
  /** one line per reason per 10 s: a flood of bad keys must not flood the log */
  const note = (reason: string, fields: Record<string, unknown>) => {
    const now = Date.now();
    if ((lastLogged.get(reason) ?? 0) + 10_000 > now) return;
    lastLogged.set(reason, now);
    o.log.warn({ reason, ...fields }, 'request refused');
  };
  return async (c, next) => {
    const rid = currentRequest()?.requestId;
    const token = bearerOf(c.req.header('authorization'));
    const p = o.ring.authenticate(token);
    if (!p) {
      const reason = token ? 'bad_key' : 'missing_key';
      note(reason, { rid, method: c.req.method, path: c.req.path });
      c.header('WWW-Authenticate', 'Bearer realm="hcp"');
      const msg = token ? 'the API key is not valid (unknown or revoked)' : 'an API key is required: Authorization: Bearer <key>';
      return c.json(errorBody('unauthenticated', reason, msg), 401);
    }
    // No handler matched: let notFound answer, now that the caller is known.
    const route = routePath(c, -1);
    if (route === '/api/v1/*') return runInRequest({ requestId: rid ?? '', principal: p }, () => next());
    const wait = o.limiter.take(p.keyId);
    if (wait !== null) {
      note('rate_limited', { rid, key: p.name });
      c.header('Retry-After', String(wait));
      return c.json(errorBody('rate_limited', 'rate_limited', `key ${p.name} is over its request rate; retry in ${wait} s`, { retry_after_s: wait }), 429);
    }
    // HEAD is GET without the body (hono routes it to the GET handler): it needs what GET needs
    const method = c.req.method === 'HEAD' ? 'GET' : c.req.method;
    const needed = policyFor(method, route);
    if (!needed) {
      o.log.error({ rid, method: c.req.method, route }, 'route has no policy in http/policy.ts: refused');
      return c.json(errorBody('permission_denied', 'no_policy', `${c.req.method} ${route} has no access policy`), 403);
    }
    if (needed !== 'authenticated' && !can(p, needed)) {
      note('forbidden', { rid, key: p.name, role: p.role, needed });
      return c.json(errorBody('permission_denied', 'forbidden', `role ${p.role} may not ${needed} (key ${p.name})`, { required: needed, role: p.role }), 403);
    }
    c.set(PRINCIPAL as never, p as never);
    return runInRequest({ requestId: rid ?? '', principal: p }, () => next());
  };
}
