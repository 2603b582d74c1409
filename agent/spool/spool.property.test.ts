// Property: whatever interleaving of appends, commits, clean reopens, crashes (no close) and a
// segment cut at a random byte (a torn write, a bad disk) the spool goes through, it
// - never hands out a seq twice within its stream,
// - reads back in strictly increasing seq order, each seq with the very bytes appended for it
//   (or the placeholder it filled the seq with after an unclean stop),
// - never returns a committed seq,
// - and, when no file was cut, returns every uncommitted batch it was given.
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openSpool, type Spool } from './spool.js';

const log = pino({ level: 'silent' });

type Step =
  | { t: 'append'; bytes: Uint8Array }
  | { t: 'commit'; back: number }
  | { t: 'reopen' }
  | { t: 'crash' }
  | { t: 'cut'; segment: number; at: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 300 }).map((bytes) => ({ t: 'append' as const, bytes })) },
  { weight: 2, arbitrary: fc.nat(12).map((back) => ({ t: 'commit' as const, back })) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'crash' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('cut' as const), segment: fc.nat(), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
);

const placeholder = (seq: number) => Buffer.from(`placeholder ${seq}`);

describe('the spool under any interleaving of appends, commits, restarts and torn files', () => {
  it('keeps order, never reuses a seq and never returns a batch twice', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const dir = mkdtempSync(join(tmpdir(), 'hcp-spool-prop-'));
        const open = () => openSpool({ dir, maxBytes: 1 << 30, segmentBytes: 700, fsyncMs: 0, log, placeholder });
        try {
          let s: Spool = open();
          const stream = s.stream;
          // every seq the spool handed out, with its bytes
          const made = new Map<number, Buffer>();
          let cut = false;
          let cutNow = false;
          const reopened = (spool: Spool, clean: boolean) => {
            expect(spool.stream).toBe(stream);
            // the placeholders appended at open, the newest seqs: a seq handed out before only
            // when a cut file lost it (a batch that may have been sent is then declared empty)
            const n = spool.stats().placeholders;
            if (clean) expect(n).toBe(0);
            for (let q = spool.state().nextSeq - n; q < spool.state().nextSeq; q++) {
              if (made.has(q)) expect(cutNow).toBe(true);
              made.set(q, placeholder(q));
            }
            // a crash may forget the last commits (they are saved before files go, not each time)
            if (clean) expect(spool.committed()).toBe(committed);
            expect(spool.committed()).toBeLessThanOrEqual(committed);
            committed = spool.committed();
            cutNow = false;
          };
          let committed = 0;
          const check = () => {
            const back = s.pending(0, 1_000_000);
            let prev = 0;
            for (const r of back) {
              expect(r.seq).toBeGreaterThan(prev);
              expect(r.seq).toBeGreaterThan(committed);
              expect(r.payload.equals(made.get(r.seq)!)).toBe(true);
              prev = r.seq;
            }
            if (!cut) {
              const want = [...made.keys()].filter((q) => q > committed).sort((a, b) => a - b);
              expect(back.map((r) => r.seq)).toEqual(want);
            }
            expect(s.pendingCount()).toBe(back.length);
          };
          for (const st of steps) {
            switch (st.t) {
              case 'append': {
                const seq = s.state().nextSeq;
                expect(made.has(seq)).toBe(false);
                made.set(seq, Buffer.from(st.bytes));
                s.append(seq, st.bytes);
                break;
              }
              case 'commit': {
                const target = s.state().nextSeq - 1 - st.back;
                if (target > committed) {
                  s.commit(target);
                  committed = target;
                }
                break;
              }
              case 'reopen':
              case 'crash': {
                if (st.t === 'reopen') s.close();
                else s.sync();
                s = open();
                reopened(s, st.t === 'reopen');
                break;
              }
              case 'cut': {
                s.close();
                const files = readdirSync(dir).filter((f) => f.endsWith('.seg')).sort();
                if (files.length) {
                  const f = join(dir, files[st.segment % files.length]!);
                  truncateSync(f, Math.floor(statSync(f).size * st.at));
                  cut = true;
                  cutNow = true;
                }
                s = open();
                reopened(s, false);
                break;
              }
            }
            check();
          }
          s.close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});
