import { describe, expect, it } from 'vitest';
import { SequenceTracker } from './sequence-tracker.js';

/** a tracker on a clock the test moves */
function tracker() {
  let t = 1_800_000_000_000;
  const seqs = new SequenceTracker({ now: () => t });
  return {
    seqs,
    advance: (ms: number) => void (t += ms),
    /** check, and commit what is ok, as ingest does for an accepted batch */
    observe: (site: string, session: string, seq: number) => {
      const v = seqs.check(site, session, seq);
      if (v.kind === 'ok') seqs.commit(site, session, seq);
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

  it('calls a repeated or older number in the same session a duplicate', () => {
    const { observe } = tracker();
    observe('s', 'a', 3);
    expect(observe('s', 'a', 3)).toEqual({ kind: 'duplicate' });
    expect(observe('s', 'a', 1)).toEqual({ kind: 'duplicate' });
  });

  it('starts over with a new agent session, per site', () => {
    const { observe } = tracker();
    observe('s', 'a', 100);
    expect(observe('s', 'b', 1)).toEqual({ kind: 'ok', missed: 0 });
    expect(observe('other', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
  });

  it('checking changes nothing: only a commit moves the sequence', () => {
    const { seqs } = tracker();
    seqs.commit('s', 'a', 1);
    expect(seqs.check('s', 'a', 2)).toEqual({ kind: 'ok', missed: 0 });
    expect(seqs.check('s', 'a', 2)).toEqual({ kind: 'ok', missed: 0 });
    seqs.commit('s', 'a', 2);
    expect(seqs.check('s', 'a', 2)).toEqual({ kind: 'duplicate' });
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

  it('measures the time from the last accepted batch, not the last seen one', () => {
    const { observe, advance } = tracker();
    observe('s', 'a', 1);
    advance(10_000);
    expect(observe('s', 'a', 1)).toEqual({ kind: 'duplicate' });
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
