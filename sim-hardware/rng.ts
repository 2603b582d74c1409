// Seeded, deterministic randomness for the simulators. Every device draws from its own stream
// derived from (seed, device id) via `fork`, so adding a device or reading one more often never
// changes the numbers another device produces — tests can assert exact values.
//
// Generator: sfc32 (Chris Doty-Humphrey's "small fast counting" generator, passes PractRand),
// seeded by cyrb128, a well-known 128-bit string hash. No dependency needed for ~30 lines.

export interface Rng {
  /** the string this stream was derived from; `fork` hashes it with the label */
  readonly key: string;
  /** uniform in [0, 1) */
  next(): number;
  /** uniform in [min, max) */
  range(min: number, max: number): number;
  /** standard normal (mean 0, sd 1), Box–Muller */
  normal(): number;
  /** true with probability p */
  chance(p: number): boolean;
  /** Poisson-distributed count with mean lambda */
  poisson(lambda: number): number;
  /** lowercase hex string of n digits */
  hex(n: number): string;
  /** an independent stream; depends only on this stream's key and the label, not on draws made */
  fork(label: string): Rng;
}

function cyrb128(str: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

export function createRng(seed: number | string): Rng {
  return new Sfc32(String(seed));
}

/**
 * One stream. A class rather than closures over the state: a site simulates thousands of
 * devices with three streams each, and seven closures per stream were most of a 5,000-ASIC
 * agent's heap objects (bench:agent heap snapshot); the methods are shared on the prototype.
 */
class Sfc32 implements Rng {
  readonly key: string;
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(key: string) {
    this.key = key;
    [this.a, this.b, this.c, this.d] = cyrb128(key);
    // Discard the first outputs: sfc32's authors recommend a short warm-up after seeding.
    for (let i = 0; i < 12; i++) this.next();
  }

  next(): number {
    let a = this.a | 0;
    let b = this.b | 0;
    let c = this.c | 0;
    let d = this.d | 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
    return (t >>> 0) / 4294967296;
  }

  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  normal(): number {
    // 1 - next() is in (0, 1], so the log is finite.
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  poisson(lambda: number): number {
    if (!(lambda > 0)) return 0;
    // Knuth's method is exact but O(lambda); above 30 the normal approximation is within
    // a fraction of a percent, and the simulators only need the right mean and spread.
    if (lambda > 30) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * this.normal()));
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = this.next();
    while (p > limit) {
      k++;
      p *= this.next();
    }
    return k;
  }

  hex(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(this.next() * 16).toString(16);
    return s;
  }

  fork(label: string): Rng {
    return new Sfc32(`${this.key}/${label}`);
  }
}
