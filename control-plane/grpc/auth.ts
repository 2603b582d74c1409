// The caller of a gRPC call: the same API keys as REST, in `authorization: Bearer <key>`
// metadata; the same roles, the same per-key rate. A failure is an HcpError, which the services
// turn into UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED with the reason in the
// hcp-reason trailer.
import { randomUUID } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import type { KeyRing } from '../auth/key-ring.js';
import type { RateLimiter } from '../auth/rate-limit.js';
import { can, type Permission, type Principal } from '../auth/roles.js';
import { bearerOf } from '../auth/secrets.js';
import { HcpError } from '../errors.js';
import { acceptRequestId } from '../request-context.js';

const first = (md: Metadata, key: string) => {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
};

/** the principal behind a call's metadata, or null when it has no valid key */
export function principalOfMetadata(ring: KeyRing, md: Metadata): Principal | null {
  return ring.authenticate(bearerOf(first(md, 'authorization')));
}

export function requestIdOf(md: Metadata): string {
  return acceptRequestId(first(md, 'x-request-id')) ?? randomUUID();
}

export function authorizeCall(o: { ring: KeyRing; limiter: RateLimiter }, md: Metadata, needed: Permission): Principal {
  const token = bearerOf(first(md, 'authorization'));
  const p = o.ring.authenticate(token);
  if (!p) {
    throw token
      ? new HcpError('unauthenticated', 'the API key is not valid (unknown or revoked)', 'bad_key')
      : new HcpError('unauthenticated', 'an API key is required: authorization: Bearer <key> metadata', 'missing_key');
  }
  const wait = o.limiter.take(p.keyId);
  if (wait !== null) throw new HcpError('rate_limited', `key ${p.name} is over its request rate; retry in ${wait} s`, 'rate_limited');
  if (!can(p, needed)) throw new HcpError('permission_denied', `role ${p.role} may not ${needed} (key ${p.name})`, 'forbidden');
  return p;
}
