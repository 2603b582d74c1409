// The REST app for route tests, in process (app.request()): the real routes on a real registry
// and database; the parts a test does not reach (command bus, operations, scheduler, audit)
// throw if a route touches them, so a test cannot pass by accident through them.
import { pino } from 'pino';
import type { Db } from '../../control-plane/db/client.js';
import { createHttpApp } from '../../control-plane/http/app.js';
import type { Api, HttpDeps } from '../../control-plane/http/deps.js';
import { createMetrics } from '../../control-plane/metrics.js';
import type { Registry } from '../../control-plane/registry/registry.js';

const unwired = <T extends object>(name: string): T =>
  new Proxy({} as T, {
    get: (_t, prop) => {
      throw new Error(`${name}.${String(prop)}: not wired in this test`);
    },
  });

export function testHttpApp(o: { registry: Registry; db: Db; limits?: Partial<HttpDeps['limits']> }): Api {
  return createHttpApp({
    registry: o.registry,
    db: o.db,
    metrics: createMetrics(),
    log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    audit: unwired('audit'),
    bus: () => unwired('bus'),
    ops: () => unwired('ops'),
    scheduler: () => unwired('scheduler'),
    limits: { telemetryMaxScanRows: 2_000_000, ...o.limits },
    readiness: async () => ({ database: await o.db.ping() }),
  });
}
