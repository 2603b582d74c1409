// Random REST requests: every route of http/policy.ts (and routes that do not exist), any method,
// path parameters and query strings from the tricky values, bodies that are nearly right (one
// field wrong, missing or extra), any JSON, JSON no serializer writes, or bytes; keys of each
// role, none, unknown or malformed; odd content types and huge headers.
import fc from 'fast-check';
import { ROUTE_POLICY } from '../../control-plane/http/policy.js';
import { someBytes, someId, someLineId, trickyJson, trickyJsonText, trickyLineString, trickyNumber, trickyString } from './fuzz-arbitraries.js';
import { FUZZ_ASICS, FUZZ_GPUS, FUZZ_SITE, type FuzzRole } from './fuzz-target.js';
import { pctEncode } from './raw-http.js';

export type AuthChoice = FuzzRole | 'none' | 'unknown' | 'malformed' | 'revoked';

export interface RestCase {
  method: string;
  /** the route template the case was made from, for the failure message */
  route: string;
  /** request target: path and query, unencoded where the case means it */
  target: string;
  auth: AuthChoice;
  /** a malformed Authorization header, when auth is 'malformed' */
  malformedAuth: string;
  headers: Record<string, string>;
  body: { kind: 'none' } | { kind: 'json'; value: unknown } | { kind: 'text'; text: string } | { kind: 'bytes'; bytes: Uint8Array };
}

export const POLICY_ROUTES = Object.keys(ROUTE_POLICY).map((k) => {
  const [method, path] = k.split(' ') as [string, string];
  return { method, path };
});

const OTHER_ROUTES = [
  '/health', '/ready', '/metrics', '/openapi.json', '/', '/api', '/api/v1', '/api/v1/', '/api/v2/status', '/API/V1/STATUS', '/api/v1/status/',
  '/api/v1//status', '/api/v1/nope', '/api/v1/sites/:id/unknown', '/api/v1/sites/:id/mining/extra', '/api/v1/keys/:id/:id', '/api/v1/%2e%2e/status',
  '/api/v1/sites/../keys', '/api/v1/./status', '/metrics/../api/v1/keys',
];

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'get', 'Post', 'TRACE', 'FOO', 'M-SEARCH', 'PROPFIND'];

const isoTime = fc.oneof(
  { weight: 1, arbitrary: fc.integer({ min: -8.64e15, max: 8.64e15 }).map((ms) => new Date(ms).toISOString()) },
  { weight: 3, arbitrary: fc.integer({ min: Date.now() - 7 * 86_400_000, max: Date.now() + 86_400_000 }).map((ms) => new Date(ms).toISOString()) },
  { weight: 1, arbitrary: trickyLineString },
);

const intText = fc.oneof(fc.constantFrom('1', '2', '100', '1000', '5000', '10000', '10001', '0', '-1', '1.5', 'NaN', '1e3', '99999999999999999999', '0x10', ' 5'), trickyNumber.map(String));

/** values for the query keys routes know, right and wrong */
const QUERY_VALUES: Record<string, fc.Arbitrary<string>> = {
  limit: intText,
  cursor: fc.oneof(fc.constantFrom('ZnV6ei0x', 'Z3B1LWZ1enotMS0wMDAx', '0', '12', '999999999999999999', 'zz', 'a'.repeat(201)), trickyLineString),
  site: someLineId,
  device: someLineId,
  kind: fc.constantFrom('gpu', 'asic', 'GPU', '', 'both'),
  online: fc.constantFrom('true', 'false', '1', 'yes'),
  from: isoTime,
  to: isoTime,
  bucket: fc.constantFrom('1s', '10s', '1m', '5m', '1h', '1d', '99999d', '0s', '00000s', '1y', '-1m', '1.5m', '100000s'),
  state: fc.constantFrom('pending', 'sent', 'acked', 'succeeded', 'failed', 'expired', 'running', 'cancelled', 'PENDING', ''),
  workload_id: someLineId,
  customer_id: fc.constantFrom('cust-001', 'cust-002', 'cust-404', '', 'a'.repeat(65)),
  feed: fc.constantFrom('btc_usd', 'power', 'gpu_spot', 'oil', ''),
  include_revoked: fc.constantFrom('true', 'false', 'TRUE'),
  reason: trickyLineString,
  wait: fc.constantFrom('false', 'false', 'true', '1', ''),
  timeout_s: fc.constantFrom('1', '2', '0', '601', '-1', 'abc', '1.5'),
};

