/**
 * A histogram that follows the data's range batch by batch without keeping the values: the first
 * batch sets the range, and a later value outside it doubles the range (merging bins in pairs, so
 * every old count stays in a bin that still covers it) until everything fits. Over the first batch
 * each bin also sums its values. Memory is fixed (24 bytes × bins) and calibration is one pass, whatever `batch_num` is. Its resolution is the
 * final range / bins, which bounds how far order statistics and clip ranges read from it can be
 * from the exact ones over the raw values.
 */
import type { Kernels } from '../../../kernels/types.js';
import { CalibrationError } from '../../../errors.js';
import { activationRange } from '../params.js';

export const DEFAULT_HISTOGRAM_BINS = 8192;

/**
 * A bin holding more than 1/HEAVY of all values and more than PEAK times its lower neighbour is a
 * point mass for the error estimate.
 */
const HEAVY = 4096;
const PEAK = 8;

export class StreamingHistogram {
  readonly counts: Float64Array;
  /**
   * Σx and the count per bin over the first batch only (summing costs a scattered float64 add per
   * value): a point mass sits at the same value in every batch, so its bin's mean is known from one.
   */
  readonly sums: Float64Array;
  readonly sumCounts: Float64Array;
  /** Lower edge of bin 0 and the bin width; bins cover [lo, lo + bins · width). */
  private lo = 0;
  private width = 0;
  /** Exact extremes and number of the non-NaN values seen. */
  min = Infinity;
  max = -Infinity;
  count = 0;

  readonly bins: number;

  /** `bins` is rounded up to an even number, so that doubling the range merges whole pairs. */
  constructor(private readonly k: Kernels, bins = DEFAULT_HISTOGRAM_BINS) {
    this.bins = bins + (bins & 1);
    this.counts = new Float64Array(this.bins);
    this.sums = new Float64Array(this.bins);
    this.sumCounts = new Float64Array(this.bins);
  }

  get bytes(): number {
    return this.counts.byteLength + this.sums.byteLength + this.sumCounts.byteLength;
  }

  /** Width of one bin: how far apart two values may be and still be told apart. */
  get step(): number {
    return this.width;
  }

  /** Lower edge of bin 0. */
  get low(): number {
    return this.lo;
  }

  get hi(): number {
    return this.lo + this.bins * this.width;
  }

  observe(x: Float32Array): void {
    this.cached = undefined;
    const { min, max } = this.k.minMax(x);
    if (!(min <= max)) return; // empty or all NaN
    if (!Number.isFinite(min) || !Number.isFinite(max)) throw new CalibrationError(`the activation holds ${Number.isFinite(max) ? min : max}, which no quantization range can cover`);
    if (this.count === 0) {
      // A little headroom above max, so the first batch's maximum is not the edge bin's only member by rounding.
      const span = max - min || Math.max(Math.abs(min), 1) * 2 ** -20;
      this.lo = min;
      this.width = (span * (1 + 2 ** -12)) / this.bins;
      this.k.histogram(x, this.lo, this.hi, this.sumCounts, this.sums);
      this.counts.set(this.sumCounts);
    } else {
      this.cover(min, max);
      this.k.histogram(x, this.lo, this.hi, this.counts);
    }
    this.min = Math.min(this.min, min);
    this.max = Math.max(this.max, max);
    let n = 0;
    for (let i = 0; i < this.bins; i++) n += this.counts[i]!;
    this.count = n; // NaN is counted nowhere
  }

  /** Doubles the range toward whichever side is short until [min, max] fits. */
  private cover(min: number, max: number): void {
    const n = this.bins;
    while (min < this.lo || max >= this.hi) {
      const up = max >= this.hi && (min >= this.lo || max - this.hi >= this.lo - min);
      const half = n >> 1;
      for (const c of [this.counts, this.sums, this.sumCounts]) {
        if (up) {
          for (let i = 0; i < half; i++) c[i] = c[2 * i]! + c[2 * i + 1]!;
          c.fill(0, half);
        } else {
          for (let i = n - 1; i >= half; i--) c[i] = c[2 * i - n]! + c[2 * i - n + 1]!;
          c.fill(0, 0, half);
        }
      }
      if (!up) this.lo -= n * this.width;
      this.width *= 2;
    }
  }

