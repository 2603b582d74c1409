// Per-site sequence numbers of telemetry batches (TelemetryBatch.seq, +1 per batch within one
// agent session). A seq at or below the last one accepted in the same session is a replay, e.g. a
// QoS 1 redelivery (MQTT 3.1.1 §4.3.2: "at least once"), and is dropped; a step of more than one
// is a gap.
//
// A seq is believed only as far as time allows: the agent makes at most one batch per minimum
// sample interval (100 ms), so since the last accepted batch at most elapsed/100 ms batches can
// have been made, plus a margin for clock granularity and bursts. A seq beyond that (a corrupt or
// hostile 2^53 - 1) would silence the site until its agent restarted, since every real seq would
// then look like a replay; it is refused instead and the sequence stays where it was.
//
// Checking and accepting are apart: ingest checks a batch first and commits its seq only once the
// batch is accepted, so a batch refused later (every sample bad) does not move the sequence.
export type SeqVerdict =
  | { kind: 'ok'; missed: number }
  | { kind: 'duplicate' }
  | { kind: 'jump'; jump: number; allowed: number }
  | { kind: 'invalid' };

export interface SequenceTrackerOptions {
  now?: () => number;
  /** the agent's minimum sample interval (agent/config.ts) */
  minIntervalMs?: number;
  /** batches allowed beyond what the elapsed time explains */
  margin?: number;
}

export class SequenceTracker {
  private readonly last = new Map<string, { session: string; seq: number; atMs: number }>();
  private readonly now: () => number;
  private readonly minIntervalMs: number;
  private readonly margin: number;

  constructor(o: SequenceTrackerOptions = {}) {
    this.now = o.now ?? Date.now;
    this.minIntervalMs = o.minIntervalMs ?? 100;
    this.margin = o.margin ?? 100;
  }

  /** what accepting this batch would mean; changes nothing */
  check(site: string, session: string, seq: number): SeqVerdict {
    if (!Number.isSafeInteger(seq) || seq < 1) return { kind: 'invalid' };
    const prev = this.last.get(site);
    if (!prev || prev.session !== session) return { kind: 'ok', missed: 0 };
    if (seq <= prev.seq) return { kind: 'duplicate' };
    const jump = seq - prev.seq;
    const allowed = this.margin + Math.floor(Math.max(0, this.now() - prev.atMs) / this.minIntervalMs);
    if (jump > allowed) return { kind: 'jump', jump, allowed };
    return { kind: 'ok', missed: jump - 1 };
  }

  /** the batch was accepted: its seq is the one later batches follow */
  commit(site: string, session: string, seq: number): void {
    this.last.set(site, { session, seq, atMs: this.now() });
  }
}
