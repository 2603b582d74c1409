// The REST API (hono). Routes are declared with zod schemas, so requests are validated where
// they enter and the OpenAPI document at /openapi.json is generated from the same schemas.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import type { Metrics } from '../metrics.js';
import type { CommandBus } from '../commands/bus.js';
import type { Operations } from '../commands/operations.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { GridResponse } from '../grid/grid-response.js';
import type { PriceBook } from '../market/price-book.js';
import type { EconomicDispatch } from '../dispatch/economic-dispatch.js';
import type { SiteControls } from '../dispatch/site-controls.js';
import type { Registry } from '../registry/registry.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { errorBody, onError, validationHook } from './errors.js';
import { registerCommandRoutes } from './routes/commands.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMarketRoutes } from './routes/market.js';
import { registerEconomicsRoutes } from './routes/economics.js';
import { registerTelemetryRoutes } from './routes/telemetry.js';
import { registerWorkloadRoutes } from './routes/workloads.js';

export interface HttpDeps {
  registry: Registry;
  db: Db;
  metrics: Metrics;
  log: Logger;
  audit: AuditWriter;
  bus: () => CommandBus;
  ops: () => Operations;
  scheduler: () => Scheduler;
  market?: { book: PriceBook };
  grid?: GridResponse;
  economics?: { dispatch: EconomicDispatch; controls: SiteControls };
  /** what /ready checks */
  readiness: () => Promise<Record<string, boolean>>;
}

export type Api = OpenAPIHono;

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
