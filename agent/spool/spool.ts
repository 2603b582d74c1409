// The agent's telemetry spool on disk (docs/reliability.md "Agent spool"): every encoded
// TelemetryBatch is appended here before it is sent, and deleted only when the control plane
// reports it committed (ControlMessage.telemetry_committed), so neither an agent restart nor a
// broker or control-plane outage loses a batch.
//
// Layout, in <stateDir>/spool/:
// - meta.json: the stream id (random when the spool is made), the highest seq that may have been
//   handed out (`reserved`) and the last committed seq. Replaced whole and fsynced.
// - <first seq, 20 digits>.seg: append-only segments of records
//     u32 length | u32 CRC-32 (of the seq bytes, then the payload) | u64 seq | payload
//   (little endian). A new segment is started at every open and when the active one reaches
//   segmentBytes, so trimming and the byte bound free whole files.
//
// Reading back: at open every segment's record headers are walked (so 24 h of a big site, tens of
// GiB, opens in a second) and the newest segment is also CRC-checked whole (that is where a power
// loss tears); an older segment's records are CRC-checked when read. A segment is read up to its
// first bad record (torn, zero-filled or corrupt); the rest of it is skipped, counted and logged,
// and the other segments still replay.
//
// Seqs are never reused within a stream. A seq is reserved in meta.json (fsynced) before it is
// appended, RESERVE_STEP at a time. After an unclean stop the seqs between the last record found
// and the reservation may have been sent (the fsync cadence lets a batch go out before it is
// durable), so they are filled with placeholders (an empty batch, from the caller) and the
// control plane's watermark does not wait for them; without a placeholder they are skipped.
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, truncateSync, unlinkSync, writeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import type { SpoolState } from '../../proto/gen/hcp/v1/gateway.js';

export type { SpoolState };

export const HEADER_BYTES = 16;
/** a record longer than this is a corrupt header, not a batch (a 20,000-ASIC batch is ~2.4 MB) */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** seqs reserved per meta.json write: at most this many placeholders after a power loss */
export const RESERVE_STEP = 256;
const META = 'meta.json';
const SEG = /^(\d{20})\.seg$/;

export interface SpoolOptions {
  /** the spool's own directory (<stateDir>/spool) */
  dir: string;
  /** the bound: above it the oldest segment is deleted (and counted) */
  maxBytes: number;
  /** a segment is closed and a new one started once it holds this many bytes */
  segmentBytes: number;
  /** fsync cadence of the active segment; 0 = every append */
  fsyncMs: number;
  log: Logger;
  /** the record to fill a seq that may have been sent before an unclean stop but is not held */
  placeholder?: (seq: number, stream: string) => Uint8Array;
  /** the oldest segment was deleted at the bound: first_seq rose without a commit */
  onDropped?: (d: { segments: number; batches: number; state: SpoolState }) => void;
  /** a bad record: the rest of its segment was skipped */
  onCorrupt?: (c: { segment: string; offset: number; reason: string }) => void;
}

export interface SpoolRecord {
  seq: number;
  payload: Buffer;
}

export interface SpoolStats {
  droppedSegments: number;
  droppedBatches: number;
  /** segment tails skipped at a bad record */
  corruptSkipped: number;
  /** seqs filled with a placeholder after an unclean stop */
  placeholders: number;
  /** commits ignored because they were ahead of what was appended */
  commitsAhead: number;
}

export interface Spool {
  readonly stream: string;
  /** appends a record; seq must be state().nextSeq. Durable within fsyncMs. */
  append(seq: number, payload: Uint8Array): void;
  /** every seq up to `seq` is committed: deletes the segments wholly at or below it */
  commit(seq: number): void;
  /** the highest committed seq (0 = none) */
  committed(): number;
  /** up to `limit` held, uncommitted records with seq ≥ fromSeq, in seq order, CRC-checked */
  pending(fromSeq: number, limit: number): SpoolRecord[];
  /** held, uncommitted seqs, oldest first (no payloads read) */
  pendingSeqs(fromSeq: number, limit: number): number[];
  pendingCount(): number;
  state(): SpoolState;
  stats(): SpoolStats;
  /** fsyncs the active segment now */
  sync(): void;
  /** fsyncs and closes; idempotent */
  close(): void;
}

