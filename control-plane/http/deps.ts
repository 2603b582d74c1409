// What the REST routes are given, apart from the app that wires them (app.ts), so a route
// file never imports the app.
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { LeaseStatus } from '../ha/lease.js';
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
import type { KeyAdmin } from '../auth/key-admin.js';
import type { WorkloadService } from '../workloads/service.js';
import type { WaitGate } from '../commands/wait-gate.js';
import type { KeyRing } from '../auth/key-ring.js';
import type { RateLimiter } from '../auth/rate-limit.js';
import { actorOf as principalActor } from '../auth/roles.js';
import { principalOf } from './auth.js';
import type { ClaimsService } from '../claims/service.js';
import type { OperatorControls } from '../claims/operator.js';
import type { Programs } from '../claims/programs.js';
import type { Reconciler } from '../claims/reconciler.js';
import type { LiveStreams } from './live.js';
import type { BacktestRunner } from '../backtest/runner.js';

export { principalOf };

export interface HttpDeps {
  registry: Registry;
  /** writes and point reads */
  db: Db;
  /**
   * the queries that scan (telemetry series, histories, lists, usage): on PostgreSQL a small pool
   * of their own under HCP_API_STATEMENT_TIMEOUT_MS, so a slow one is cancelled and never holds a
   * connection that ingest, the scheduler or a submit needs; PGlite: the same handle as db
   */
  readDb: Db;
  metrics: Metrics;
  log: Logger;
  audit: AuditWriter;
  bus: CommandBus;
  ops: Operations;
  /** every workload transition (workloads/service.ts) */
  workloads: WorkloadService;
  market?: { book: PriceBook };
  grid?: GridResponse;
  economics?: { dispatch: EconomicDispatch; controls: SiteControls };
  /** caps on what one request may cost */
  limits: { telemetryMaxScanRows: number; bodyLimitBytes: number };
  /** callers held open for ?wait=true, shared with gRPC */
  waiters: WaitGate;
  /** who may call: the live keys, the per-key rate limit, and the browser origins allowed (none: CORS off) */
  security: { ring: KeyRing; limiter: RateLimiter; corsOrigins: string[]; keys: KeyAdmin };
  /** claims, the operator's controls over them, and the reconcilers that carry them out */
  claims: {
    service: ClaimsService;
    operator: OperatorControls;
    programs: Programs;
    /** schedules, demand-response commitments, grid-trip and ramp settings */
    controls: SiteControls;
    reconciler: Pick<Reconciler, 'reconcileNow' | 'poke' | 'view'>;
    ramp: { of(siteId: string): number; set(siteId: string, kwPerMin: number | null, actor: string): Promise<void> };
  };
  /** runs POST /api/v1/economics/backtest off the event loop; absent: 503 */
  backtests?: BacktestRunner;
  /** the console's live stream (GET /api/v1/events); absent: 503 */
  live?: LiveStreams;
  /** the built web console served at / (web/dist); absent or not built: not served */
  webDir?: string;
  /** what /ready checks */
  readiness: () => Promise<Record<string, boolean>>;
  /** this replica and the leader lease (ha/lease.ts), shown in /api/v1/status */
  leadership?: () => LeaseStatus;
}

export type Api = OpenAPIHono;

/** who is asking, for the audit log: the caller's key (key:<name>), never a header */
export function actorOf(c: Context): string {
  return principalActor(principalOf(c));
}
