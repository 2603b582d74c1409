// What the REST routes are given, apart from the app that wires them (app.ts), so a route
// file never imports the app.
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
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
  /** caps on what one request may cost */
  limits: { telemetryMaxScanRows: number };
  /** what /ready checks */
  readiness: () => Promise<Record<string, boolean>>;
}

export type Api = OpenAPIHono;

/** who is asking: the x-hcp-actor header when it is a plain name (audit), else operator:api */
export function actorOf(c: Context): string {
  const a = c.req.header('x-hcp-actor');
  return a && /^[\w.:@-]{1,64}$/.test(a) ? `operator:${a}` : 'operator:api';
}
