// Typed errors with a stable code; REST and gRPC map them to statuses in one place each.
export type ErrorCode =
  | 'not_found'
  | 'invalid_argument'
  | 'conflict'
  | 'unavailable'
  | 'unauthenticated'
  | 'permission_denied'
  | 'rate_limited'
  | 'payload_too_large'
  | 'internal';

export class HcpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** a machine-readable reason, e.g. 'unknown_site', 'device_busy' */
    readonly reason: string = code,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'HcpError';
  }
}

export const notFound = (what: string, id: string) =>
  new HcpError('not_found', `${what} ${JSON.stringify(id)} not found`, `unknown_${what}`, { [what]: id });
