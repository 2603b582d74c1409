// Tells each agent whose gRPC stream this replica holds how far its telemetry is committed
// (ControlMessage.telemetry_committed, proto/hcp/v1/gateway.proto): the stream's contiguous
// committed seq (watermarks.ts), below which the agent may delete its spool.
// - At connect, right after the HelloAck: read from the ledger, starting at the Hello's
//   SpoolState.first_seq (below it the agent holds nothing: gone) or at what is known already;
//   streams opening together share the statement (db/coalescer.ts).
// - Whenever it rises: at once for this replica's own commits, at most once per minIntervalMs per
//   site (a coalesced send carries the latest value).
// - Commits by other replicas (MQTT shared subscriptions spread ingest over them) are read with
//   one statement over the ledger for every stream held here, every pollMs.
// An agent without a spool (an older agent: Hello.spool unset) is told too; it ignores the message.
import type { Logger } from 'pino';
import type { SpoolState, TelemetryCommitted } from '../../proto/gen/hcp/v1/gateway.js';
import type { Db } from '../db/client.js';
import { createCoalescer } from '../db/coalescer.js';
import { ledgerWatermarks, type WatermarkAsk } from '../db/telemetry-ledger.js';
import type { Watermarks } from './watermarks.js';

export interface CommitNotifierDeps {
  db: Pick<Db, 'query'>;
  watermarks: Watermarks;
  log: Logger;
  /** counts each message sent */
  sent?: () => void;
  pollMs?: number;
  minIntervalMs?: number;
  now?: () => number;
}

export interface OpenedStream {
  site: string;
  /** the Hello's spool stream, or its agent_session */
  stream: string;
  spool?: SpoolState;
  send(m: TelemetryCommitted): void;
  /** whose stream it is: closed() with another token leaves a newer stream alone */
  token: unknown;
}

interface Held extends OpenedStream {
  lastSent: number;
  lastSentAt: number;
  timer: NodeJS.Timeout | null;
  ready: boolean;
}

export interface CommitNotifier {
  /** an agent's stream is open here (after its HelloAck); sends the first TelemetryCommitted */
  opened(o: OpenedStream): Promise<void>;
  /** AgentMessage.spool_state: what is below first_seq is gone */
  spool(site: string, token: unknown, s: SpoolState): void;
  closed(site: string, token: unknown): void;
  close(): void;
}

const WARN_EVERY_MS = 10_000;

export function createCommitNotifier(d: CommitNotifierDeps): CommitNotifier {
  const now = d.now ?? Date.now;
  const minIntervalMs = d.minIntervalMs ?? 250;
  const held = new Map<string, Held>();
  // the streams opening together (a fleet reconnecting) are read in one statement
  const readAtConnect = createCoalescer<WatermarkAsk, number>({ maxItems: 2000, timeoutMs: 15_000, run: (asks) => ledgerWatermarks(d.db, asks) });
  let lastWarn = -Infinity;
  // rate-limited: an agent can trigger these
  const warn = (err: unknown, what: string, ctx: Record<string, unknown> = {}) => {
    if (now() - lastWarn < WARN_EVERY_MS) return;
    lastWarn = now();
    d.log.warn({ ...(err ? { err: (err as Error).message } : {}), ...ctx }, what);
  };

  const sendNow = (h: Held) => {
    if (h.timer) clearTimeout(h.timer);
    h.timer = null;
    const seq = d.watermarks.get(h.site, h.stream);
    if (seq === h.lastSent && h.lastSentAt > 0) return;
    h.lastSent = seq;
    h.lastSentAt = now();
    try {
      h.send({ stream: h.stream, seq });
      d.sent?.();
    } catch (err) {
      warn(err, 'telemetry committed not sent');
    }
  };
  const schedule = (h: Held) => {
    if (!h.ready || h.timer) return;
    const wait = h.lastSentAt + minIntervalMs - now();
    if (wait <= 0) sendNow(h);
    else {
      h.timer = setTimeout(() => sendNow(h), wait);
      h.timer.unref();
    }
  };

  const unlisten = d.watermarks.onAdvance((site, stream) => {
    const h = held.get(site);
    if (h && h.stream === stream) schedule(h);
  });

  const applySpool = (site: string, stream: string, s: SpoolState) => {
    // a spool state that cannot be (past 2^53, first after next) is not believed: it would move
    // the watermark and the jump guard (sequence-tracker.ts) to where no batch is
    if (!Number.isSafeInteger(s.firstSeq) || !Number.isSafeInteger(s.nextSeq) || s.firstSeq < 1 || s.firstSeq > s.nextSeq) {
      warn(null, 'spool state ignored: first_seq and next_seq are not 1 <= first_seq <= next_seq < 2^53', { site, stream, firstSeq: s.firstSeq, nextSeq: s.nextSeq });
      return;
    }
    d.watermarks.spool(site, stream, s.firstSeq, s.nextSeq);
  };

  let polling = false;
  const poll = async () => {
    if (polling || held.size === 0) return;
    polling = true;
    try {
      const hs = [...held.values()].filter((h) => h.ready);
      const asks = hs.map((h) => ({ site: h.site, stream: h.stream, from: d.watermarks.get(h.site, h.stream) + 1 }));
      const marks = await ledgerWatermarks(d.db, asks);
      hs.forEach((h, i) => d.watermarks.raise(h.site, h.stream, marks[i]!));
    } catch (err) {
      warn(err, 'telemetry ledger read failed; will retry');
    } finally {
      polling = false;
    }
  };
  const timer = setInterval(() => void poll(), d.pollMs ?? 1000);
  timer.unref();

  return {
    async opened(o) {
      const prev = held.get(o.site);
      if (prev?.timer) clearTimeout(prev.timer);
      const h: Held = { ...o, lastSent: -1, lastSentAt: 0, timer: null, ready: false };
      held.set(o.site, h);
      if (o.spool) applySpool(o.site, o.stream, o.spool);
      // known already (this replica committed or read it), else from the spool's first seq, else
      // from the stream's lowest ledgered seq
      const known = d.watermarks.get(o.site, o.stream);
      const from = known > 0 ? known + 1 : o.spool && o.spool.firstSeq > 0 ? o.spool.firstSeq : 0;
      try {
        d.watermarks.raise(o.site, o.stream, await readAtConnect({ site: o.site, stream: o.stream, from }));
      } catch (err) {
        // the periodic read tries again; the agent hears what is known meanwhile
        warn(err, 'telemetry ledger read failed at connect; will retry');
      }
      if (held.get(o.site) !== h) return;
      h.ready = true;
      sendNow(h);
    },
    spool(site, token, s) {
      const h = held.get(site);
      if (!h || h.token !== token || (s.stream && s.stream !== h.stream)) return;
      applySpool(site, h.stream, s);
    },
    closed(site, token) {
      const h = held.get(site);
      if (!h || h.token !== token) return;
      if (h.timer) clearTimeout(h.timer);
      held.delete(site);
    },
    close() {
      clearInterval(timer);
      unlisten();
      for (const h of held.values()) if (h.timer) clearTimeout(h.timer);
      held.clear();
    },
  };
}
