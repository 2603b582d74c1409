// What each REST route requires. Every /api/v1 route is listed here, and a route missing from
// this table is refused to everyone (fail closed): a new endpoint has a role check from the day
// it exists, and policy.test.ts fails until it is listed. Customer scoping (a customer sees only
// its own workloads and usage) is the route's part; the permission is checked here.
import type { Permission } from '../auth/roles.js';

/** 'authenticated': any valid key, whatever its role */
export type RoutePolicy = Permission | 'authenticated';

export const ROUTE_POLICY: Readonly<Record<string, RoutePolicy>> = {
  'GET /api/v1/whoami': 'authenticated',
  /** the live stream: any key; each event is filtered by the key's role (http/live.ts) */
  'GET /api/v1/events': 'authenticated',

  'GET /api/v1/status': 'fleet.read',
  'GET /api/v1/sites': 'fleet.read',
  'GET /api/v1/sites/:id': 'fleet.read',
  'GET /api/v1/devices': 'fleet.read',
  'GET /api/v1/devices/:id': 'fleet.read',
  'GET /api/v1/telemetry': 'fleet.read',
  'GET /api/v1/commands': 'fleet.read',
  'GET /api/v1/commands/:id': 'fleet.read',
  'GET /api/v1/prices': 'fleet.read',
  'GET /api/v1/grid': 'fleet.read',
  'GET /api/v1/economics': 'fleet.read',
  'GET /api/v1/economics/profit': 'fleet.read',
  'GET /api/v1/sites/:id/desired': 'fleet.read',
  'GET /api/v1/claims': 'fleet.read',
  'GET /api/v1/audit': 'fleet.read',

  /** a computation on the caller's or seeded prices: it reads or changes nothing of the fleet */
  'POST /api/v1/economics/backtest': 'fleet.read',

  'POST /api/v1/sites/:id/mining': 'fleet.control',
  'POST /api/v1/curtail': 'fleet.control',
  'PUT /api/v1/sites/:id/mode': 'fleet.control',
  'PUT /api/v1/sites/:id/schedule': 'fleet.control',
  'POST /api/v1/sites/:id/demand-response': 'fleet.control',
  'DELETE /api/v1/claims/:id': 'fleet.control',
  'PUT /api/v1/sites/:id/ramp': 'fleet.control',
  'POST /api/v1/allocate': 'fleet.control',
  'POST /api/v1/release': 'fleet.control',

  'PUT /api/v1/sites/:id/grid-trip': 'grid.admin',

  'POST /api/v1/workloads': 'workloads.submit',
  'GET /api/v1/workloads': 'workloads.read',
  'GET /api/v1/workloads/:id': 'workloads.read',
  'POST /api/v1/workloads/:id/cancel': 'workloads.cancel',
  'GET /api/v1/usage': 'usage.read',

  'POST /api/v1/keys': 'keys.admin',
  'GET /api/v1/keys': 'keys.admin',
  'DELETE /api/v1/keys/:id': 'keys.admin',
  'POST /api/v1/sites': 'keys.admin',
};

export function policyFor(method: string, routePath: string): RoutePolicy | undefined {
  return ROUTE_POLICY[`${method.toUpperCase()} ${routePath}`];
}