const queryKey = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...Object.keys(QUERY_VALUES)) }, { weight: 1, arbitrary: trickyLineString });
const queryPair = queryKey.chain((k) => fc.tuple(fc.constant(k), fc.oneof({ weight: 4, arbitrary: Object.hasOwn(QUERY_VALUES, k) ? QUERY_VALUES[k]! : trickyLineString }, { weight: 1, arbitrary: trickyLineString })));

/** the query pairs, encoded as a client would, or raw (bad escapes, `&`, `=` and `#` in values) */
const query: fc.Arbitrary<string> = fc
  .tuple(fc.array(queryPair, { maxLength: 6 }), fc.constantFrom<'encoded' | 'raw'>('encoded', 'encoded', 'raw'))
  .map(([pairs, how]) => {
    // A ?wait=true call waits for its commands up to timeout_s (default 30 s): the fuzzer keeps it to
    // one second, so a command for a site without an agent does not hold the run.
    if (pairs.some(([k, v]) => k === 'wait' && v === 'true')) {
      pairs = pairs.map(([k, v]) => (k === 'timeout_s' && /^\d+$/.test(v) ? [k, '1'] : [k, v]));
      if (!pairs.some(([k]) => k === 'timeout_s')) pairs.push(['timeout_s', '1']);
    }
    if (pairs.length === 0) return '';
    const enc = how === 'encoded' ? pctEncode : (s: string) => s;
    return `?${pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`;
  });

/** ids that name something on the route, so a case gets past the 404 */
const ROUTE_IDS: Array<[RegExp, string[]]> = [
  [/^\/api\/v1\/sites\//, [FUZZ_SITE, FUZZ_SITE, 'steady-1', 'texas-1', 'fuzz-made-1']],
  [/^\/api\/v1\/devices\//, [...FUZZ_GPUS, ...FUZZ_ASICS, 'gpu-steady-1-0001']],
  [/^\/api\/v1\/keys\//, ['key_0000000000000000', 'key_x']],
];

const pathParam = (path: string): fc.Arbitrary<string> => {
  const known = ROUTE_IDS.find(([re]) => re.test(path))?.[1];
  return fc
    .tuple(known ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, { weight: 3, arbitrary: someLineId }) : someLineId, fc.constantFrom<'encoded' | 'raw' | 'double'>('encoded', 'encoded', 'raw', 'double'))
    .map(([id, how]) => (how === 'encoded' ? pctEncode(id) : how === 'double' ? pctEncode(pctEncode(id)) : id));
};

// ---------------------------------------------------------------------------------------------
// Bodies: each route's own shape, nearly right

const maybe = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 8, arbitrary: a }, { weight: 1, arbitrary: trickyJson });
// the templates' own values are mostly valid: `maybe` and the mutation below make them wrong
const deviceIds = fc.oneof({ weight: 4, arbitrary: fc.subarray([...FUZZ_ASICS]) }, { weight: 1, arbitrary: fc.array(fc.oneof(fc.constantFrom(...FUZZ_ASICS, ...FUZZ_GPUS, 'asic-steady-1-00001'), trickyString), { maxLength: 4 }) });
const deadline = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 5 }) }, { weight: 1, arbitrary: trickyNumber });

