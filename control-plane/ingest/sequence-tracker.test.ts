import { describe, expect, it } from 'vitest';
import { SequenceTracker } from './sequence-tracker.js';

describe('SequenceTracker', () => {
  it('accepts increasing sequence numbers and counts the gaps between them', () => {
    const t = new SequenceTracker();
    expect(t.observe('s', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
    expect(t.observe('s', 'a', 2)).toEqual({ kind: 'ok', missed: 0 });
    expect(t.observe('s', 'a', 5)).toEqual({ kind: 'ok', missed: 2 });
  });

  it('calls a repeated or older number in the same session a duplicate', () => {
    const t = new SequenceTracker();
    t.observe('s', 'a', 3);
    expect(t.observe('s', 'a', 3)).toEqual({ kind: 'duplicate' });
    expect(t.observe('s', 'a', 1)).toEqual({ kind: 'duplicate' });
  });

  it('starts over with a new agent session, per site', () => {
    const t = new SequenceTracker();
    t.observe('s', 'a', 100);
    expect(t.observe('s', 'b', 1)).toEqual({ kind: 'ok', missed: 0 });
    expect(t.observe('other', 'a', 1)).toEqual({ kind: 'ok', missed: 0 });
  });
});
