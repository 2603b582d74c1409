// Who is asking, and under which request id, for the length of one REST request or gRPC call.
// Held in AsyncLocalStorage so the audit log records the request id of whatever a request set
// in motion without threading it through every operation's signature.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Principal } from './auth/roles.js';
import type { AuditWriter } from './db/audit-writer.js';

export interface RequestContext {
  readonly requestId: string;
  readonly principal?: Principal;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runInRequest<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}

/** a client's x-request-id when it is a plain token (logged and audited as given), else null */
export function acceptRequestId(given: string | undefined | null): string | null {
  return given && /^[A-Za-z0-9._:=-]{1,128}$/.test(given) ? given : null;
}

/** an audit writer that records the request id of whatever request an entry was written in */
export function auditWithRequestIds(w: AuditWriter): AuditWriter {
  return {
    ...w,
    write(e) {
      const requestId = storage.getStore()?.requestId;
      w.write(requestId ? { ...e, details: { ...e.details, request_id: requestId } } : e);
    },
  };
}
