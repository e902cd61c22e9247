import type { Kernels } from '../../../kernels/types.js';
import { rangeParams } from '../params.js';
import type { ActivationObserver, ActivationResult } from './types.js';

/** Running min/max over all batches: fixed memory, sensitive to outliers. */
export class MinMaxObserver implements ActivationObserver {
  readonly bytesHeld = 16;
  private min = Infinity;
  private max = -Infinity;
  private count = 0;

  constructor(private readonly k: Kernels, private readonly bits: 8 | 16, private readonly asymmetric: boolean) {}

  observe(x: Float32Array): void {
    const r = this.k.minMax(x);
    this.min = Math.min(this.min, r.min);
    this.max = Math.max(this.max, r.max);
    this.count += x.length;
  }

  compute(): ActivationResult {
    const min = Number.isFinite(this.min) ? this.min : 0;
    const max = Number.isFinite(this.max) ? this.max : 0;
    return { ...rangeParams(min, max, this.bits, this.asymmetric), clipMin: Math.min(min, 0), clipMax: Math.max(max, 0), count: this.count };
  }
}