const TEMPLATES: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  'POST /api/v1/sites/:id/mining': fc.record(
    { enabled: maybe(fc.boolean()), power_target_w: maybe(fc.oneof(fc.double({ min: 1, max: 10_000, noNaN: true }), fc.constant(null))), device_ids: maybe(deviceIds), deadline_s: maybe(deadline) },
    { requiredKeys: ['enabled'] },
  ),
  'POST /api/v1/curtail': fc.record(
    { sites: maybe(fc.oneof(fc.subarray([FUZZ_SITE, 'steady-1']), fc.array(someId, { maxLength: 3 }))), all: maybe(fc.boolean()), reason: maybe(fc.oneof(fc.constantFrom('fuzz', 'ERCOT EEA'), trickyString)), deadline_s: maybe(deadline) },
    { requiredKeys: ['reason'] },
  ),
  'PUT /api/v1/sites/:id/mode': fc.record({ mode: maybe(fc.constantFrom('auto', 'manual', 'AUTO')), reason: maybe(trickyString) }, { requiredKeys: ['mode'] }),
  'PUT /api/v1/sites/:id/schedule': fc.record({
    windows: maybe(fc.array(fc.record({ from_hour: maybe(fc.integer({ min: -1, max: 25 })), to_hour: maybe(fc.integer({ min: -1, max: 25 })), mining: maybe(fc.constantFrom('off', 'auto', 'on')) }), { maxLength: 50 })),
  }),
  'POST /api/v1/sites/:id/demand-response': fc.record(
    { mw: maybe(fc.double({ min: 0, max: 2000, noNaN: true })), from: maybe(isoTime), to: maybe(isoTime), program: maybe(fc.oneof(fc.constant('ERS-10'), trickyString)) },
    { requiredKeys: ['mw', 'from', 'to'] },
  ),
  'POST /api/v1/allocate': fc.record({ workload_id: maybe(someId), device_ids: maybe(fc.array(fc.constantFrom(...FUZZ_GPUS), { maxLength: 3 })), deadline_s: maybe(deadline) }, { requiredKeys: ['workload_id'] }),
  'POST /api/v1/release': fc.record({ workload_id: maybe(someId), deadline_s: maybe(deadline) }, { requiredKeys: ['workload_id'] }),
  'PUT /api/v1/sites/:id/grid-trip': fc.oneof(
    fc.record({ enabled: maybe(fc.boolean()), threshold_hz: maybe(fc.double({ min: 56, max: 61, noNaN: true })), device_ids: maybe(deviceIds), reason: maybe(fc.oneof(fc.constant('relay test'), trickyString)) }, { requiredKeys: ['enabled'] }),
    fc.record({ default: maybe(fc.constant(true)), reason: maybe(fc.oneof(fc.constant('back to default'), trickyString)) }),
  ),
  'POST /api/v1/workloads': fc.record(
    {
      customer_id: maybe(fc.constantFrom('cust-001', 'cust-002', 'cust-003', 'cust-404')),
      workload_type: maybe(fc.constantFrom('ai_inference_realtime', 'ai_inference_batch', 'ai_training', 'mining')),
      priority: maybe(fc.integer({ min: 0, max: 11 })),
      requirements: maybe(fc.record({ gpu_type: maybe(fc.constantFrom('h100', 'H100', 'a100', '')), gpu_count: maybe(fc.integer({ min: 0, max: 2000 })) })),
      min_gpu_memory_mib: maybe(fc.integer({ min: -1, max: 20_000_000 })),
      site: maybe(someId),
      duration_s: maybe(fc.integer({ min: 0, max: 3_000_000 })),
      idempotency_key: maybe(fc.oneof(fc.constantFrom('req-1', 'req-2'), trickyString)),
    },
    { requiredKeys: ['workload_type', 'priority', 'requirements'] },
  ),
  'POST /api/v1/workloads/:id/cancel': fc.record({ reason: maybe(trickyString) }, { requiredKeys: [] }),
  'POST /api/v1/keys': fc.record(
    {
      name: maybe(fc.oneof(fc.constantFrom('fuzz-made', 'Fuzz', '-x', 'fuzz-operator'), trickyString)),
      role: maybe(fc.constantFrom('admin', 'operator', 'customer', 'viewer', 'agent', 'feed', 'root')),
      customer_id: maybe(fc.constantFrom('cust-001', 'cust-404', '')),
      site: maybe(fc.constantFrom(FUZZ_SITE, 'fuzz-made-1', 'Fuzz 2', '')),
    },
    { requiredKeys: ['role'] },
  ),
  // hours kept small: a seeded backtest is about 6 ms of CPU an hour, on the backtest worker
  'POST /api/v1/economics/backtest': fc.oneof(
    fc.record({ seed: maybe(fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }), trickyNumber)), hours: maybe(fc.integer({ min: -1, max: 6 })) }, { requiredKeys: ['seed'] }),
    fc.record({ prices_csv: maybe(fc.oneof(fc.constant(`ts,feed,site,price\n2025-06-01T00:00:00Z,power,${FUZZ_SITE},0.05\n2025-06-01T00:00:00Z,btc_usd,,90000\n2025-06-01T01:00:00Z,power,${FUZZ_SITE},0.06\n`), trickyString)) }),
  ),
  'POST /api/v1/sites': fc.record(
    {
      id: maybe(fc.constantFrom('fuzz-made-1', 'fuzz-made-2', FUZZ_SITE, 'Fuzz 3', '-x')),
      name: maybe(trickyString),
      region: maybe(fc.constantFrom('ercot', 'ieso', 'ERCOT', '')),
      power_capacity_kw: maybe(fc.oneof(fc.integer({ min: 0, max: 10_000_000 }), trickyNumber)),
      timezone: maybe(fc.constantFrom('UTC', 'America/Chicago', 'Mars/Olympus', '')),
    },
    { requiredKeys: ['id', 'region'] },
  ),
};

