import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { can, ROLES, type Principal, type Role } from '../auth/roles.js';
import type { KeyRing } from '../auth/key-ring.js';
import { createRateLimiter } from '../auth/rate-limit.js';
import { createWaitGate } from '../commands/wait-gate.js';
import { createHttpApp } from './app.js';
import type { HttpDeps } from './deps.js';
import { policyFor, ROUTE_POLICY } from './policy.js';

// A ring holding one key per role: the secret is the role's name, padded to a key's shape.
const secretOf = (role: Role) => `hcp_${role.padEnd(24, '0')}`;
const ring: KeyRing = {
  authenticate: (s) => {
    const role = ROLES.find((r) => secretOf(r) === s);
    return role ? ({ keyId: `key_${role}`, name: role, role, customerId: role === 'customer' ? 'cust-001' : null, siteId: role === 'agent' ? 'texas-1' : null } satisfies Principal) : null;
  },
  isLive: () => true,
  refresh: async () => {},
  onRevoked: () => () => {},
  size: () => ROLES.length,
  close: async () => {},
};

// Only the layers in front of the handlers are exercised: the route handlers are never reached
// by a refused call, and a call that passes is answered by whatever the stub dependencies allow.
const app = createHttpApp({
  log: pino({ level: 'silent' }),
  limits: { telemetryMaxScanRows: 1000, bodyLimitBytes: 1024 },
  waiters: createWaitGate(1),
  security: { ring, limiter: createRateLimiter({ perSecond: 1e6, burst: 1e6 }), corsOrigins: [], keys: {} as never },
} as unknown as HttpDeps);

const apiRoutes = app.routes.filter((r) => r.path.startsWith('/api/v1/') && r.method !== 'ALL');

describe('REST access policy', () => {
  it('lists every /api/v1 route, and nothing that is not a route', () => {
    const routes = apiRoutes.map((r) => `${r.method} ${r.path}`).sort();
    expect(routes.length).toBeGreaterThan(25);
    expect(routes.filter((r) => !(r in ROUTE_POLICY))).toEqual([]);
    expect(Object.keys(ROUTE_POLICY).filter((r) => !routes.includes(r))).toEqual([]);
  });

  it('answers 401 without a key and with a bad one, before anything else', async () => {
    for (const r of apiRoutes) {
      const path = r.path.replace(/:id/g, 'x');
      const none = await app.request(path, { method: r.method });
      expect(none.status, `${r.method} ${path}`).toBe(401);
      expect(none.headers.get('www-authenticate')).toContain('Bearer');
      const bad = await app.request(path, { method: r.method, headers: { authorization: 'Bearer hcp_not-a-real-key-at-all-000' } });
      expect(bad.status).toBe(401);
      expect(((await bad.json()) as { error: { reason: string } }).error.reason).toBe('bad_key');
    }
  });

  it('answers 403 to every role that lacks a route\'s permission, and lets the others through', async () => {
    for (const r of apiRoutes) {
      const needed = policyFor(r.method, r.path)!;
      for (const role of ROLES) {
        const res = await app.request(r.path.replace(/:id/g, 'x'), { method: r.method, headers: { authorization: `Bearer ${secretOf(role)}` } });
        const allowed = needed === 'authenticated' || can({ role } as Principal, needed);
        if (allowed) expect(res.status, `${role} ${r.method} ${r.path}`).not.toBe(403);
        else {
          expect(res.status, `${role} ${r.method} ${r.path}`).toBe(403);
          expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe('forbidden');
        }
      }
    }
  });

  it('gives HEAD what GET gets: the GET route\'s permission, not a refusal for a route without a policy', async () => {
    for (const r of apiRoutes.filter((x) => x.method === 'GET')) {
      const needed = policyFor('GET', r.path)!;
      for (const role of ROLES) {
        const res = await app.request(r.path.replace(/:id/g, 'x'), { method: 'HEAD', headers: { authorization: `Bearer ${secretOf(role)}` } });
        const allowed = needed === 'authenticated' || can({ role } as Principal, needed);
        expect(res.status, `${role} HEAD ${r.path}`).toBe(allowed ? (await app.request(r.path.replace(/:id/g, 'x'), { headers: { authorization: `Bearer ${secretOf(role)}` } })).status : 403);
      }
    }
  });

  it('keeps /health, /metrics and /openapi.json open, and an unknown route 404 once the caller is known', async () => {
    expect((await app.request('/health')).status).toBe(200);
    expect((await app.request('/openapi.json')).status).toBe(200);
    expect((await app.request('/api/v1/nowhere')).status).toBe(401);
    expect((await app.request('/api/v1/nowhere', { headers: { authorization: `Bearer ${secretOf('viewer')}` } })).status).toBe(404);
  });

  it('answers 413 from the Content-Length of a body over the limit, before reading it', async () => {
    const res = await app.request('/api/v1/curtail', {
      method: 'POST', headers: { authorization: `Bearer ${secretOf('operator')}`, 'content-type': 'application/json', 'content-length': String(100 * 1024 * 1024) },
      body: '{}',
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe('body_too_large');
  });

  it('echoes a plain x-request-id and makes one otherwise', async () => {
    expect((await app.request('/health', { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id')).toBe('abc-123');
    const made = (await app.request('/health', { headers: { 'x-request-id': 'bad id with spaces' } })).headers.get('x-request-id');
    expect(made).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 429 with Retry-After once a key is past its burst, and other keys go on', async () => {
    const tight = createHttpApp({
      log: pino({ level: 'silent' }), limits: { telemetryMaxScanRows: 1000, bodyLimitBytes: 1024 }, waiters: createWaitGate(1),
      security: { ring, limiter: createRateLimiter({ perSecond: 0.001, burst: 2 }), corsOrigins: [], keys: {} as never },
    } as unknown as HttpDeps);
    const ask = (role: Role) => tight.request('/api/v1/whoami', { headers: { authorization: `Bearer ${secretOf(role)}` } });
    expect((await ask('viewer')).status).toBe(200);
    expect((await ask('viewer')).status).toBe(200);
    const third = await ask('viewer');
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await third.json()) as { error: { reason: string } }).error.reason).toBe('rate_limited');
    expect((await ask('operator')).status).toBe(200);
  });

  it('has CORS off unless origins are listed, and then only for those', async () => {
    const pre = (a: typeof app, origin: string) => a.request('/api/v1/status', { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
    expect((await pre(app, 'https://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
    const open = createHttpApp({
      log: pino({ level: 'silent' }), limits: { telemetryMaxScanRows: 1000, bodyLimitBytes: 1024 }, waiters: createWaitGate(1),
      security: { ring, limiter: createRateLimiter({ perSecond: 1e6, burst: 1e6 }), corsOrigins: ['https://console.example'], keys: {} as never },
    } as unknown as HttpDeps);
    expect((await pre(open, 'https://console.example')).headers.get('access-control-allow-origin')).toBe('https://console.example');
    expect((await pre(open, 'https://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
  });
});
