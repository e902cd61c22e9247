/**
 * Exact order statistics of a large array without sorting it: a histogram (Wasm) finds the bin
 * holding the wanted rank, then only that bin's values are sorted.
 */
import type { Kernels } from '../../kernels/types.js';

const BINS = 4096;

/**
 * The values at the given ranks of the non-NaN values of x (ascending). `rankOf(n)` maps the count
 * of non-NaN values to a 0-based rank. Undefined when x has no non-NaN value.
 */
function valuesAtRanks(k: Kernels, x: Float32Array, rankOf: ((n: number) => number)[]): (number | undefined)[] {
  const { min, max } = k.minMax(x);
  if (!(min <= max)) return rankOf.map(() => undefined);
  if (min === max) return rankOf.map(() => min);
  const counts = new Float64Array(BINS);
  k.histogram(x, min, max, counts);
  let n = 0;
  for (let i = 0; i < BINS; i++) n += counts[i]!;
  return rankOf.map((f) => {
    const r = Math.min(n - 1, Math.max(0, f(n)));
    let bin = 0;
    let below = 0;
    while (below + counts[bin]! <= r) below += counts[bin++]!;
    // The extremes need no search (and a ReLU output's zero bin can hold most of the values).
    if (r === 0) return min;
    if (r === n - 1) return max;
    // Same float32 arithmetic as the kernel's documented binning, so membership agrees.
    const scale = Math.fround(BINS / (max - min));
    const inBin = new Float32Array(counts[bin]!);
    let m = 0;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v !== v) continue;
      const b = Math.floor(Math.min(BINS - 1, Math.max(0, Math.fround(Math.fround(v - min) * scale))));
      if (b === bin) inBin[m++] = v;
    }
    return inBin.sort((a, b) => a - b)[r - below];
  });
}

/**
 * The lower and upper percentile values: `maxPercentile` 0.999999 gives the value below which that
 * fraction lies; `minPercentile` mirrors it from the bottom. NaN ignored; empty input gives 0, 0.
 */
export function percentileRange(k: Kernels, x: Float32Array, minPercentile: number, maxPercentile: number): { min: number; max: number } {
  const [lo, hi] = valuesAtRanks(k, x, [
    // Mirror of the upper rank: as many values lie below the lower one as above the upper one.
    (n) => n - Math.ceil(minPercentile * n),
    (n) => Math.ceil(maxPercentile * n) - 1,
  ]);
  return { min: lo ?? 0, max: hi ?? 0 };
}