  /**
   * The value at 0-based `rank` of the sorted values: the exact extreme for the first and last
   * rank, else interpolated inside its bin (mass taken as uniform there), so within one step.
   */
  valueAt(rank: number): number {
    if (this.count === 0) return 0;
    const r = Math.min(this.count - 1, Math.max(0, rank));
    if (r === 0) return this.min;
    if (r === this.count - 1) return this.max;
    let below = 0;
    let bin = 0;
    while (bin < this.bins - 1 && below + this.counts[bin]! <= r) below += this.counts[bin++]!;
    const inBin = this.counts[bin]! || 1;
    const v = this.lo + (bin + (r - below + 0.5) / inBin) * this.width;
    return Math.min(this.max, Math.max(this.min, v));
  }

  /**
   * The lower and upper percentile values (AMCT's convention: `maxPercentile` 0.999999 is the value
   * below which that fraction lies; `minPercentile` mirrors it from the bottom). 0, 0 when empty.
   */
  percentiles(minPercentile: number, maxPercentile: number): { min: number; max: number } {
    const n = this.count;
    if (n === 0) return { min: 0, max: 0 };
    return { min: this.valueAt(n - Math.ceil(minPercentile * n)), max: this.valueAt(Math.ceil(maxPercentile * n) - 1) };
  }

  /** Estimated Σx² over the values seen (mass uniform in each bin). */
  energy(): number {
    const w = this.width;
    let e = 0;
    for (let i = 0; i < this.bins; i++) {
      const m = this.counts[i]!;
      if (m === 0) continue;
      const a = this.lo + i * w;
      const b = a + w;
      e += (m * (b * b * b - a * a * a)) / (3 * w);
    }
    return e;
  }

  /** Relative error Σ(fq(x) − x)² / Σx² (0 when all values are 0). */
  noise(scale: number, zeroPoint: number, bits: 8 | 16): number {
    const e = this.energy();
    return e > 0 ? this.squaredError(scale, zeroPoint, bits) / e : 0;
  }

  /**
   * Estimated Σ (fq(x) − x)² over the values seen, for quantization with `scale` and `zeroPoint` in
   * `bits`, the mass of each bin taken as uniform over it: the rounding error is integrated exactly
   * over the part inside the clip range (the grid is the multiples of the scale), the distance to the
   * nearer end over the parts outside. `groupsPerStep` sets the resolution (see below); 8 is the
   * estimate observers decide by, fewer is a cheaper first look.
   */
  squaredError(scale: number, zeroPoint: number, bits: 8 | 16, groupsPerStep = 8): number {
    const { qmin, qmax } = activationRange(bits);
    const cmin = (qmin - zeroPoint) * scale;
    const cmax = (qmax - zeroPoint) * scale;
    const s3 = scale * scale * scale;
    // Bins are read in groups of up to an eighth of a quantization step (mass uniform over the
    // group), which keeps the estimate while the cost no longer grows with bins per step. Point
    // masses (see HEAVY) are left out of the groups and counted at their mean: they are common (a
    // ReLU's zeros, the value of a constant image region), and their rounding error depends on
    // exactly where they sit, which a bin's width would blur enough to flip the choice between
    // clip ranges.
    const { light, next, points } = this.summary();
    const g = Math.max(1, Math.floor(scale / (groupsPerStep * this.width)));
    const { bins, lo, width } = this;
    let err = 0;
    // Hot loop (IFMR calls this for each of its candidates): groups inside the clip range take the
    // rounding integral inline, and a group starting where the previous one ended reuses its value.
    let end = -1;
    let rEnd = 0;
    // `next` skips runs of empty bins (the gaps between a bulk and its outliers) in one step.
    for (let i = next[0]!; i < bins; i = next[Math.min(i + g, bins)]!) {
      const n = Math.min(g, bins - i);
      const m = light[i + n]! - light[i]!;
      const a = lo + i * width;
      const b = a + n * width;
      if (a >= cmin && b <= cmax) {
        const ra = i === end ? rEnd : roundingIntegral(a / scale);
        rEnd = roundingIntegral(b / scale);
        end = i + n;
        err += (m / (n * width)) * s3 * (rEnd - ra);
      } else {
        err += this.groupError(i, n, m, scale, cmin, cmax, s3);
      }
    }
    for (const p of points) {
      err += p.at === undefined ? this.groupError(p.bin, 1, p.mass, scale, cmin, cmax, s3) : p.mass * pointError(p.at, scale, cmin, cmax);
    }
    return err;
  }

