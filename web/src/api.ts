// The console's REST client: the API key (sessionStorage: gone when the tab closes), JSON calls
// with it in the Authorization header, and the API's error body turned into a message to show.
const KEY = 'hcp.key';

export type Role = 'admin' | 'operator' | 'customer' | 'viewer' | 'agent' | 'feed';
export interface Me { key_id: string; name: string; role: Role; customer_id: string | null; site: string | null }

/** what each role may do: the same table as control-plane/auth/roles.ts, for showing controls only (the API decides) */
const GRANTS: Record<Role, string[]> = {
  admin: ['fleet.read', 'fleet.control', 'grid.admin', 'keys.admin', 'workloads.submit', 'workloads.read', 'workloads.cancel', 'usage.read'],
  operator: ['fleet.read', 'fleet.control', 'workloads.submit', 'workloads.read', 'workloads.cancel', 'usage.read'],
  customer: ['workloads.submit', 'workloads.read', 'workloads.cancel', 'usage.read'],
  viewer: ['fleet.read', 'workloads.read', 'usage.read'],
  agent: [],
  feed: [],
};
export const can = (me: Me | null, perm: string): boolean => !!me && GRANTS[me.role].includes(perm);

export const storedKey = (): string | null => sessionStorage.getItem(KEY);
export const storeKey = (k: string | null): void => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY));

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** called on a 401 from any call: the key stopped working (revoked), back to sign-in */
let onUnauthorized: (msg: string) => void = () => {};
export const setUnauthorizedHandler = (f: (msg: string) => void) => void (onUnauthorized = f);

export async function api<T = any>(path: string, init: { method?: string; body?: unknown; key?: string } = {}): Promise<T> {
  const key = init.key ?? storedKey();
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
  } catch (err) {
    throw new ApiError(0, 'network', `the control plane cannot be reached (${(err as Error).message})`);
  }
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const e = json?.error;
    const err = new ApiError(res.status, e?.code ?? 'http', e?.message ?? `${res.status} ${res.statusText}`);
    if (res.status === 401 && init.key === undefined) onUnauthorized(err.message);
    throw err;
  }
  return json as T;
}

/** the message a failed call shows */
export function messageOf(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 403) return `Not allowed: ${err.message}`;
    if (err.status === 401) return `Sign-in needed: ${err.message}`;
    return err.message;
  }
  return (err as Error)?.message ?? String(err);
}