interface Entry {
  seq: number;
  offset: number;
  length: number;
}

interface Segment {
  first: number;
  path: string;
  bytes: number;
  records: Entry[];
  /** CRC-checked already (the active segment, and the newest at open) */
  verified: boolean;
}

interface Meta {
  stream: string;
  reserved: number;
  committed: number;
}

/** a file replaced whole and durable: written, fsynced, renamed, and the directory fsynced */
function writeDurable(dir: string, file: string, text: string): void {
  const tmp = join(dir, `${file}.tmp`);
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, file));
  syncDir(dir);
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const segName = (first: number) => `${String(first).padStart(20, '0')}.seg`;

function recordCrc(seqBytes: Buffer, payload: Uint8Array): number {
  return crc32(payload, crc32(seqBytes));
}

function readMeta(dir: string): Meta | null {
  let text: string;
  try {
    text = readFileSync(join(dir, META), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const m = JSON.parse(text) as Partial<Meta>;
  if (typeof m.stream !== 'string' || !m.stream || !Number.isSafeInteger(m.reserved) || !Number.isSafeInteger(m.committed)) {
    throw new Error(`${join(dir, META)}: not a spool meta file`);
  }
  return m as Meta;
}

/**
 * Walks a segment's record headers. Stops at the first record that cannot be right: past the end
 * of the file, too long, a seq not above the one before (or, with `verify`, a CRC mismatch).
 */
function scanSegment(fd: number, size: number, first: number, after: number, verify: boolean): { records: Entry[]; bad: { offset: number; reason: string } | null } {
  const records: Entry[] = [];
  const header = Buffer.alloc(HEADER_BYTES);
  let offset = 0;
  let prev = after;
  while (offset < size) {
    if (size - offset < HEADER_BYTES) return { records, bad: { offset, reason: 'torn header' } };
    readSync(fd, header, 0, HEADER_BYTES, offset);
    const length = header.readUInt32LE(0);
    const seq = Number(header.readBigUInt64LE(8));
    if (length > MAX_RECORD_BYTES) return { records, bad: { offset, reason: 'bad length' } };
    if (offset + HEADER_BYTES + length > size) return { records, bad: { offset, reason: 'torn record' } };
    if (!Number.isSafeInteger(seq) || seq <= prev || (records.length === 0 && seq !== first)) return { records, bad: { offset, reason: 'bad seq' } };
    if (verify) {
      const payload = Buffer.alloc(length);
      readSync(fd, payload, 0, length, offset + HEADER_BYTES);
      if (recordCrc(header.subarray(8, 16), payload) !== header.readUInt32LE(4)) return { records, bad: { offset, reason: 'bad crc' } };
    }
    records.push({ seq, offset, length });
    prev = seq;
    offset += HEADER_BYTES + length;
  }
  return { records, bad: null };
}

export function openSpool(o: SpoolOptions): Spool {
  if (!(o.segmentBytes > 0) || !(o.maxBytes >= o.segmentBytes)) throw new RangeError('spool: maxBytes must be at least segmentBytes');
  mkdirSync(o.dir, { recursive: true });
  const stats: SpoolStats = { droppedSegments: 0, droppedBatches: 0, corruptSkipped: 0, placeholders: 0, commitsAhead: 0 };
  let meta = readMeta(o.dir);
  const made = !meta;
  if (!meta) {
    meta = { stream: randomUUID(), reserved: 0, committed: 0 };
    writeDurable(o.dir, META, JSON.stringify(meta));
  }
  const stream = meta.stream;
  let reserved = meta.reserved;
  let committedSeq = meta.committed;

  // Only a closed segment is ever found bad (the active one was written by this process), so the
  // bad tail is cut off: it is counted once, not at every open.
  const corrupt = (seg: Segment, offset: number, reason: string) => {
    stats.corruptSkipped++;
    o.log.error({ segment: seg.path, offset, reason, bytes: seg.bytes - offset }, 'spool segment unreadable from here: the rest of it is skipped');
    o.onCorrupt?.({ segment: seg.path, offset, reason });
    truncateSync(seg.path, offset);
    bytes -= seg.bytes - offset;
    seg.bytes = offset;
  };

  // the segments found, oldest first
  const names = readdirSync(o.dir).filter((f) => SEG.test(f)).sort();
  const segments: Segment[] = [];
  let bytes = 0;
  let lastSeq = 0;
  for (const [i, name] of names.entries()) {
    const path = join(o.dir, name);
    const first = Number(SEG.exec(name)![1]);
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    let scanned;
    try {
      scanned = scanSegment(fd, size, first, lastSeq, i === names.length - 1);
    } finally {
      closeSync(fd);
    }
    const seg: Segment = { first, path, bytes: size, records: scanned.records, verified: i === names.length - 1 };
    if (seg.records.length === 0 || seg.records.at(-1)!.seq <= committedSeq) {
      // nothing uncommitted in it (an empty file left by a crash, or committed before the stop)
      bytes += size;
      if (scanned.bad) corrupt(seg, scanned.bad.offset, scanned.bad.reason);
      unlinkSync(path);
      bytes -= seg.bytes;
      continue;
    }
    bytes += size;
    if (scanned.bad) corrupt(seg, scanned.bad.offset, scanned.bad.reason);
    lastSeq = seg.records.at(-1)!.seq;
    segments.push(seg);
  }
  let nextSeq = Math.max(lastSeq, committedSeq) + 1;

  let active: { seg: Segment; fd: number } | null = null;
  let dirty = false;
  let closed = false;

  const saveMeta = () => writeDurable(o.dir, META, JSON.stringify({ stream, reserved, committed: committedSeq } satisfies Meta));

  const sync = () => {
    if (active && dirty) fsyncSync(active.fd);
    dirty = false;
  };

  const closeActive = () => {
    if (!active) return;
    sync();
    closeSync(active.fd);
    active = null;
  };

  const deleteSegment = (seg: Segment) => {
    if (active?.seg === seg) closeActive();
    unlinkSync(seg.path);
    bytes -= seg.bytes;
    segments.splice(segments.indexOf(seg), 1);
  };

  const countPending = () => segments.reduce((n, s) => n + s.records.filter((r) => r.seq > committedSeq).length, 0);
  let pendingN = countPending();

  const state = (): SpoolState => {
    const oldest = segments.find((s) => s.records.some((r) => r.seq > committedSeq));
    const first = oldest?.records.find((r) => r.seq > committedSeq)?.seq ?? nextSeq;
    return { stream, firstSeq: first, nextSeq, bytes };
  };

  function append(seq: number, payload: Uint8Array): void {
    if (closed) throw new Error('spool: closed');
    if (seq !== nextSeq) throw new RangeError(`spool: append seq ${seq}, expected ${nextSeq}`);
    if (seq > reserved) {
      // reserved (durably) before it can be sent: a restart never hands it out again
      reserved = seq + RESERVE_STEP - 1;
      saveMeta();
    }
    const length = HEADER_BYTES + payload.length;
    if (active && active.seg.bytes > 0 && active.seg.bytes + length > o.segmentBytes) closeActive();
    if (!active) {
      const seg: Segment = { first: seq, path: join(o.dir, segName(seq)), bytes: 0, records: [], verified: true };
      active = { seg, fd: openSync(seg.path, 'a') };
      segments.push(seg);
      // the new file's name must survive a power loss with its contents
      syncDir(o.dir);
    }
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(payload.length, 0);
    header.writeBigUInt64LE(BigInt(seq), 8);
    header.writeUInt32LE(recordCrc(header.subarray(8, 16), payload), 4);
    const seg = active.seg;
    writeSync(active.fd, header);
    writeSync(active.fd, payload);
    seg.records.push({ seq, offset: seg.bytes, length: payload.length });
    seg.bytes += length;
    bytes += length;
    nextSeq = seq + 1;
    pendingN++;
    dirty = true;
    if (o.fsyncMs === 0) sync();
    enforceBound();
  }

  function enforceBound(): void {
    let segs = 0;
    let batches = 0;
    while (bytes > o.maxBytes && segments.length > 1) {
      const oldest = segments[0]!;
      const lost = oldest.records.filter((r) => r.seq > committedSeq).length;
      deleteSegment(oldest);
      pendingN -= lost;
      segs++;
      batches += lost;
    }
    if (!segs) return;
    stats.droppedSegments += segs;
    stats.droppedBatches += batches;
    const s = state();
    o.log.warn({ segments: segs, batches, firstSeq: s.firstSeq, bytes, maxBytes: o.maxBytes }, 'spool full: the oldest segment was deleted before it was committed');
    o.onDropped?.({ segments: segs, batches, state: s });
  }

  function readRecord(seg: Segment, e: Entry, fd: number): Buffer | null {
    const buf = Buffer.alloc(HEADER_BYTES + e.length);
    const n = readSync(fd, buf, 0, buf.length, e.offset);
    if (n !== buf.length) return null;
    if (seg.verified) return buf.subarray(HEADER_BYTES);
    if (recordCrc(buf.subarray(8, 16), buf.subarray(HEADER_BYTES)) !== buf.readUInt32LE(4)) return null;
    return buf.subarray(HEADER_BYTES);
  }

  function pending(fromSeq: number, limit: number): SpoolRecord[] {
    const out: SpoolRecord[] = [];
    const from = Math.max(fromSeq, committedSeq + 1);
    for (const seg of [...segments]) {
      if (out.length >= limit) break;
      if (!seg.records.length || seg.records.at(-1)!.seq < from) continue;
      const fd = openSync(seg.path, 'r');
      try {
        for (let i = 0; i < seg.records.length && out.length < limit; i++) {
          const e = seg.records[i]!;
          if (e.seq < from) continue;
          const payload = readRecord(seg, e, fd);
          if (!payload) {
            // the rest of this segment is unreadable; the next one still replays
            const lost = seg.records.length - i;
            seg.records.length = i;
            pendingN -= lost;
            corrupt(seg, e.offset, 'bad crc');
            break;
          }
          out.push({ seq: e.seq, payload });
        }
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }

  function pendingSeqs(fromSeq: number, limit: number): number[] {
    const out: number[] = [];
    const from = Math.max(fromSeq, committedSeq + 1);
    for (const seg of segments) {
      if (!seg.records.length || seg.records.at(-1)!.seq < from) continue;
      for (const e of seg.records) {
        if (out.length >= limit) return out;
        if (e.seq >= from) out.push(e.seq);
      }
    }
    return out;
  }

  function commit(seq: number): void {
    if (closed) return;
    if (seq >= nextSeq) {
      stats.commitsAhead++;
      o.log.warn({ seq, highest: nextSeq - 1, stream }, 'commit ahead of what this spool has made: ignored');
      return;
    }
    if (seq <= committedSeq) return;
    committedSeq = seq;
    pendingN = countPending();
    const done = segments.filter((s) => s.records.length === 0 || s.records.at(-1)!.seq <= seq);
    if (!done.length) return;
    // the committed seq is saved before the files go, so an empty spool still knows where it is
    saveMeta();
    for (const s of done) deleteSegment(s);
  }

  if (!made) o.log.info({ stream, segments: segments.length, bytes, pending: pendingN, nextSeq, committed: committedSeq }, 'spool opened');
  // seqs that may have gone out before an unclean stop but are not held
  if (nextSeq <= reserved) {
    const from = nextSeq;
    const to = reserved;
    if (o.placeholder) {
      for (let s = from; s <= to; s++) append(s, o.placeholder(s, stream));
      stats.placeholders += to - from + 1;
    } else {
      nextSeq = to + 1;
    }
    o.log.warn({ from, to, placeholders: Boolean(o.placeholder) }, 'seqs reserved before an unclean stop are not in the spool: filled so none is reused or waited for');
  }
  const timer = o.fsyncMs > 0 ? setInterval(sync, o.fsyncMs) : null;
  timer?.unref();

  return {
    stream,
    append,
    commit,
    committed: () => committedSeq,
    pending,
    pendingSeqs,
    pendingCount: () => pendingN,
    state,
    stats: () => ({ ...stats }),
    sync,
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      closeActive();
      // a clean stop: nothing beyond nextSeq was handed out
      reserved = nextSeq - 1;
      saveMeta();
    },
  };
}
