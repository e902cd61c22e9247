import type { Kernels } from '../../../kernels/types.js';
import { rangeParams } from '../params.js';
import { DEFAULT_HISTOGRAM_BINS, StreamingHistogram } from './histogram.js';
import type { ActivationObserver, ActivationResult } from './types.js';

/**
 * Range = the min/max percentiles of all calibration values, read from a streaming histogram (see
 * histogram.ts): fixed memory, one pass, within one bin of the exact percentiles.
 */
export class PercentileObserver implements ActivationObserver {
  private readonly h: StreamingHistogram;

  constructor(
    k: Kernels,
    private readonly bits: 8 | 16,
    private readonly asymmetric: boolean,
    private readonly minPercentile: number,
    private readonly maxPercentile: number,
    bins = DEFAULT_HISTOGRAM_BINS,
  ) {
    this.h = new StreamingHistogram(k, bins);
  }

  get bytesHeld(): number {
    return this.h.bytes;
  }

  get step(): number {
    return this.h.step;
  }

  observe(x: Float32Array): void {
    this.h.observe(x);
  }

  compute(): ActivationResult {
    const { min, max } = this.h.percentiles(this.minPercentile, this.maxPercentile);
    const params = rangeParams(min, max, this.bits, this.asymmetric);
    return { ...params, clipMin: Math.min(min, 0), clipMax: Math.max(max, 0), count: this.h.count, noise: this.h.noise(params.scale, params.zeroPoint, this.bits) };
  }
}
