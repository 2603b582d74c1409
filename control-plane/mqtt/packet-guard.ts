// A guard between a client's socket and Aedes that refuses a packet by its fixed header, before
// any of its body is read. Aedes' parser (mqtt-packet) buffers a whole packet before it parses
// it, so a PUBLISH announcing 150 MB would be held in memory until the last byte arrived; here
// the connection is destroyed as soon as the header's Remaining Length says it is too large.
import { Duplex } from 'node:stream';

export type ScanResult = { ok: true } | { ok: false; reason: 'oversized'; packetBytes: number } | { ok: false; reason: 'malformed' };

/**
 * Follows the packet boundaries of one inbound byte stream. Each packet is a fixed header (one
 * byte of type and flags, then the Remaining Length: a varint of 1 to 4 bytes, 7 bits each,
 * least significant first; MQTT 3.1.1 §2.2.3) and that many bytes more. A header may straddle
 * chunks; bodies are skipped by count, never copied.
 */
export class FixedHeaderScanner {
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private lengthBytes = 0;
  private multiplier = 1;
  private left = 0;
  constructor(private readonly maxPacketBytes: number) {}

  feed(chunk: Uint8Array): ScanResult {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'body') {
        const take = Math.min(this.left, chunk.length - i);
        this.left -= take;
        i += take;
        if (this.left === 0) this.state = 'type';
        continue;
      }
      if (this.state === 'type') {
        i++;
        this.state = 'length';
        this.length = 0;
        this.lengthBytes = 0;
        this.multiplier = 1;
        continue;
      }
      const b = chunk[i++]!;
      this.length += (b & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (b & 0x80) {
        // a fifth length byte is a protocol violation (§2.2.3: at most four)
        if (this.lengthBytes === 4) return { ok: false, reason: 'malformed' };
        continue;
      }
      // the whole packet, as MQTT 5 §3.1.2.11.4 counts a Maximum Packet Size
      const packetBytes = 1 + this.lengthBytes + this.length;
      if (packetBytes > this.maxPacketBytes) return { ok: false, reason: 'oversized', packetBytes };
      this.left = this.length;
      this.state = this.left === 0 ? 'type' : 'body';
    }
    return { ok: true };
  }
}

/**
 * The socket as Aedes sees it: every inbound chunk passes the scanner first; outbound bytes go
 * straight through. A refused header destroys the socket and the guard at once, so what the
 * client sends after it is never read.
 */
export function guardSocket(socket: Duplex, maxPacketBytes: number, onRefused: (r: Exclude<ScanResult, { ok: true }>) => void): Duplex {
  const scanner = new FixedHeaderScanner(maxPacketBytes);
  const guarded = new Duplex({
    allowHalfOpen: false,
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      socket.write(chunk, callback);
    },
    // Aedes writes a packet in several small pieces; corked, they leave as one
    writev(chunks, callback) {
      socket.cork();
      chunks.forEach((c, i) => socket.write(c.chunk, i === chunks.length - 1 ? callback : undefined));
      socket.uncork();
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    const r = scanner.feed(chunk);
    if (!r.ok) {
      socket.destroy();
      guarded.destroy();
      onRefused(r);
      return;
    }
    if (!guarded.push(chunk)) socket.pause();
  });
  socket.on('end', () => guarded.push(null));
  socket.on('error', (err) => guarded.destroy(err));
  socket.on('close', () => guarded.destroy());
  return guarded;
}
