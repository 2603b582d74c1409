// Warnings a remote client can trigger (a bad login, a forbidden publish) are logged at most a
// few times per window per kind, so a client cannot flood the log. Kinds are the broker's own
// constants, never strings from the wire, so the table stays small; what was held back is
// counted and reported with the next line that gets through.
import type { Logger } from 'pino';

export type LimitedLog = (kind: string, fields: Record<string, unknown>, msg: string) => void;

export function limitedLog(log: Logger, o: { perWindow?: number; windowMs?: number; now?: () => number } = {}): LimitedLog {
  const perWindow = o.perWindow ?? 5;
  const windowMs = o.windowMs ?? 10_000;
  const now = o.now ?? Date.now;
  const kinds = new Map<string, { windowStart: number; logged: number; suppressed: number }>();
  return (kind, fields, msg) => {
    const t = now();
    let k = kinds.get(kind);
    if (!k) kinds.set(kind, (k = { windowStart: t, logged: 0, suppressed: 0 }));
    if (t - k.windowStart >= windowMs) {
      k.windowStart = t;
      k.logged = 0;
    }
    if (k.logged >= perWindow) {
      k.suppressed++;
      return;
    }
    k.logged++;
    const suppressed = k.suppressed;
    k.suppressed = 0;
    log.warn({ ...fields, kind, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
  };
}
