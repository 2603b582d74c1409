// The REST API (hono). Routes are declared with zod schemas, so requests are validated where
// they enter and the OpenAPI document at /openapi.json is generated from the same schemas.
// In front of every route, in this order: a request id (the client's x-request-id, or a new
// one) held for the request's logs and audit entries; CORS, only for listed origins; the body
// limit, answered 413 from the Content-Length header before a byte of the body is read; and on
// /api/v1, the caller's key, its rate and its role (auth.ts), then no NUL in the URL or in a JSON
// body (nul-guard.ts). /health, /ready, /metrics and /openapi.json stay open; every other GET
// outside /api is the web console (static.ts).
import { randomUUID } from 'node:crypto';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { acceptRequestId, runInRequest } from '../request-context.js';
import { requireKey } from './auth.js';
import type { Api, HttpDeps } from './deps.js';
import { errorBody, onError, validationHook } from './errors.js';
import { refuseNul } from './nul-guard.js';
import { registerClaimRoutes } from './routes/claims.js';
import { registerCommandRoutes } from './routes/commands.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerMarketRoutes } from './routes/market.js';
import { registerEconomicsRoutes } from './routes/economics.js';
import { registerBacktestRoutes } from './routes/backtest.js';
import { registerTelemetryRoutes } from './routes/telemetry.js';
import { registerWorkloadRoutes } from './routes/workloads.js';
import { registerEventRoutes } from './routes/events.js';
import { registerAuditRoutes } from './routes/audit.js';
import { consoleHandler } from './static.js';

export function createHttpApp(deps: HttpDeps): Api {
  const app = new OpenAPIHono({ defaultHook: validationHook as never });
  app.onError(onError(deps.log));
  // the web console at / (web/dist, when built): what no route of the API answers (static.ts)
  const webConsole = deps.webDir ? consoleHandler(deps.webDir) : null;
  app.notFound(async (c) => (await webConsole?.(c)) ?? c.json(errorBody('not_found', 'no_route', `no route ${c.req.method} ${c.req.path}`), 404));
  app.use('*', async (c, next) => {
    const requestId = acceptRequestId(c.req.header('x-request-id')) ?? randomUUID();
    c.header('x-request-id', requestId);
    const t0 = performance.now();
    await runInRequest({ requestId }, () => next());
    // one line per request, with its id, at debug: at hundreds of requests a second an info line
    // each costs the event loop more than the request (bench:schedule); the audit log has every
    // change with its request id, and refusals and errors are logged with it at warn and error
    if (deps.log.isLevelEnabled('debug')) {
      const key = (c.get('principal' as never) as { name?: string } | undefined)?.name;
      deps.log.debug({ rid: requestId, method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - t0), key }, 'request');
    }
  });
  if (deps.security.corsOrigins.length) {
    app.use('*', cors({ origin: deps.security.corsOrigins, allowHeaders: ['authorization', 'content-type', 'x-request-id'], exposeHeaders: ['x-request-id', 'retry-after'], maxAge: 600 }));
  }
  const max = deps.limits.bodyLimitBytes;
  const tooLarge = (c: Context) => c.json(errorBody('payload_too_large', 'body_too_large', `the request body is larger than ${max} bytes (HCP_HTTP_BODY_LIMIT_BYTES)`, { limit_bytes: max }), 413);
  const streamedLimit = bodyLimit({ maxSize: max, onError: tooLarge });
  app.use('*', async (c, next) => {
    // Decided from the headers where they tell: hono's bodyLimit reads c.req.raw.body, which makes
    // the node adaptor build a full fetch Request for every request, GETs included. A body sent
    // without a Content-Length (chunked) is counted as it streams in, by bodyLimit.
    const length = c.req.header('content-length');
    if (!c.req.header('transfer-encoding')) {
      if (length === undefined) return next();
      return Number(length) > max ? tooLarge(c) : next();
    }
    return streamedLimit(c, next);
  });
  app.use('/api/v1/*', requireKey({ ring: deps.security.ring, limiter: deps.security.limiter, log: deps.log }));
  app.use('/api/v1/*', refuseNul);
  registerHealthRoutes(app, deps);
  registerKeyRoutes(app, deps);
  registerFleetRoutes(app, deps);
  registerTelemetryRoutes(app, deps);
  registerCommandRoutes(app, deps);
  registerClaimRoutes(app, deps);
  registerWorkloadRoutes(app, deps);
  registerMarketRoutes(app, deps);
  registerEconomicsRoutes(app, deps);
  registerBacktestRoutes(app, deps);
  registerEventRoutes(app, deps);
  registerAuditRoutes(app, deps);
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', description: 'an HCP API key (hcp_…)' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'HCP control plane', version: '1' },
    security: [{ bearer: [] }],
  });
  return app;
}
