// The on-disk spool with real files in a temporary directory: replay across a reopen, seq
// continuity (never reused, even after an unclean stop), the byte bound, trimming by commit,
// torn and corrupt records, and a commit ahead of what was made.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HEADER_BYTES, openSpool, RESERVE_STEP, type SpoolOptions } from './spool.js';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'hcp-spool-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const payload = (seq: number, size = 100) => Buffer.alloc(size, seq % 251);
const open = (dir: string, o: Partial<SpoolOptions> = {}) => openSpool({ dir, maxBytes: 1 << 30, segmentBytes: 1000, fsyncMs: 0, log, ...o });
const segs = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
const fill = (s: ReturnType<typeof open>, n: number, size = 100) => {
  for (let i = 0; i < n; i++) {
    const seq = s.state().nextSeq;
    s.append(seq, payload(seq, size));
  }
};

describe('the telemetry spool', () => {
  it('replays what it held after a reopen, in order, with the same stream, and continues the seqs', () => {
    const dir = tmp();
    const a = open(dir);
    fill(a, 25);
    const stream = a.stream;
    expect(a.state()).toMatchObject({ stream, firstSeq: 1, nextSeq: 26 });
    a.close();
    const b = open(dir);
    expect(b.stream).toBe(stream);
    expect(b.state()).toMatchObject({ firstSeq: 1, nextSeq: 26 });
    const back = b.pending(0, 100);
    expect(back.map((r) => r.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    for (const r of back) expect(r.payload.equals(payload(r.seq))).toBe(true);
    // an append must take the next seq
    expect(() => b.append(3, payload(3))).toThrow(/expected 26/);
    fill(b, 1);
    expect(b.pending(26, 10).map((r) => r.seq)).toEqual([26]);
    b.close();
  });

  it('keeps the seqs going when every batch was committed and the spool is empty', () => {
    const dir = tmp();
    const a = open(dir);
    fill(a, 10);
    a.commit(10);
    expect(segs(dir)).toEqual([]);
    expect(a.state()).toMatchObject({ firstSeq: 11, nextSeq: 11, bytes: 0 });
    a.close();
    const b = open(dir);
    expect(b.state()).toMatchObject({ firstSeq: 11, nextSeq: 11 });
    expect(b.pending(0, 10)).toEqual([]);
    b.close();
  });

  it('after an unclean stop never hands out a seq again: what it may have sent but lost gets a placeholder', () => {
    const dir = tmp();
    const a = open(dir, { fsyncMs: 1000 });
    fill(a, 5);
    // no close: a power loss; the last two records did not reach the disk
    const seg = join(dir, segs(dir).at(-1)!);
    truncateSync(seg, 3 * (HEADER_BYTES + 100) + 7);
    const b = open(dir, { placeholder: (seq) => Buffer.from(`empty ${seq}`) });
    const back = b.pending(0, 1000);
    expect(back.slice(0, 3).map((r) => r.seq)).toEqual([1, 2, 3]);
    // 4 and 5 may have been sent (the fsync cadence lets a batch out before it is durable): the
    // placeholders cover them and the rest of the reservation, so no seq means two batches
    expect(back.slice(3).map((r) => r.seq)).toEqual(Array.from({ length: RESERVE_STEP - 3 }, (_, i) => i + 4));
    expect(back[3]!.payload.toString()).toBe('empty 4');
    expect(b.state().nextSeq).toBe(RESERVE_STEP + 1);
    expect(b.stats()).toMatchObject({ corruptSkipped: 1, placeholders: RESERVE_STEP - 3 });
    b.close();
    // a clean stop: nothing more to fill
    const c = open(dir, { placeholder: () => Buffer.from('x') });
    expect(c.state().nextSeq).toBe(RESERVE_STEP + 1);
    expect(c.stats().placeholders).toBe(0);
    c.close();
  });

  it('at the bound deletes the oldest segment, counts it and says first_seq rose', () => {
    const dir = tmp();
    const drops: Array<{ segments: number; batches: number; first: number }> = [];
    // 116-byte records, 8 to a 1,000-byte segment; the bound holds about three segments
    const s = open(dir, { maxBytes: 3000, onDropped: (d) => drops.push({ segments: d.segments, batches: d.batches, first: d.state.firstSeq }) });
    fill(s, 24);
    expect(drops).toEqual([]);
    expect(s.state().bytes).toBeLessThanOrEqual(3000);
    fill(s, 2);
    expect(drops).toEqual([{ segments: 1, batches: 8, first: 9 }]);
    expect(s.stats()).toMatchObject({ droppedSegments: 1, droppedBatches: 8 });
    expect(s.state()).toMatchObject({ firstSeq: 9, nextSeq: 27 });
    expect(s.state().bytes).toBeLessThanOrEqual(3000);
    expect(s.pending(0, 100).map((r) => r.seq)).toEqual(Array.from({ length: 18 }, (_, i) => i + 9));
    s.close();
  });

  it('a commit deletes only the segments wholly at or below it, and later reads skip the committed', () => {
    const dir = tmp();
    const s = open(dir);
    fill(s, 20); // segments start at 1, 9, 17
    expect(segs(dir)).toHaveLength(3);
    s.commit(12);
    // the segment 9..16 still holds 13..16
    expect(segs(dir).map((f) => Number(f.slice(0, 20)))).toEqual([9, 17]);
    expect(s.pending(0, 100).map((r) => r.seq)).toEqual([13, 14, 15, 16, 17, 18, 19, 20]);
    expect(s.state().firstSeq).toBe(13);
    expect(s.pendingCount()).toBe(8);
    s.commit(16);
    expect(segs(dir).map((f) => Number(f.slice(0, 20)))).toEqual([17]);
    // an older commit changes nothing
    s.commit(3);
    expect(s.committed()).toBe(16);
    s.close();
    const b = open(dir);
    expect(b.pending(0, 100).map((r) => r.seq)).toEqual([17, 18, 19, 20]);
    b.close();
  });

  it('ignores a commit ahead of what it has made, and counts it', () => {
    const dir = tmp();
    const s = open(dir);
    fill(s, 5);
    s.commit(9);
    expect(s.committed()).toBe(0);
    expect(s.stats().commitsAhead).toBe(1);
    expect(s.pending(0, 10)).toHaveLength(5);
    expect(segs(dir)).toHaveLength(1);
    s.close();
  });

  it('reads a segment up to a corrupt record, skips the rest of it, counts it and replays the other segments', () => {
    const dir = tmp();
    const a = open(dir);
    fill(a, 20); // segments 1..8, 9..16, 17..20
    a.close();
    const [first, middle] = segs(dir);
    // a flipped byte inside record 11's payload (the third of the middle segment)
    const mid = join(dir, middle!);
    const bytes = readFileSync(mid);
    const at = 2 * (HEADER_BYTES + 100) + HEADER_BYTES + 40;
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(mid, bytes);
    const corrupt: string[] = [];
    const b = open(dir, { onCorrupt: (c) => corrupt.push(c.reason) });
    // the middle segment is not the newest: its records are checked when read
    expect(b.pendingCount()).toBe(20);
    const seqs = b.pending(0, 100).map((r) => r.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 18, 19, 20]);
    expect(corrupt).toEqual(['bad crc']);
    expect(b.stats().corruptSkipped).toBe(1);
    expect(b.pendingCount()).toBe(14);
    // read again: the same, no second count
    expect(b.pending(0, 100).map((r) => r.seq)).toEqual(seqs);
    expect(b.stats().corruptSkipped).toBe(1);
    expect(statSync(join(dir, first!)).size).toBe(8 * (HEADER_BYTES + 100));
    b.close();
  });

  it('detects a torn tail and zero-filled garbage in the newest segment at open', () => {
    const dir = tmp();
    const a = open(dir);
    fill(a, 6);
    a.close();
    const seg = join(dir, segs(dir).at(-1)!);
    // a power loss that left the file longer, zero-filled (delayed allocation)
    writeFileSync(seg, Buffer.concat([readFileSync(seg).subarray(0, 4 * (HEADER_BYTES + 100)), Buffer.alloc(HEADER_BYTES + 100)]));
    const b = open(dir);
    expect(b.stats().corruptSkipped).toBe(1);
    expect(b.pending(0, 100).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    // 5 and 6 were handed out: never again (no placeholder given, so they are skipped)
    expect(b.state().nextSeq).toBeGreaterThan(6);
    b.close();
  });

  it('rolls segments by size: a record bigger than a segment gets one of its own', () => {
    const dir = tmp();
    const s = open(dir);
    fill(s, 1, 50);
    fill(s, 1, 5000);
    fill(s, 1, 50);
    expect(segs(dir).map((f) => Number(f.slice(0, 20)))).toEqual([1, 2, 3]);
    expect(s.pending(0, 10).map((r) => r.payload.length)).toEqual([50, 5000, 50]);
    s.close();
  });
});
