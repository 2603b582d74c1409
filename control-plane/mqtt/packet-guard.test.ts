import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FixedHeaderScanner } from './packet-guard.js';

/** an MQTT packet: type byte, Remaining Length varint (MQTT 3.1.1 §2.2.3), body */
function packet(bodyBytes: number): Buffer {
  const len: number[] = [];
  let x = bodyBytes;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    len.push(b);
  } while (x > 0);
  return Buffer.concat([Buffer.from([0x30]), Buffer.from(len), Buffer.alloc(bodyBytes, 7)]);
}

/** cuts a buffer at the given points */
function chunks(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, b.length]) {
    out.push(b.subarray(from, c));
    from = c;
  }
  return out;
}

describe('fixed header scanner', () => {
  it('passes packets up to the limit and refuses the first larger one, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (sizes, cuts) => {
        const limit = 200;
        const wire = Buffer.concat(sizes.map(packet));
        const scanner = new FixedHeaderScanner(limit);
        const firstTooBig = sizes.find((s) => packet(s).length > limit);
        let refused: ReturnType<FixedHeaderScanner['feed']> | undefined;
        for (const c of chunks(wire, cuts)) {
          const r = scanner.feed(c);
          if (!r.ok) {
            refused = r;
            break;
          }
        }
        if (firstTooBig === undefined) expect(refused).toBeUndefined();
        else expect(refused).toEqual({ ok: false, reason: 'oversized', packetBytes: packet(firstTooBig).length });
      }),
      { numRuns: 500 },
    );
  });

  it('refuses from a header alone, one byte at a time, without the body', () => {
    const scanner = new FixedHeaderScanner(1024 * 1024);
    // PUBLISH announcing 150 MB: 0x30 then the four-byte varint of 157286400
    const header = packet(0).subarray(0, 1);
    const len = [0x80, 0x80, 0x80, 0x4b];
    expect(scanner.feed(header)).toEqual({ ok: true });
    expect(scanner.feed(Buffer.from(len.slice(0, 3)))).toEqual({ ok: true });
    expect(scanner.feed(Buffer.from(len.slice(3)))).toEqual({ ok: false, reason: 'oversized', packetBytes: 1 + 4 + 0x4b * 128 ** 3 });
  });

  it('refuses a Remaining Length longer than four bytes', () => {
    expect(new FixedHeaderScanner(1e9).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({ ok: false, reason: 'malformed' });
  });
});
