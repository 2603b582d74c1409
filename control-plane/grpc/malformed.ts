// Bytes that do not decode as the method's message. grpc-js answers a request its deserializer
// throws on with INTERNAL ("Error deserializing request"), which says the server failed and
// carries no hcp-reason; the input is the client's fault. So the services are registered with
// deserializers that never throw: what does not decode becomes a marker, and each handler
// refuses it, after the key check, with INVALID_ARGUMENT and the reason malformed_message.
import type { ServiceDefinition } from '@grpc/grpc-js';

const MALFORMED = Symbol('hcp.malformed-message');

export interface Malformed {
  readonly [MALFORMED]: string;
}

export function isMalformed(m: unknown): m is Malformed {
  return typeof m === 'object' && m !== null && MALFORMED in m;
}

/** what the decoder said, for the status details */
export function malformedReason(m: Malformed): string {
  return m[MALFORMED];
}

/**
 * true when any string in a decoded message holds U+0000: PostgreSQL's text cannot store one, so a
 * request with one would pass the checks and fail at the database
 */
export function holdsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(holdsNul);
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) return Object.values(v).some(holdsNul);
  return false;
}

/** the message with every U+0000 in its strings replaced by U+FFFD (what PostgreSQL's text and jsonb can hold) */
export function withoutNul<T>(v: T): T {
  if (typeof v === 'string') return (v.includes('\u0000') ? v.replaceAll('\u0000', '\uFFFD') : v) as T;
  if (Array.isArray(v)) return (v.some(holdsNul) ? v.map(withoutNul) : v) as T;
  if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && holdsNul(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutNul(x)])) as T;
  }
  return v;
}

/** the service with request deserializers that return a Malformed marker instead of throwing */
export function tolerantService<S extends ServiceDefinition>(def: S): S {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(def)) {
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return { [MALFORMED]: err instanceof Error ? err.message : String(err) } satisfies Malformed;
        }
      },
    };
  }
  return out as S;
}
