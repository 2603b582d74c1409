// Per-stream sequence numbers of telemetry batches (TelemetryBatch.seq, +1 per batch within one
// stream: TelemetryBatch.stream, or agent_session for an agent without a spool). Whether a batch
// is new is the ledger's to decide (control-plane/db/telemetry-writer.ts): here a seq at or below
// the stream's contiguous committed watermark (watermarks.ts) is a cheap `duplicate` — a QoS 1
// redelivery (MQTT 3.1.1 §4.3.2: "at least once") or a re-send of what is already committed —
// and anything else is passed on, an out-of-order re-send below the highest seq seen too (an
// agent re-sends what was not committed, oldest first, while live batches go at once).
//
// A seq is believed only as far as time allows: the agent makes at most one batch per minimum
// sample interval (100 ms), so since the highest seq was taken at most elapsed/100 ms batches can
// have been made, plus a margin for clock granularity and bursts. A seq beyond that (a corrupt or
// hostile 2^53 - 1) would make every real seq look old; it is refused instead and the sequence
// stays where it was. What the agent says of its spool (SpoolState.next_seq, watermarks.ts
// agentLast) counts as taken, so a spool replay after a control-plane restart is believed.
//
// Checking and taking are apart: ingest checks a batch first and marks it taken only once the
// writer has admitted it, so a batch refused for backpressure does not move the sequence.
import type { Watermarks } from './watermarks.js';

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
  /** the committed watermarks; without them nothing is a cheap duplicate */
  watermarks?: Watermarks;
  /** streams kept per site (the least recently taken goes) */
  maxStreamsPerSite?: number;
}

export class SequenceTracker {
  private readonly top = new Map<string, Map<string, { seq: number; atMs: number }>>();
  private readonly now: () => number;
  private readonly minIntervalMs: number;
  private readonly margin: number;
  private readonly marks: Watermarks | undefined;
  private readonly maxStreams: number;

  constructor(o: SequenceTrackerOptions = {}) {
    this.now = o.now ?? Date.now;
    this.minIntervalMs = o.minIntervalMs ?? 100;
    this.margin = o.margin ?? 100;
    this.marks = o.watermarks;
    this.maxStreams = o.maxStreamsPerSite ?? 8;
  }

  /** what taking this batch would mean; changes nothing */
  check(site: string, stream: string, seq: number): SeqVerdict {
    if (!Number.isSafeInteger(seq) || seq < 1) return { kind: 'invalid' };
    if (this.marks?.isCommitted(site, stream, seq)) return { kind: 'duplicate' };
    const prev = this.top.get(site)?.get(stream);
    const agentLast = this.marks?.agentLast(site, stream) ?? 0;
    if (!prev && agentLast === 0) return { kind: 'ok', missed: 0 };
    const highest = Math.max(prev?.seq ?? 0, agentLast);
    if (seq <= highest) return { kind: 'ok', missed: 0 };
    const jump = seq - highest;
    const since = prev && prev.seq >= agentLast ? prev.atMs : this.now();
    const allowed = this.margin + Math.floor(Math.max(0, this.now() - since) / this.minIntervalMs);
    if (jump > allowed) return { kind: 'jump', jump, allowed };
    return { kind: 'ok', missed: prev ? jump - 1 : 0 };
  }

  /** the batch was taken: a higher seq is the one later batches are measured from */
  taken(site: string, stream: string, seq: number): void {
    let streams = this.top.get(site);
    if (!streams) this.top.set(site, (streams = new Map()));
    const prev = streams.get(stream);
    if (prev) streams.delete(stream);
    else if (streams.size >= this.maxStreams) streams.delete(streams.keys().next().value!);
    streams.set(stream, prev && prev.seq >= seq ? prev : { seq, atMs: this.now() });
  }
}
