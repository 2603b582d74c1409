// The REST client: JSON over fetch with the key as a bearer token. An answer that is not 2xx
// becomes an ApiError carrying the API's { error: { code, reason, message } }; a control plane
// that cannot be reached becomes a NetworkError. The key is sent and never shown.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly reason: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export class NetworkError extends Error {}

export interface Api {
  readonly url: string;
  get<T>(path: string, query?: Query): Promise<T>;
  post<T>(path: string, body: unknown, query?: Query): Promise<{ status: number; body: T }>;
  del<T>(path: string, query?: Query): Promise<T>;
}

export type Query = Record<string, string | number | boolean | undefined>;

const REQUEST_TIMEOUT_MS = 30_000;
/** a GET refused 429 is tried again after Retry-After, this many times */
const RATE_RETRIES = 3;

function withQuery(path: string, q: Query = {}): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) qs.set(k, String(v));
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

async function toApiError(r: Response): Promise<ApiError> {
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: a proxy's page, say; its status is the message
  }
  const e = (body as { error?: { code?: unknown; reason?: unknown; message?: unknown } } | null)?.error;
  if (e && typeof e.message === 'string') return new ApiError(r.status, String(e.code ?? 'unknown'), String(e.reason ?? 'unknown'), e.message, body);
  return new ApiError(r.status, 'http', `http_${r.status}`, `HTTP ${r.status} ${r.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`, body);
}

export function createApi(o: { url: string; key: string | null; timeoutMs?: number }): Api {
  const headers = (json: boolean): Record<string, string> => ({
    accept: 'application/json',
    ...(o.key ? { authorization: `Bearer ${o.key}` } : {}),
    ...(json ? { 'content-type': 'application/json' } : {}),
  });

  async function call(method: string, path: string, query?: Query, body?: unknown): Promise<{ status: number; body: unknown }> {
    const url = `${o.url}${withQuery(path, query)}`;
    for (let attempt = 0; ; attempt++) {
      let r: Response;
      try {
        r = await fetch(url, {
          method,
          headers: headers(body !== undefined),
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(o.timeoutMs ?? REQUEST_TIMEOUT_MS),
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        const why = err.name === 'TimeoutError' ? `no answer in ${(o.timeoutMs ?? REQUEST_TIMEOUT_MS) / 1000} s` : (err.cause?.code ?? err.cause?.message ?? err.message);
        throw new NetworkError(`cannot reach the control plane at ${o.url}: ${why}`);
      }
      if (r.status === 429 && method === 'GET' && attempt < RATE_RETRIES) {
        await r.body?.cancel();
        const wait = Math.min(Number(r.headers.get('retry-after')) || 1, 10);
        await new Promise((res) => setTimeout(res, wait * 1000));
        continue;
      }
      if (!r.ok) throw await toApiError(r);
      const text = await r.text();
      try {
        return { status: r.status, body: text ? JSON.parse(text) : null };
      } catch {
        throw new ApiError(r.status, 'http', 'not_json', `${method} ${path} answered ${r.status} with a body that is not JSON`, text);
      }
    }
  }

  return {
    url: o.url,
    get: async <T>(path: string, query?: Query) => (await call('GET', path, query)).body as T,
    post: async <T>(path: string, body: unknown, query?: Query) => (await call('POST', path, query, body)) as { status: number; body: T },
    del: async <T>(path: string, query?: Query) => (await call('DELETE', path, query)).body as T,
  };
}
