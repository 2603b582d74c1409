// REST fuzzing against a running control plane (a child process on the real PostgreSQL): every
// route of http/policy.ts and routes that do not exist, random methods, path parameters, query
// strings, bodies, content types, keys and headers. What must hold for every case:
//   - the process lives and logs nothing fatal, unhandled, or at error level (an error line is a
//     request the API did not handle: "request failed" is a 500);
//   - the answer is 2xx, or 4xx with { error: { code, reason, message } }; never 5xx, but for a
//     503 with Retry-After when the database cancelled a slow query (query_timeout), which is an
//     overload answer and the only 5xx bad input may cause;
//   - keys are checked before anything else: no key, an unknown, malformed or revoked one is 401
//     on every route; a role without the route's permission is 403;
//   - the steady site's telemetry kept landing throughout.
// And, on a control plane of its own with the default-sized limit, a burst is answered 429 with
// Retry-After.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { can, type Principal } from '../control-plane/auth/roles.js';
import { policyFor } from '../control-plane/http/policy.js';
import { apiClient, makeKey, TEST_ADMIN_KEY } from './harness/auth.js';
import { bodyBytes, POLICY_ROUTES, restCase, type AuthChoice, type RestCase } from './harness/fuzz-rest-requests.js';
import { fuzzParams, fuzzTestTimeout } from './harness/fuzz-runs.js';
import { logProblems, startFuzzTarget, type FuzzTarget } from './harness/fuzz-target.js';
import { describePg } from './harness/pg.js';
import { startControlPlaneProcess, type ControlPlaneProcess } from './harness/processes.js';
import { closeRawAgent, headerValue, rawRequest, requestTarget, type RawResponse } from './harness/raw-http.js';
import { startSteadySite, type SteadySite } from './harness/steady-site.js';

/** the one 5xx bad input may get: the database cancelled a slow query (an overload answer) */
const ALLOWED_503_REASONS = new Set(['query_timeout']);

/** the lines the child logged since, after the I/O already received has been read */
const settled = () => new Promise((r) => setImmediate(r));

function describeCase(c: RestCase, r?: RawResponse): string {
  const body = bodyBytes(c.body);
  return `${c.method} ${c.target.slice(0, 300)} (route ${c.route}, auth ${c.auth}, headers ${JSON.stringify(Object.keys(c.headers))}, body ${body ? `${body.length} bytes: ${body.subarray(0, 200).toString()}` : 'none'})` +
    (r ? ` → ${r.status} ${r.body.subarray(0, 300).toString()}` : '');
}

/** an answer the API may give to anything */
function checkAnswer(c: RestCase, r: RawResponse): void {
  const what = describeCase(c, r);
  const is5xxAllowed = r.status === 503 && (() => {
    try {
      return ALLOWED_503_REASONS.has(JSON.parse(r.body.toString()).error.reason) && r.headers['retry-after'] !== undefined;
    } catch {
      return false;
    }
  })();
  expect(r.status >= 200 && (r.status < 500 || is5xxAllowed), what).toBe(true);
  if (c.method.toUpperCase() === 'HEAD') return;
  if (r.status >= 400) {
    let parsed: { error?: { code?: unknown; reason?: unknown; message?: unknown } };
    try {
      parsed = JSON.parse(r.body.toString());
    } catch {
      throw new Error(`a ${r.status} without a JSON body: ${what}`);
    }
    expect(typeof parsed.error?.code, what).toBe('string');
    expect(typeof parsed.error?.reason, what).toBe('string');
    expect(typeof parsed.error?.message, what).toBe('string');
  }
}

