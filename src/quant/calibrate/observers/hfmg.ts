import type { Kernels } from '../../../kernels/types.js';
import { rangeParams } from '../params.js';
import { StreamingHistogram } from './histogram.js';
import type { ActivationObserver, ActivationResult } from './types.js';

/**
 * HFMG: a histogram merged across batches (the streaming histogram of histogram.ts with `bins`
 * bins: fixed memory, exact merges), then a search that trims the sparser tail bin by bin and keeps
 * the range whose estimated L2 quantization error is least (the idea of PyTorch's
 * HistogramObserver), with the histogram's own error estimate.
 */
export class HfmgObserver implements ActivationObserver {
  private readonly h: StreamingHistogram;

  constructor(k: Kernels, private readonly bits: 8 | 16, private readonly asymmetric: boolean, bins: number) {
    this.h = new StreamingHistogram(k, bins);
  }

  get bytesHeld(): number {
    return this.h.bytes;
  }

  /** The merged counts (for tests). */
  get counts(): Float64Array {
    return this.h.counts;
  }

  observe(x: Float32Array): void {
    this.h.observe(x);
  }

  private error(a: number, b: number): number {
    const { scale, zeroPoint } = rangeParams(a, b, this.bits, this.asymmetric);
    return this.h.squaredError(scale, zeroPoint, this.bits);
  }

  compute(): ActivationResult {
    const h = this.h;
    if (h.count === 0) return { ...rangeParams(0, 0, this.bits, this.asymmetric), clipMin: 0, clipMax: 0, count: 0 };
    const n = h.bins;
    const w = h.step;
    const counts = h.counts;
    const edge = (bin: number) => h.low + bin * w;
    const zeroBin = Math.min(n - 1, Math.max(0, Math.floor((0 - h.low) / w)));
    let start = 0;
    let end = n - 1;
    const full = { a: Math.min(0, h.min), b: Math.max(0, h.max) };
    let best = { ...full, err: this.error(full.a, full.b) };
    // Trim whichever end holds less mass, never past the bin holding 0. Steps of n/512 bins bound
    // the search to about 512 candidates whatever num_of_bins is.
    const step = Math.max(1, Math.floor(n / 512));
    while (start < zeroBin || end > zeroBin) {
      const trimStart = end <= zeroBin || (start < zeroBin && counts[start]! <= counts[end]!);
      if (trimStart) start = Math.min(zeroBin, start + step);
      else end = Math.max(zeroBin, end - step);
      const a = Math.min(0, Math.max(full.a, edge(start)));
      const b = Math.max(0, Math.min(full.b, edge(end + 1)));
      const err = this.error(a, b);
      if (err < best.err) best = { a, b, err };
    }
    return { ...rangeParams(best.a, best.b, this.bits, this.asymmetric), clipMin: best.a, clipMax: best.b, count: h.count };
  }
}