/** one field of the template replaced by any JSON, removed, or a field added */
const mutated = (t: fc.Arbitrary<Record<string, unknown>>) =>
  fc.tuple(t, fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.tuple(fc.oneof(fc.constantFrom('enabled', 'reason', 'sites', 'workload_id', 'windows', 'id', 'role', 'mode'), trickyString), fc.option(trickyJson)) })).map(([b, m]) => {
    if (!m) return b;
    const [k, v] = m;
    const out = { ...b };
    if (v === null) delete out[k];
    else out[k] = v;
    return out;
  });

const body = (route: string): fc.Arbitrary<RestCase['body']> => {
  const t = TEMPLATES[route];
  return fc.oneof(
    ...(t ? [{ weight: 12, arbitrary: mutated(t).map((value) => ({ kind: 'json' as const, value })) }] : []),
    { weight: 2, arbitrary: trickyJson.map((value) => ({ kind: 'json' as const, value })) },
    { weight: 2, arbitrary: trickyJsonText.map((text) => ({ kind: 'text' as const, text })) },
    { weight: 1, arbitrary: someBytes.map((bytes) => ({ kind: 'bytes' as const, bytes })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  );
};

const contentType = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  { weight: 3, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'application/json; charset=utf-16', 'application/JSON', 'application/merge-patch+json') },
  { weight: 3, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', '', '*/*') },
);

const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'x-request-id': trickyLineString,
    'x-hcp-actor': trickyLineString,
    'x-forwarded-for': fc.constantFrom('1.2.3.4', '::1', 'x'.repeat(100)),
    accept: fc.constantFrom('application/json', 'text/html', '*/*', ''),
    'transfer-encoding': fc.constant('chunked'),
  },
  { requiredKeys: [] },
);

/** now and then a header past Node's 16 KiB limit: the server answers before any route sees the request */
const hugeHeader = fc.oneof(
  { weight: 15, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constantFrom(10_000, 20_000, 70_000).map((n) => ({ 'x-huge': 'h'.repeat(n) })) },
);

const MALFORMED_AUTH = [
  'Bearer', 'Bearer ', 'Bearer  ', 'bearer hcp_test-admin-key-of-the-test-suite-0000x', 'Basic YWRtaW46YWRtaW4=', 'Token abc', 'Bearer a b',
  `Bearer ${'k'.repeat(10_000)}`, 'Bearer hcp_', 'Bearer %00', 'Bearer \u00ff\u00fe',
];

export const restCase: fc.Arbitrary<RestCase> = fc
  .oneof(
    { weight: 8, arbitrary: fc.constantFrom(...POLICY_ROUTES).map((r) => ({ method: r.method, path: r.path, known: true })) },
    { weight: 1, arbitrary: fc.constantFrom(...OTHER_ROUTES).map((path) => ({ method: 'GET', path, known: false })) },
  )
  .chain((r) =>
    fc.record({
      method: fc.oneof({ weight: 5, arbitrary: fc.constant(r.method) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
      route: fc.constant(`${r.method} ${r.path}`),
      target: fc.tuple(fc.array(pathParam(r.path), { minLength: 2, maxLength: 2 }), query).map(([[a, b], q]) => {
        let n = 0;
        return `${r.path.replace(/:id/g, () => (n++ === 0 ? a! : b!))}${q}`;
      }),
      auth: fc.constantFrom<AuthChoice>('admin', 'admin', 'admin', 'admin', 'operator', 'operator', 'customer', 'viewer', 'agent', 'feed', 'none', 'unknown', 'malformed', 'revoked'),
      malformedAuth: fc.constantFrom(...MALFORMED_AUTH),
      headers: fc
        .tuple(contentType, fc.option(extraHeaders, { freq: 3 }), hugeHeader)
        .map(([ct, extra, huge]) => ({ ...(ct ? { 'content-type': ct } : {}), ...(extra ?? {}), ...(huge ?? {}) })),
      body: r.method === 'GET' || r.method === 'DELETE' ? fc.oneof({ weight: 5, arbitrary: fc.constant({ kind: 'none' as const }) }, { weight: 1, arbitrary: body(`${r.method} ${r.path}`) }) : body(`${r.method} ${r.path}`),
    }),
  );

/** the bytes of a case's body */
export function bodyBytes(b: RestCase['body']): Buffer | undefined {
  switch (b.kind) {
    case 'none':
      return undefined;
    case 'json':
      return Buffer.from(JSON.stringify(b.value) ?? 'null', 'utf8');
    case 'text':
      return Buffer.from(b.text, 'utf8');
    case 'bytes':
      return Buffer.from(b.bytes);
  }
}
