import type { Kernels } from '../../kernels/types.js';
import { rangeParams } from '../params.js';
import { percentileRange } from './quantile.js';
import { RawValues } from './raw.js';
import type { ActivationObserver, ActivationResult } from './types.js';

/** Range = the min/max percentiles of all calibration values (raw values kept, as for IFMR). */
export class PercentileObserver implements ActivationObserver {
  readonly keepsRawValues = true;
  private readonly raw: RawValues;

  constructor(
    private readonly k: Kernels,
    private readonly bits: 8 | 16,
    private readonly asymmetric: boolean,
    private readonly minPercentile: number,
    private readonly maxPercentile: number,
    expectedBatches = 1,
  ) {
    this.raw = new RawValues(expectedBatches);
  }

  get bytesHeld(): number {
    return this.raw.bytes;
  }

  observe(x: Float32Array): void {
    this.raw.add(x);
  }

  compute(): ActivationResult {
    const x = this.raw.joined();
    const { min, max } = percentileRange(this.k, x, this.minPercentile, this.maxPercentile);
    return { ...rangeParams(min, max, this.bits, this.asymmetric), clipMin: Math.min(min, 0), clipMax: Math.max(max, 0), count: x.length };
  }
}
