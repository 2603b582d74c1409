// Per-site sequence numbers of telemetry batches (TelemetryBatch.seq, +1 per batch within one
// agent session). A seq at or below the last one seen in the same session is a replay, e.g. a
// QoS 1 redelivery (MQTT 3.1.1 §4.3.2: "at least once"), and is dropped; a jump is a gap.
export type SeqVerdict = { kind: 'ok'; missed: number } | { kind: 'duplicate' };

export class SequenceTracker {
  private readonly last = new Map<string, { session: string; seq: number }>();

  observe(site: string, session: string, seq: number): SeqVerdict {
    const prev = this.last.get(site);
    if (!prev || prev.session !== session) {
      this.last.set(site, { session, seq });
      return { kind: 'ok', missed: 0 };
    }
    if (seq <= prev.seq) return { kind: 'duplicate' };
    const missed = seq - prev.seq - 1;
    prev.seq = seq;
    return { kind: 'ok', missed };
  }
}
