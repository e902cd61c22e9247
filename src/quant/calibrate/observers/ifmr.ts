import type { Kernels } from '../../../kernels/types.js';
import { rangeParams } from '../params.js';
import { DEFAULT_HISTOGRAM_BINS, StreamingHistogram } from './histogram.js';
import type { ActivationObserver, ActivationResult } from './types.js';

/** Ratios compared at full resolution after the coarse pass. */
const REFINED = 12;

export interface IfmrOptions {
  bits: 8 | 16;
  asymmetric: boolean;
  minPercentile: number;
  maxPercentile: number;
  searchRange: [number, number];
  searchStep: number;
  /** Histogram bins (resolution of the percentiles and of the error estimate). */
  bins?: number;
}

/**
 * AMCT's IFMR: seed the range with the min/max percentiles (widened to include 0), then scale it
 * by each ratio r in [lo, hi) and keep the parameters with the least squared error between the
 * fake-quantized and the original values. Both the percentiles and the squared errors are read from
 * a streaming histogram (see histogram.ts) instead of the raw values AMCT keeps: fixed memory
 * (8 bytes × bins), one calibration pass; the percentiles are within one bin of the exact ones.
 */
export class IfmrObserver implements ActivationObserver {
  private readonly h: StreamingHistogram;

  constructor(k: Kernels, private readonly o: IfmrOptions) {
    this.h = new StreamingHistogram(k, o.bins ?? DEFAULT_HISTOGRAM_BINS);
  }

  get bytesHeld(): number {
    return this.h.bytes;
  }

  /** Resolution of the statistics: one histogram bin. */
  get step(): number {
    return this.h.step;
  }

  observe(x: Float32Array): void {
    this.h.observe(x);
  }

  /** The clip ratios tried, in order. */
  ratios(): number[] {
    const [lo, hi] = this.o.searchRange;
    const n = Math.max(1, Math.round((hi - lo) / this.o.searchStep));
    return Array.from({ length: n }, (_, i) => lo + i * this.o.searchStep);
  }

  compute(): ActivationResult {
    const seed = this.h.percentiles(this.o.minPercentile, this.o.maxPercentile);
    const min0 = Math.min(seed.min, 0);
    const max0 = Math.max(seed.max, 0);
    // A coarse estimate (2 groups per quantization step, 4× cheaper) ranks every ratio; the best few
    // are then compared at full resolution. Near-ties that the coarse estimate could misorder lie
    // within those few.
    const coarse = this.ratios().map((ratio) => {
      const params = rangeParams(ratio * min0, ratio * max0, this.o.bits, this.o.asymmetric);
      return { ratio, params, error: this.h.squaredError(params.scale, params.zeroPoint, this.o.bits, 2) };
    });
    const shortlist = [...coarse].sort((a, b) => a.error - b.error || a.ratio - b.ratio).slice(0, REFINED).sort((a, b) => a.ratio - b.ratio);
    let best: { params: ReturnType<typeof rangeParams>; ratio: number; error: number } | undefined;
    for (const { ratio, params } of shortlist) {
      const error = this.h.squaredError(params.scale, params.zeroPoint, this.o.bits);
      if (!best || error < best.error) best = { params, ratio, error };
    }
    const { params, ratio, error } = best!;
    const energy = this.h.energy();
    return { ...params, clipMin: ratio * min0, clipMax: ratio * max0, count: this.h.count, noise: energy > 0 ? error / energy : 0 };
  }
}
