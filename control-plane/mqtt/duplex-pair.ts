// Two connected Duplex streams: what one end writes, the other reads (Node 20 has no
// stream.duplexPair). The control plane's own subscriber talks to the broker through one, so its
// connection is known by the stream object itself and no network peer can pose as it.
import { Duplex } from 'node:stream';

export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  // a write into end i that waits until end 1-i's reader wants more (backpressure)
  const blocked: Array<(() => void) | null> = [null, null];
  const make = (i: 0 | 1) =>
    new Duplex({
      allowHalfOpen: false,
      read() {
        const release = blocked[1 - i];
        blocked[1 - i] = null;
        release?.();
      },
      write(chunk: Buffer, _encoding, callback) {
        const peer = ends[1 - i]!;
        if (peer.destroyed) return callback(new Error('the other end is closed'));
        if (peer.push(chunk)) callback();
        else blocked[i] = () => callback();
      },
      final(callback) {
        ends[1 - i]!.push(null);
        callback();
      },
      destroy(err, callback) {
        const release = blocked[i];
        blocked[i] = null;
        release?.();
        const peer = ends[1 - i]!;
        if (!peer.destroyed) peer.destroy();
        callback(err);
      },
    });
  ends.push(make(0), make(1));
  return [ends[0]!, ends[1]!];
}
