// Keys for tests: every control plane a test starts takes TEST_ADMIN_KEY as its HCP_ADMIN_KEY,
// and the test makes the other keys it needs through the real API (or, in-process, KeyAdmin).
import type { Role } from '../../control-plane/auth/roles.js';

export const TEST_ADMIN_KEY = 'hcp_test-admin-key-of-the-test-suite-0000';

export const bearer = (key: string = TEST_ADMIN_KEY) => ({ authorization: `Bearer ${key}` });

/** fetch with a key (the admin's unless given), JSON bodies made and typed */
export function apiClient(base: string, key: string = TEST_ADMIN_KEY) {
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method,
      headers: { ...bearer(key), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  return {
    get: (path: string, headers?: Record<string, string>) => call('GET', path, undefined, headers),
    post: (path: string, body?: unknown, headers?: Record<string, string>) => call('POST', path, body ?? {}, headers),
    put: (path: string, body: unknown, headers?: Record<string, string>) => call('PUT', path, body, headers),
    del: (path: string, headers?: Record<string, string>) => call('DELETE', path, undefined, headers),
    /** GET and parse JSON, failing on a non-2xx answer */
    async json<T = Record<string, unknown>>(path: string): Promise<T> {
      const r = await call('GET', path);
      if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    },
  };
}

/** makes a key over REST with the admin key and returns its secret */
export async function makeKey(base: string, k: { role: Role; name?: string; site?: string; customer_id?: string }, adminKey: string = TEST_ADMIN_KEY): Promise<string> {
  const r = await apiClient(base, adminKey).post('/api/v1/keys', k);
  if (r.status !== 201) throw new Error(`POST /api/v1/keys ${JSON.stringify(k)}: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { secret: string }).secret;
}