  /** Σ (fq(x) − x)² of `m` values spread uniformly over bins [i, i + n). */
  private groupError(i: number, n: number, m: number, scale: number, cmin: number, cmax: number, s3: number): number {
    if (m === 0) return 0;
    const w = n * this.width;
    {
      const a = this.lo + i * this.width;
      const b = a + w;
      let e = 0;
      const ia = Math.max(a, cmin);
      const ib = Math.min(b, cmax);
      if (ib > ia) e += s3 * (roundingIntegral(ib / scale) - roundingIntegral(ia / scale));
      if (b > cmax) {
        const p = Math.max(a, cmax);
        e += ((b - cmax) ** 3 - (p - cmax) ** 3) / 3;
      }
      if (a < cmin) {
        const p = Math.min(b, cmin);
        e += ((cmin - a) ** 3 - (cmin - p) ** 3) / 3;
      }
      return (m / w) * e;
    }
  }

  private cached?: { light: Float64Array; next: Int32Array; points: { bin: number; mass: number; at?: number }[] };

  /**
   * Cumulative counts without the point masses (light[i] = such counts below bin i) and the point
   * masses themselves (with their mean where the first batch saw them), and next[i] = the first bin
   * from i on with such counts (bins when none); cached until the next observe.
   */
  private summary(): NonNullable<StreamingHistogram['cached']> {
    if (this.cached) return this.cached;
    const light = new Float64Array(this.bins + 1);
    const points: { bin: number; mass: number; at?: number }[] = [];
    const heavy = this.count / HEAVY;
    const cs = this.counts;
    for (let i = 0; i < this.bins; i++) {
      const c = cs[i]!;
      // A point mass towers over a neighbour; a dense but continuous stretch does not.
      const lower = Math.min(i > 0 ? cs[i - 1]! : 0, i + 1 < this.bins ? cs[i + 1]! : 0);
      const point = c > heavy && c > PEAK * lower;
      if (point) points.push({ bin: i, mass: c, at: this.sumCounts[i]! > 0 ? this.sums[i]! / this.sumCounts[i]! : undefined });
      light[i + 1] = light[i]! + (point ? 0 : c);
    }
    const next = new Int32Array(this.bins + 1);
    next[this.bins] = this.bins;
    for (let i = this.bins - 1; i >= 0; i--) next[i] = light[i + 1]! > light[i]! ? i : next[i + 1]!;
    this.cached = { light, next, points };
    return this.cached;
  }
}

/** (fq(c) − c)² for a value c: the distance to the grid (multiples of the scale) or to the clip range. */
function pointError(c: number, scale: number, cmin: number, cmax: number): number {
  if (c < cmin) return (cmin - c) ** 2;
  if (c > cmax) return (c - cmax) ** 2;
  const d = c - scale * Math.round(c / scale);
  return d * d;
}

/** ∫ from −½ to u of (v − round(v))² dv: 1/12 per whole period plus the part of the current one. */
function roundingIntegral(u: number): number {
  const m = Math.round(u);
  const d = u - m;
  return m / 12 + (d * d * d + 0.125) / 3;
}
