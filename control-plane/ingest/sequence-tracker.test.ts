import { describe, expect, it } from 'vitest';
import { SequenceTracker } from './sequence-tracker.js';
import { Watermarks } from './watermarks.js';

/** a tracker on a clock the test moves */
function tracker() {
  let t = 1_800_000_000_000;
  const marks = new Watermarks();
  const seqs = new SequenceTracker({ now: () => t, watermarks: marks });
  return {
    seqs,
    marks,
    advance: (ms: number) => void (t += ms),
    /** check, and mark taken what is ok, as ingest does for a batch the writer admitted */
    observe: (site: string, session: string, seq: number) => {
      const v = seqs.check(site, session, seq);
      if (v.kind === 'ok') seqs.taken(site, session, seq);
      return v;
    },
  };
}

describe('SequenceTracker', () => {
  it('accepts increasing sequence numbers and counts the gaps between them', () => {
    const { observe } = tracker();
    expect(observe('s', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('s', 'a', 2)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('s', 'a', 5)).toEqual({ kind: 'ok', missed: 2 });
  });

  it('calls a number at or below the committed watermark a duplicate, and passes an older one above it on (the ledger decides)', () => {
    const { observe, marks } = tracker();
    observe('s', 'a', 3);
    // nothing committed yet: a repeat or an out-of-order re-send is the writer's ledger's to judge
    expect(observe('s', 'a', 3)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('s', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
    marks.committed('s', 'a', [1, 2]);
    expect(observe('s', 'a', 1)).toEqual({ kind: 'duplicate' });
    expect(observe('s', 'a', 2)).toEqual({ kind: 'duplicate' });
    expect(observe('s', 'a', 3)).toEqual({ kind: 'ok', missed: 0 });
    // committed out of order: 5 is known committed too, 4 is not
    marks.committed('s', 'a', [5]);
    expect(observe('s', 'a', 5)).toEqual({ kind: 'duplicate' });
    expect(observe('s', 'a', 4)).toEqual({ kind: 'ok', missed: 0 });
  });

  it('believes the agent\'s spool: a replay after a restart is no jump, and what is below first_seq is gone', () => {
    const { observe, marks } = tracker();
    marks.spool('s', 'spool-1', 500, 5001);
    expect(marks.get('s', 'spool-1')).toBe(499);
    // gone is not committed: a late copy of it (a broker's queue) is still the ledger's to judge
    expect(observe('s', 'spool-1', 499)).toEqual({ kind: 'ok', missed: 0 });
    // the live batch and the oldest re-send, in either order
    expect(observe('s', 'spool-1', 5001)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('s', 'spool-1', 500)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('s', 'spool-1', 5001 + 101)).toMatchObject({ kind: 'jump' });
  });

  it('starts over with a new agent session, per site', () => {
    const { observe } = tracker();
    observe('s', 'a', 100);
    expect(observe('s', 'b', 1)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('other', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
  });

  it('checking changes nothing: only taking a batch moves the sequence', () => {
    const { seqs } = tracker();
    seqs.taken('s', 'a', 1);
    expect(seqs.check('s', 'a', 3)).toEqual({ kind: 'ok', missed: 1 });
    expect(seqs.check('s', 'a', 3)).toEqual({ kind: 'ok', missed: 1 });
    seqs.taken('s', 'a', 2);
    expect(seqs.check('s', 'a', 3)).toEqual({ kind: 'ok', missed: 0 });
  });

  it('refuses a seq of 2^53 - 1 in the real session, which would otherwise silence the site, and keeps accepting the real ones', () => {
    const { observe, advance } = tracker();
    observe('s', 'a', 10);
    advance(1000);
    expect(observe('s', 'a', Number.MAX_SAFE_INTEGER)).toMatchObject({ kind: 'jump' });
    expect(observe('s', 'a', 11)).toEqual({ kind: 'ok', missed: 0 });
  });

  it('allows as many batches as the elapsed time explains at 100 ms each, plus a margin of 100', () => {
    const { observe, advance } = tracker();
    observe('s', 'a', 1);
    // no time passed: the margin only
    expect(observe('s', 'a', 1 + 101)).toEqual({ kind: 'jump', jump: 101, allowed: 100 });
    expect(observe('s', 'a', 1 + 100)).toEqual({ kind: 'ok', missed: 99 });
    // an hour away (a spool replay, a broker outage): 36,000 batches more
    advance(3600_000);
    expect(observe('s', 'a', 101 + 36_100 + 1)).toMatchObject({ kind: 'jump', allowed: 36_100 });
    expect(observe('s', 'a', 101 + 36_100)).toEqual({ kind: 'ok', missed: 36_099 });
  });

  it('measures the time from the highest batch taken, not the last seen one', () => {
    const { observe, advance } = tracker();
    observe('s', 'a', 1);
    advance(10_000);
    expect(observe('s', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
    // 10 s after the accepted batch: 100 + 100 allowed
    expect(observe('s', 'a', 201)).toEqual({ kind: 'ok', missed: 199 });
  });

  it('tolerates a clock that steps back', () => {
    const { observe, advance } = tracker();
    observe('s', 'a', 1);
    advance(-60_000);
    expect(observe('s', 'a', 2)).toEqual({ kind: 'ok', missed: 0 });
  });

  it('refuses a seq that is not a safe positive integer', () => {
    const { observe } = tracker();
    expect(observe('s', 'a', 2 ** 53)).toEqual({ kind: 'invalid' });
    expect(observe('s', 'a', 1.5)).toEqual({ kind: 'invalid' });
    expect(observe('s', 'a', 0)).toEqual({ kind: 'invalid' });
    expect(observe('s', 'a', Number.NaN)).toEqual({ kind: 'invalid' });
  });
});
