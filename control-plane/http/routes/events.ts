// GET /api/v1/events: the console's live stream (http/live.ts). Any valid key may open one
// (http/policy.ts: authenticated); what it hears is filtered by the key's role, event by event.
import { createRoute, z } from '@hono/zod-openapi';
import { notFound } from '../../errors.js';
import type { Api, HttpDeps } from '../deps.js';
import { errorBody } from '../errors.js';
import { principalOf } from '../auth.js';

export function registerEventRoutes(app: Api, deps: HttpDeps): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/events',
      summary: 'Live events (Server-Sent Events), filtered by the key’s role',
      description:
        'text/event-stream. Events: `hello` (the caller), `fleet` (the fleet summary, at most once a second; fleet.read), ' +
        '`site`, `command`, `claim`, `grid.frequency`, `grid.trip` (fleet.read), `workload` (workloads.read; a customer: only its own), ' +
        '`devices` (the devices of `site`, when asked for, at most once a second; fleet.read), `bye` (the server ends the stream: ' +
        '`slow_client`, `shutdown`). A comment line is sent as a heartbeat. Send the key in the Authorization header (read the stream with fetch), never in the URL.',
      request: { query: z.object({ site: z.string().min(1).max(63).optional() }) },
      responses: {
        200: { description: 'the stream', content: { 'text/event-stream': { schema: z.string() } } },
        503: { description: 'too many open streams (HCP_EVENTS_MAX_STREAMS)', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } },
      },
    }),
    (c) => {
      const { site } = c.req.valid('query');
      if (site && !deps.registry.site(site)) throw notFound('site', site);
      if (!deps.live) return c.json(errorBody('unavailable', 'no_live_stream', 'this control plane has no live stream'), 503) as never;
      // HEAD: what a GET would answer, without opening a stream that would never end
      if (c.req.method === 'HEAD') return c.body(null, 200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }) as never;
      const res = deps.live.open(principalOf(c), { site: site ?? null, signal: c.req.raw.signal });
      if (!res) {
        c.header('Retry-After', '5');
        return c.json(errorBody('unavailable', 'too_many_streams', 'too many live streams are open (HCP_EVENTS_MAX_STREAMS); retry later'), 503) as never;
      }
      return res as never;
    },
  );
}
