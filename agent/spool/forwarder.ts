// Sends what the spool holds until the control plane has committed it (docs/reliability.md
// "Agent spool"):
// - a live batch goes out at once (when the broker is connected);
// - a batch not committed `resendAfterMs` after its last send (or never sent: the broker was
//   down, or the agent restarted) is sent again, oldest first, with at most `window` re-sent
//   batches awaiting their commit at a time, so a backlog cannot flood a control plane that is
//   pushing back;
// - re-sends happen only while the control-plane stream is up, so a commit can come back.
// The stored bytes go out as they are: a replay keeps its stream, seq and sent_at.
import type { Logger } from 'pino';
import type { Spool } from './spool.js';

export interface ForwarderOptions {
  spool: Spool;
  /** hands a payload to the broker; false when it cannot now (not connected) */
  publish: (payload: Uint8Array) => boolean;
  /** re-sending makes sense now: the broker and the control-plane stream are both up */
  canResend: () => boolean;
  resendAfterMs: number;
  window: number;
  /** how often to look for batches to re-send; default min(1000, resendAfterMs) */
  tickMs?: number;
  now?: () => number;
  log: Logger;
  onResent?: (n: number) => void;
}

export interface Forwarder {
  /** a batch just appended to the spool */
  live(seq: number, payload: Uint8Array): void;
  /** the control plane committed everything up to seq */
  committed(seq: number): void;
  /** one re-send round now (after a reconnect, a commit, the timer) */
  round(): number;
  /** re-sent batches awaiting their commit */
  inFlight(): number;
  close(): void;
}

export function createForwarder(o: ForwarderOptions): Forwarder {
  const now = o.now ?? Date.now;
  // the last send of each uncommitted batch sent by this process, and whether it was a re-send
  const sent = new Map<number, { at: number; resend: boolean }>();
  // committed, or gone at the bound: nothing more to send
  const prune = () => {
    const c = o.spool.committed();
    const first = o.spool.state().firstSeq;
    for (const seq of sent.keys()) if (seq <= c || seq < first) sent.delete(seq);
  };
  const inFlight = () => {
    const t = now();
    let n = 0;
    for (const s of sent.values()) if (s.resend && t - s.at < o.resendAfterMs) n++;
    return n;
  };

  function round(): number {
    if (!o.canResend()) return 0;
    prune();
    const room = o.window - inFlight();
    if (room <= 0) return 0;
    const t = now();
    // every recently sent batch may be skipped on the way to `room` due ones
    const seqs = o.spool.pendingSeqs(0, room + sent.size);
    let n = 0;
    for (const seq of seqs) {
      if (n >= room) break;
      const last = sent.get(seq);
      if (last && t - last.at < o.resendAfterMs) continue;
      const [rec] = o.spool.pending(seq, 1);
      // unreadable (skipped as corrupt): the next one
      if (!rec || rec.seq !== seq) continue;
      if (!o.publish(rec.payload)) break;
      sent.set(seq, { at: t, resend: true });
      n++;
    }
    if (n) o.onResent?.(n);
    return n;
  }

  const timer = setInterval(() => {
    try {
      round();
    } catch (err) {
      o.log.error({ err }, 'spool re-send round failed');
    }
  }, o.tickMs ?? Math.min(1000, o.resendAfterMs));
  timer.unref();

  return {
    live(seq, payload) {
      if (o.publish(payload)) sent.set(seq, { at: now(), resend: false });
    },
    committed(seq) {
      o.spool.commit(seq);
      prune();
      round();
    },
    round,
    inFlight,
    close() {
      clearInterval(timer);
    },
  };
}
