// The REST API (hono). Routes are declared with zod schemas, so requests are validated where
// they enter and the OpenAPI document at /openapi.json is generated from the same schemas.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Api, HttpDeps } from './deps.js';
import { errorBody, onError, validationHook } from './errors.js';
import { registerCommandRoutes } from './routes/commands.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMarketRoutes } from './routes/market.js';
import { registerEconomicsRoutes } from './routes/economics.js';
import { registerTelemetryRoutes } from './routes/telemetry.js';
import { registerWorkloadRoutes } from './routes/workloads.js';

export function createHttpApp(deps: HttpDeps): Api {
  const app = new OpenAPIHono({ defaultHook: validationHook as never });
  app.onError(onError(deps.log));
  app.notFound((c) => c.json(errorBody('not_found', 'no_route', `no route ${c.req.method} ${c.req.path}`), 404));
  registerHealthRoutes(app, deps);
  registerFleetRoutes(app, deps);
  registerTelemetryRoutes(app, deps);
  registerCommandRoutes(app, deps);
  registerWorkloadRoutes(app, deps);
  registerMarketRoutes(app, deps);
  registerEconomicsRoutes(app, deps);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'HCP control plane', version: '1' },
  });
  return app;
}
