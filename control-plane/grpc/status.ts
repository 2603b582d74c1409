// gRPC errors carry a stable reason code in the `hcp-reason` trailer, so clients branch on the
// code and never on message text (STYLE.md, the lesson from Nomad).
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';

export const REASON_KEY = 'hcp-reason';

export function grpcError(code: status, reason: string, details: string): Partial<StatusObject> & { code: status; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  metadata.set(REASON_KEY, reason);
  return { code, details, metadata };
}
