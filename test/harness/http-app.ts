// The REST app for route tests, in process (app.request()): the real routes on a real registry
// and database; the parts a test does not reach (command bus, operations, workloads, audit)
// throw if a route touches them, so a test cannot pass by accident through them.
import { pino } from 'pino';
import type { Db } from '../../control-plane/db/client.js';
import { createHttpApp } from '../../control-plane/http/app.js';
import type { Api, HttpDeps } from '../../control-plane/http/deps.js';
import { createMetrics } from '../../control-plane/metrics.js';
import type { Registry } from '../../control-plane/registry/registry.js';
import type { KeyRing } from '../../control-plane/auth/key-ring.js';
import { createRateLimiter } from '../../control-plane/auth/rate-limit.js';
import { createWaitGate } from '../../control-plane/commands/wait-gate.js';
import { TEST_ADMIN_KEY } from './auth.js';

const unwired = <T extends object>(name: string): T =>
  new Proxy({} as T, {
    get: (_t, prop) => {
      throw new Error(`${name}.${String(prop)}: not wired in this test`);
    },
  });

/** the app's key ring: TEST_ADMIN_KEY is an admin, nothing else is a key */
const adminOnly: KeyRing = {
  authenticate: (s) => (s === TEST_ADMIN_KEY ? { keyId: 'key_test', name: 'test-admin', role: 'admin', customerId: null, siteId: null } : null),
  isLive: () => true,
  refresh: async () => {},
  onRevoked: () => () => {},
  size: () => 1,
  close: async () => {},
};

/** the REST app; send bearer() (harness/auth.ts) with each request */
export function testHttpApp(o: { registry: Registry; db: Db; limits?: Partial<HttpDeps['limits']>; audit?: HttpDeps['audit']; ring?: KeyRing; economics?: HttpDeps['economics']; backtests?: HttpDeps['backtests'] }): Api {
  return createHttpApp({
    registry: o.registry,
    db: o.db,
    readDb: o.db,
    metrics: createMetrics(),
    log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    audit: o.audit ?? unwired('audit'),
    bus: unwired('bus'),
    ops: unwired('ops'),
    workloads: unwired('workloads'),
    limits: { telemetryMaxScanRows: 2_000_000, bodyLimitBytes: 1024 * 1024, ...o.limits },
    waiters: createWaitGate(10),
    claims: unwired('claims'),
    security: { ring: o.ring ?? adminOnly, limiter: createRateLimiter({ perSecond: 1e6, burst: 1e6 }), corsOrigins: [], keys: unwired('keys') },
    economics: o.economics,
    backtests: o.backtests,
    readiness: async () => ({ database: await o.db.ping() }),
  });
}
