import type { Kernels } from '../../kernels/types.js';
import { activationRange, rangeParams } from '../params.js';
import { percentileRange } from './quantile.js';
import { RawValues } from './raw.js';
import type { ActivationObserver, ActivationResult } from './types.js';

export interface IfmrOptions {
  bits: 8 | 16;
  asymmetric: boolean;
  minPercentile: number;
  maxPercentile: number;
  searchRange: [number, number];
  searchStep: number;
  /** Calibration batches to expect, so the raw-value buffer is sized once. */
  expectedBatches?: number;
}

/**
 * AMCT's IFMR: seed the range with the min/max percentiles (widened to include 0), then scale it
 * by each ratio r in [lo, hi) and keep the parameters with the least squared error between the
 * fake-quantized and the original values. Needs the raw values of all calibration batches:
 * memory = 4 bytes × batch_num × activation elements.
 */
export class IfmrObserver implements ActivationObserver {
  readonly keepsRawValues = true;
  private readonly raw: RawValues;

  constructor(private readonly k: Kernels, private readonly o: IfmrOptions) {
    this.raw = new RawValues(o.expectedBatches);
  }

  get bytesHeld(): number {
    return this.raw.bytes;
  }

  observe(x: Float32Array): void {
    this.raw.add(x);
  }

  /** The clip ratios tried, in order. */
  ratios(): number[] {
    const [lo, hi] = this.o.searchRange;
    const n = Math.max(1, Math.round((hi - lo) / this.o.searchStep));
    return Array.from({ length: n }, (_, i) => lo + i * this.o.searchStep);
  }

  compute(): ActivationResult {
    const x = this.raw.joined();
    const seed = percentileRange(this.k, x, this.o.minPercentile, this.o.maxPercentile);
    const min0 = Math.min(seed.min, 0);
    const max0 = Math.max(seed.max, 0);
    const ratios = this.ratios();
    const params = ratios.map((r) => rangeParams(r * min0, r * max0, this.o.bits, this.o.asymmetric));
    const { qmin, qmax } = activationRange(this.o.bits);
    const errors = this.k.fakeQuantSquaredError(x, {
      scale: Float32Array.from(params, (p) => p.scale),
      zeroPoint: Int32Array.from(params, (p) => p.zeroPoint),
      qmin,
      qmax,
    });
    let best = 0;
    for (let i = 1; i < errors.length; i++) if (errors[i]! < errors[best]!) best = i;
    return { ...params[best]!, clipMin: ratios[best]! * min0, clipMax: ratios[best]! * max0, count: x.length };
  }
}