describePg('REST fuzzing', (pg) => {
  let t: FuzzTarget;
  let steady: SteadySite;
  let revokedKey = '';
  const authHeader = (a: AuthChoice, malformed: string): Record<string, string> => {
    switch (a) {
      case 'none':
        return {};
      case 'unknown':
        return { authorization: 'Bearer hcp_this-key-was-never-made-0000000000' };
      case 'malformed':
        return { authorization: headerValue(malformed) };
      case 'revoked':
        return { authorization: `Bearer ${revokedKey}` };
      default:
        return { authorization: `Bearer ${t.keys[a]}` };
    }
  };
  const send = (c: RestCase) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.headers)) headers[k] = headerValue(v);
    return rawRequest(t.cp.http, { method: c.method, path: c.target, headers: { ...headers, ...authHeader(c.auth, c.malformedAuth) }, body: bodyBytes(c.body) });
  };

  beforeAll(async () => {
    t = await startFuzzTarget(pg.url);
    steady = await startSteadySite(t.cp);
    const api = apiClient(t.cp.http);
    const made = (await (await api.post('/api/v1/keys', { name: 'fuzz-revoked', role: 'viewer' })).json()) as { id: string; secret: string };
    revokedKey = made.secret;
    expect((await api.del(`/api/v1/keys/${made.id}`)).status).toBe(200);
  });

  afterAll(async () => {
    closeRawAgent();
    await steady?.close();
    await t?.close();
  });

  it('answers every request 2xx or 4xx with an error body, and never loses control of one', { timeout: fuzzTestTimeout(100_000) }, async () => {
    // what the cases reached, printed at the end: a fuzzer that never gets past validation tests little
    const seen = new Map<string, number>();
    const note = (c: RestCase, r: RawResponse) => {
      let reason = '';
      try {
        reason = JSON.parse(r.body.toString()).error?.reason ?? '';
      } catch {
        // not JSON
      }
      const k = `${c.route} ${r.status}${reason ? ` ${reason}` : ''}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    };
    const start = t.mark();
    await fc.assert(
      fc.asyncProperty(restCase, async (c) => {
        const mark = t.mark();
        let r: RawResponse;
        try {
          r = await send(c);
        } catch (err) {
          throw new Error(`no answer (${(err as Error).message}): ${describeCase(c)}`);
        }
        note(c, r);
        checkAnswer(c, r);
        await settled();
        t.assertHealthy(mark, String(r.headers['x-request-id']));
      }),
      fuzzParams(3000, 100_000),
    );
    // what no case could be blamed for: lines without a request id, or later than their case
    t.assertHealthy(start);
    // HCP_FUZZ_STATS=1: how many cases of each route got which answer
    if (process.env.HCP_FUZZ_STATS) console.log([...seen].sort().map(([k, n]) => `${String(n).padStart(5)} ${k}`).join('\n'));
  });

  it('checks the key before anything else on every route, and the role after it', { timeout: fuzzTestTimeout(40_000) }, async () => {
    const start = t.mark();
    const principal = (role: Principal['role']): Principal => ({ keyId: 'k', name: 'k', role, customerId: null, siteId: null });
    await fc.assert(
      fc.asyncProperty(restCase, fc.constantFrom(...POLICY_ROUTES), async (c0, route) => {
        // the route's own method and a body within the limit, so only the key decides
        const c: RestCase = { ...c0, method: route.method, route: `${route.method} ${route.path}`, target: c0.target.replace(/^[^?]*/, route.path.replace(/:id/g, 'fuzz-1')) };
        for (const [h, v] of Object.entries(c.headers)) if (headerValue(v).length > 4000) delete c.headers[h];
        // a request line past Node's header limit is answered 431 before any key is looked at
        if (requestTarget(c.target).length > 4000) c.target = route.path.replace(/:id/g, 'fuzz-1');
        const body = bodyBytes(c.body);
        if (body && body.length > 1024 * 1024) c.body = { kind: 'none' };
        const r = await send(c);
        const what = describeCase(c, r);
        const reason = (() => {
          try {
            return JSON.parse(r.body.toString()).error?.reason as string | undefined;
          } catch {
            return undefined;
          }
        })();
        const needed = policyFor(route.method, route.path)!;
        if (c.auth === 'none' || c.auth === 'unknown' || c.auth === 'malformed' || c.auth === 'revoked') {
          expect(r.status, what).toBe(401);
          expect(r.headers['www-authenticate'], what).toMatch(/^Bearer/);
        } else if (needed !== 'authenticated' && !can(principal(c.auth), needed)) {
          expect([r.status, reason], what).toEqual([403, 'forbidden']);
        } else {
          expect(r.status, what).not.toBe(401);
          expect(reason, what).not.toBe('forbidden');
        }
        checkAnswer(c, r);
      }),
      fuzzParams(800, 40_000),
    );
    t.assertHealthy(start);
  });

  it("kept the steady site's telemetry landing throughout", { timeout: 60_000 }, async () => {
    const { batches } = await steady.stopAndVerify(pg.url, () => logProblems(t.cp.proc.lines));
    expect(batches).toBeGreaterThan(0);
    t.assertHealthy();
  });
});

describePg('REST rate limit', (pg) => {
  let cp: ControlPlaneProcess;
  const BURST = 20;
  beforeAll(async () => {
    cp = await startControlPlaneProcess(pg.url, { HCP_RATE_LIMIT_PER_S: '1', HCP_RATE_LIMIT_BURST: String(BURST), HCP_ECONOMICS: 'off' });
  });
  afterAll(async () => {
    await cp?.proc.kill();
  });

  it('answers a burst past the limit 429 with Retry-After, per key', { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/api/v1/status', '/api/v1/sites', '/api/v1/devices', '/api/v1/whoami', '/api/v1/grid'),
        fc.integer({ min: BURST + 5, max: BURST * 2 }),
        async (path, n) => {
          // a fresh key: a full bucket of BURST tokens, refilled at one a second
          const key = await makeKey(cp.http, { role: 'viewer', name: `burst-${Math.random().toString(36).slice(2, 10)}` }, TEST_ADMIN_KEY);
          const answers = await Promise.all(Array.from({ length: n }, () => fetch(`${cp.http}${path}`, { headers: { authorization: `Bearer ${key}` } })));
          const limited = answers.filter((r) => r.status === 429);
          // n - BURST requests are past the bucket; only a refill (a second each) lets one through
          expect(limited.length).toBeGreaterThan(0);
          for (const r of limited) {
            expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
            expect(((await r.json()) as { error: { reason: string } }).error.reason).toBe('rate_limited');
          }
          for (const r of answers.filter((x) => x.status !== 429)) {
            expect(r.status).toBeLessThan(500);
            await r.body?.cancel();
          }
        },
      ),
      // the admin key makes one key per run: well within its own burst
      fuzzParams(BURST / 2, 30_000, { numRuns: BURST / 2 }),
    );
    expect(cp.proc.child.exitCode).toBeNull();
    expect(logProblems(cp.proc.lines)).toEqual([]);
  });
});
