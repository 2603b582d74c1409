// gRPC errors carry a stable reason code in the `hcp-reason` trailer, so clients branch on the
// code and never on message text (docs/conventions.md, the lesson from Nomad).
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';

export const REASON_KEY = 'hcp-reason';

/**
 * The details travel in the grpc-message trailer, percent-encoded (encodeURI). A message that
 * echoes what the client sent could break that: a 70,000-character site id passes the client's
 * HTTP/2 header list limit (64 KiB in Node), so the client never reads the status and the call
 * hangs to its deadline; a lone surrogate makes encodeURI throw. The details are cut to this many
 * characters, and a lone surrogate becomes U+FFFD.
 */
export const MAX_DETAILS = 1000;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function statusDetails(details: string): string {
  const chars = [...details.replace(LONE_SURROGATE, '\uFFFD')];
  return chars.length > MAX_DETAILS ? `${chars.slice(0, MAX_DETAILS).join('')}…` : chars.join('');
}

export function grpcError(code: status, reason: string, details: string): Partial<StatusObject> & { code: status; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  metadata.set(REASON_KEY, reason);
  return { code, details: statusDetails(details), metadata };
}
