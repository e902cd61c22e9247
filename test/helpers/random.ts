/** Tiny seeded PRNG (mulberry32) and generators for kernel property tests. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Log-uniform positive number in [lo, hi]. */
  logUniform(lo: number, hi: number): number {
    return Math.exp(this.uniform(Math.log(lo), Math.log(hi)));
  }

  normals(n: number, sigma = 1, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + sigma * this.normal();
    return out;
  }
}

const SPECIALS = [NaN, Infinity, -Infinity, 3e38, -3e38, 1e20, -1e20, 0, -0, 1e-40, -1e-40, 1.4e-45];

/**
 * Values that exercise quantization for a given scale: mostly inside ±1.5x the representable range,
 * with exact ties (k + 0.5) * scale, and a sprinkling of NaN, ±Infinity, huge, zero and denormal values.
 */
export function quantInputs(rng: Random, n: number, scale: number, span: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.05) out[i] = rng.pick(SPECIALS);
    else if (r < 0.35) out[i] = (rng.int(-span, span) + 0.5) * scale;
    else if (r < 0.45) out[i] = rng.int(-span, span) * scale;
    else out[i] = rng.uniform(-1.5, 1.5) * span * scale;
  }
  return out;
}

/** Index of the first element whose bits differ (NaN == NaN, +0 != -0), or -1. */
export function firstBitMismatch(
  a: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number },
  b: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number },
): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y ? x === 0 && 1 / x !== 1 / y : !(Number.isNaN(x) && Number.isNaN(y))) return i;
  }
  return -1;
}

export const ODD_LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 65, 1023, 1024, 4099];
