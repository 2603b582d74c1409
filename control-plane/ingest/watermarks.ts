// The contiguous committed seq of each telemetry stream (site, TelemetryBatch.stream or
// agent_session): every batch of the stream up to it is committed to the ledger (stored, or
// refused for good) or gone (below the agent's SpoolState.first_seq: the agent dropped it at its
// spool's bound). It is what TelemetryCommitted tells the agent (commit-notifier.ts), and what
// lets ingest drop a replay without asking the database (sequence-tracker.ts).
//
// It moves three ways: this replica's commits (telemetry-writer.ts onCommitted), out of order too
// (a seq above the watermark waits in `above` until the gap below it fills); the ledger as read
// from the database (raise(): other replicas' commits); and the agent's spool state (floor()).
// Memory is bounded: at most maxAbove waiting seqs per stream (past it new ones are left to the
// database read) and maxStreamsPerSite streams per site (the least recently touched goes; an
// agent without a spool has a new stream every start).
export interface WatermarkOptions {
  maxAbove?: number;
  maxStreamsPerSite?: number;
}

interface Mark {
  /** every seq from base to watermark is in the ledger (base - 1 and below: gone or before) */
  watermark: number;
  base: number;
  above: Set<number>;
  /** the agent's next_seq - 1 (Hello.spool / spool_state): what the jump guard may trust */
  agentLast: number;
}

export type AdvanceListener = (site: string, stream: string, watermark: number) => void;

export class Watermarks {
  private readonly sites = new Map<string, Map<string, Mark>>();
  private readonly listeners = new Set<AdvanceListener>();
  private readonly maxAbove: number;
  private readonly maxStreams: number;

  constructor(o: WatermarkOptions = {}) {
    this.maxAbove = o.maxAbove ?? 10_000;
    this.maxStreams = o.maxStreamsPerSite ?? 8;
  }

  /** told whenever a stream's watermark rises */
  onAdvance(fn: AdvanceListener): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /** the stream's contiguous committed seq; 0 when nothing is known */
  get(site: string, stream: string): number {
    return this.sites.get(site)?.get(stream)?.watermark ?? 0;
  }

  /** the highest seq the agent said it made (spool next_seq - 1); 0 when unknown */
  agentLast(site: string, stream: string): number {
    return this.sites.get(site)?.get(stream)?.agentLast ?? 0;
  }

  /** a seq known to be in the ledger: a replay that needs no database round trip */
  isCommitted(site: string, stream: string, seq: number): boolean {
    const k = this.sites.get(site)?.get(stream);
    return !!k && seq >= k.base && (seq <= k.watermark || k.above.has(seq));
  }

  /** this replica committed these seqs */
  committed(site: string, stream: string, seqs: readonly number[]): void {
    const k = this.mark(site, stream);
    const before = k.watermark;
    for (const q of seqs) {
      if (q <= k.watermark) continue;
      if (q === k.watermark + 1) k.watermark = q;
      else if (k.above.size < this.maxAbove) k.above.add(q);
    }
    this.settle(site, stream, k, before);
  }

  /** the ledger says every seq from `from` (the stream's first unknown) up to `to` is committed */
  raise(site: string, stream: string, to: number): void {
    const k = this.mark(site, stream);
    const before = k.watermark;
    if (to > k.watermark) k.watermark = to;
    this.settle(site, stream, k, before);
  }

  /**
   * the agent holds nothing below firstSeq (its spool's oldest); nextSeq is the seq its next batch
   * gets. Seqs below firstSeq count as gone: the watermark jumps past them.
   */
  spool(site: string, stream: string, firstSeq: number, nextSeq: number): void {
    const k = this.mark(site, stream);
    if (nextSeq - 1 > k.agentLast) k.agentLast = nextSeq - 1;
    const before = k.watermark;
    if (firstSeq - 1 > k.watermark) {
      k.watermark = firstSeq - 1;
      k.base = firstSeq;
    }
    this.settle(site, stream, k, before);
  }

  private mark(site: string, stream: string): Mark {
    let streams = this.sites.get(site);
    if (!streams) this.sites.set(site, (streams = new Map()));
    let k = streams.get(stream);
    if (k) {
      // most recently touched last
      streams.delete(stream);
    } else {
      k = { watermark: 0, base: 1, above: new Set(), agentLast: 0 };
      if (streams.size >= this.maxStreams) streams.delete(streams.keys().next().value!);
    }
    streams.set(stream, k);
    return k;
  }

  private settle(site: string, stream: string, k: Mark, before: number): void {
    while (k.above.delete(k.watermark + 1)) k.watermark++;
    if (k.above.size) for (const q of k.above) if (q <= k.watermark) k.above.delete(q);
    if (k.watermark > before) for (const fn of this.listeners) fn(site, stream, k.watermark);
  }
}
