import type { Kernels } from '../../kernels/types.js';
import { activationRange, rangeParams } from '../params.js';
import type { ActivationObserver, ActivationResult } from './types.js';

/**
 * HFMG: a fixed-size histogram merged across batches (fixed memory: 8 bytes × bins), then a search
 * that trims the sparser tail bin by bin and keeps the range whose estimated L2 quantization error
 * is least (the idea of PyTorch's HistogramObserver). Mass is taken as uniform inside each bin.
 */
export class HfmgObserver implements ActivationObserver {
  readonly keepsRawValues = false;
  private counts: Float64Array;
  private lo = 0;
  private hi = 0;
  private count = 0;

  constructor(private readonly k: Kernels, private readonly bits: 8 | 16, private readonly asymmetric: boolean, bins: number) {
    this.counts = new Float64Array(bins);
  }

  get bytesHeld(): number {
    return this.counts.byteLength;
  }

  observe(x: Float32Array): void {
    const { min, max } = this.k.minMax(x);
    if (!(min <= max)) return; // empty or all NaN
    const lo = Math.min(this.lo, min, 0);
    let hi = Math.max(this.hi, max, 0);
    if (hi === lo) hi = lo + 1e-12; // all zeros so far: any non-empty range keeps them in bin 0
    if (lo < this.lo || hi > this.hi) this.rebin(lo, hi);
    this.k.histogram(x, this.lo, this.hi, this.counts);
    this.count += x.length;
  }

  /** Spreads the existing counts onto a wider range in proportion to bin overlap. */
  private rebin(lo: number, hi: number): void {
    const n = this.counts.length;
    const old = this.counts;
    const next = new Float64Array(n);
    if (this.count > 0) {
      const ow = (this.hi - this.lo) / n;
      const nw = (hi - lo) / n;
      for (let i = 0; i < n; i++) {
        const c = old[i]!;
        if (c === 0) continue;
        const a = this.lo + i * ow;
        const b = a + ow;
        let j = Math.max(0, Math.min(n - 1, Math.floor((a - lo) / nw)));
        for (; j < n; j++) {
          const s = lo + j * nw;
          const e = s + nw;
          if (s >= b) break;
          const overlap = Math.min(b, e) - Math.max(a, s);
          if (overlap > 0) next[j]! += (c * overlap) / ow;
        }
      }
    }
    this.counts = next;
    this.lo = lo;
    this.hi = hi;
  }

  /** Estimated Σ (fq(x) - x)^2 of the histogram for clip range [a, b]. */
  private error(a: number, b: number): number {
    const { scale, zeroPoint } = rangeParams(a, b, this.bits, this.asymmetric);
    const { qmin, qmax } = activationRange(this.bits);
    const cmin = (qmin - zeroPoint) * scale;
    const cmax = (qmax - zeroPoint) * scale;
    const n = this.counts.length;
    const w = (this.hi - this.lo) / n;
    const rounding = (scale * scale) / 12;
    let err = 0;
    for (let i = 0; i < n; i++) {
      const m = this.counts[i]!;
      if (m === 0) continue;
      const s = this.lo + i * w;
      const e = s + w;
      // Uniform mass on [s, e]: the part inside the clip range gets rounding noise, the part outside
      // gets the mean squared distance to the nearest end.
      const inside = Math.max(0, Math.min(e, cmax) - Math.max(s, cmin)) / w;
      err += m * inside * rounding;
      if (e > cmax) {
        const p = Math.max(s, cmax);
        err += (m * ((e - p) / w) * ((e - cmax) ** 3 - (p - cmax) ** 3)) / (3 * (e - p || 1));
      }
      if (s < cmin) {
        const p = Math.min(e, cmin);
        err += (m * ((p - s) / w) * ((cmin - s) ** 3 - (cmin - p) ** 3)) / (3 * (p - s || 1));
      }
    }
    return err;
  }

  compute(): ActivationResult {
    const n = this.counts.length;
    const w = (this.hi - this.lo) / n;
    const zeroBin = Math.min(n - 1, Math.max(0, Math.floor((0 - this.lo) / w)));
    let start = 0;
    let end = n - 1;
    let best = { a: this.lo, b: this.hi, err: this.error(this.lo, this.hi) };
    // Trim whichever end holds less mass, never past the bin holding 0. Steps of n/512 bins bound
    // the search to about 512 candidates whatever num_of_bins is (each costs one pass over the bins).
    const step = Math.max(1, Math.floor(n / 512));
    while (start < zeroBin || end > zeroBin) {
      const trimStart = end <= zeroBin || (start < zeroBin && this.counts[start]! <= this.counts[end]!);
      if (trimStart) start = Math.min(zeroBin, start + step);
      else end = Math.max(zeroBin, end - step);
      const a = Math.min(0, this.lo + start * w);
      const b = Math.max(0, this.lo + (end + 1) * w);
      const err = this.error(a, b);
      if (err < best.err) best = { a, b, err };
    }
    return { ...rangeParams(best.a, best.b, this.bits, this.asymmetric), clipMin: best.a, clipMax: best.b, count: this.count };
  }
}
