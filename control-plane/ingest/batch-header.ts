// A TelemetryBatch's identity without its samples: the scalar fields, read the way the generated
// decoder reads them (last one wins; a uint64 past 2^53 throws), while the repeated sample
// messages are skipped by their length prefix, not decoded. Ingest reads this first, so a batch
// it must refuse (a duplicate, a bad seq, a writer without room) costs a walk over a few thousand
// tags instead of building thousands of sample objects. Under overload most batches are refused
// re-sends, and decoding them was what took the control plane's CPU (docs/reliability.md
// "Refused before it is decoded").
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

export interface BatchHeader {
  siteId: string;
  seq: number;
  sentAtMs: number;
  agentSession: string;
  /** field 7; '' when absent */
  stream: string;
}

const safe = (v: bigint | string | number): number => {
  const n = Number(String(v));
  if (!Number.isSafeInteger(n)) throw new Error('value is outside the safe integer range');
  return n;
};

/** throws on bytes that are no protobuf message (as TelemetryBatch.decode does, and on a field number 0) */
export function peekBatchHeader(payload: Uint8Array): BatchHeader {
  const r = new BinaryReader(payload);
  const h: BatchHeader = { siteId: '', seq: 0, sentAtMs: 0, agentSession: '', stream: '' };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) h.siteId = r.string();
    else if (field === 2 && wire === WireType.Varint) h.seq = safe(r.uint64());
    else if (field === 3 && wire === WireType.Varint) h.sentAtMs = safe(r.int64());
    else if (field === 4 && wire === WireType.LengthDelimited) h.agentSession = r.string();
    else if (field === 7 && wire === WireType.LengthDelimited) h.stream = r.string();
    else if (wire === WireType.EndGroup) break;
    else r.skip(wire, field);
  }
  return h;
}
