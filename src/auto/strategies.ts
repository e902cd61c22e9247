/**
 * Search strategies over "how many of the most sensitive layers fall back". Both assume what AMCT
 * assumes: falling back more layers (in ranking order) never makes the metric worse. Each probe is
 * one full evaluation, so strategies are judged by how few they spend. findBoundary is the
 * bracket search both the fallback count and the repairs (repairs.ts) run.
 */

/** The evaluator's verdict on one configuration, with its loss (metricEval's second value). */
export interface Verdict {
  ok: boolean;
  loss: number;
}

/** Evaluates the configuration with the `count` most sensitive layers in float. */
export type Probe = (count: number) => Promise<Verdict>;

/**
 * 'interpolated' (the default) places each probe of the fallback count where the bracket's losses,
 * interpolated geometrically, reach the limit (see searchFallbackCount); 'binary' bisects (AMCT's
 * binary search); 'sequential' falls back one more layer per evaluation (AMCT's sequential search).
 */
export type StrategyName = 'interpolated' | 'binary' | 'sequential';
export const STRATEGIES: readonly StrategyName[] = Object.freeze(['interpolated', 'binary', 'sequential']);

export const DEFAULT_STRATEGY: StrategyName = 'interpolated';

export interface SearchOutcome {
  /** Smallest passing fallback count found, or undefined when none passed within the budget. */
  count: number | undefined;
  /** Whether the search ended because the evaluation budget ran out. */
  exhausted: boolean;
}

/** Indices between a failing `lo` and a passing `hi` (hiLoss NaN: assumed to pass, untested). */
export interface Bracket {
  lo: number;
  loLoss: number;
  hi: number;
  hiLoss: number;
}

/**
 * How a probe is placed between the bracket's ends: 'linear' joins their losses by a line (the repairs,
 * where each step changes one layer's repair); 'geometric' joins their logarithms and keeps the probe
 * in the bracket's middle half (the fallback count: see searchFallbackCount).
 */
export type Interpolation = 'linear' | 'geometric';

/**
 * The index strictly inside the bracket where the loss, interpolated between its two ends, reaches
 * the threshold (regula falsi on the count); the midpoint when that cannot be said, or when `bisect`.
 */
export function nextProbe(b: Bracket, threshold: number | undefined, bisect: boolean, interpolation: Interpolation = 'linear'): number {
  const mid = (b.lo + b.hi) >>> 1;
  if (bisect || threshold === undefined || !(b.loLoss > threshold && b.hiLoss <= threshold)) return mid;
  const geometric = interpolation === 'geometric' && threshold > 0 && b.hiLoss > 0;
  const f = geometric
    ? Math.log(b.loLoss / threshold) / Math.log(b.loLoss / b.hiLoss)
    : (b.loLoss - threshold) / (b.loLoss - b.hiLoss);
  const at = Math.ceil(b.lo + f * (b.hi - b.lo));
  const margin = interpolation === 'geometric' ? Math.max(1, Math.floor((b.hi - b.lo) / 4)) : 1;
  return Math.min(Math.max(at, b.lo + margin), b.hi - margin);
}

/**
 * The smallest passing index of a bracket, under the search's assumption that indices fail below
 * some point and pass from it on. Without `threshold` (the loss at which the verdict turns, see
 * Evaluations.lossThreshold) this is a bisection. With it, each probe goes where the losses at the
 * bracket's ends, joined by a line, reach it; after two answers on the same side in a row the next
 * probe is the midpoint (the Illinois remedy for an end that never moves), so a poor line costs at
 * most about twice bisection's probes. `passed` says whether `hi` was seen to pass (not only assumed).
 */
export async function findBoundary(
  bracket: Bracket,
  probe: Probe,
  mayProbe: () => boolean,
  threshold?: () => number | undefined,
  interpolation: Interpolation = 'linear',
): Promise<{ hi: number; passed: boolean; exhausted: boolean }> {
  let { lo, loLoss, hi, hiLoss } = bracket;
  let passed = false;
  let last: boolean | undefined;
  let repeats = 0;
  while (hi - lo > 1) {
    if (!mayProbe()) return { hi, passed, exhausted: true };
    const next = nextProbe({ lo, loLoss, hi, hiLoss }, threshold?.(), repeats >= 2, interpolation);
    const v = await probe(next);
    repeats = v.ok === last ? repeats + 1 : 1;
    last = v.ok;
    if (v.ok) {
      hi = next;
      hiLoss = v.loss;
      passed = true;
    } else {
      lo = next;
      loLoss = v.loss;
    }
  }
  return { hi, passed, exhausted: false };
}

/**
 * `count = 0` is known to fail, so the answer lies in (0, n]; with `from.lo` -1, 0 has not been
 * probed and only a state below it is known to fail (see quantizeAll), so the answer lies in [0, n]. When layers fall back to float,
 * `count = n` is the float model and passes without a probe (`nPasses`); when they fall back to a
 * wider integer type it must be probed like any other count. `mayProbe` says whether the budget
 * (evaluations, time) allows one more probe.
 *
 * 'interpolated' interpolates the logarithm of the loss: falling back the most sensitive layers first
 * removes a share of the loss that shrinks with each layer (the rankings' scores fall off about
 * geometrically), so the loss of a count is nearer an exponential through the bracket's ends than a
 * line (on the PP-OCR models a line lost to bisection: docs/experiments.md). The counts' losses still
 * wander up to 2× about that curve, so each probe stays in the bracket's middle half, and a poor
 * guess costs a few probes more than bisection, never many.
 */
export async function searchFallbackCount(
  strategy: StrategyName,
  n: number,
  probe: Probe,
  mayProbe: () => boolean,
  nPasses = true,
  from: { lo: 0 | -1; loLoss: number } = { lo: 0, loLoss: NaN },
  threshold?: () => number | undefined,
): Promise<SearchOutcome> {
  if (strategy === 'sequential') {
    // The seed's loop: one more layer in float per evaluation.
    for (let c = from.lo + 1; c < (nPasses ? n : n + 1); c++) {
      if (!mayProbe()) return { count: undefined, exhausted: true };
      if ((await probe(c)).ok) return { count: c, exhausted: false };
    }
    return { count: undefined, exhausted: false };
  }
  const interpolated = strategy === 'interpolated' ? threshold : undefined;
  const found = await findBoundary({ lo: from.lo, loLoss: from.loLoss, hi: n, hiLoss: NaN }, probe, mayProbe, interpolated, 'geometric');
  if (found.exhausted) return { count: found.passed ? found.hi : undefined, exhausted: true };
  if (!found.passed && !nPasses && found.hi === n) {
    if (!mayProbe()) return { count: undefined, exhausted: true };
    if ((await probe(n)).ok) return { count: n, exhausted: false };
  }
  return { count: found.passed ? found.hi : undefined, exhausted: false };
}

/**
 * The refinement pass (AutoCalibrationOptions.refine) drops that assumption: each of `candidates`, in
 * order, is probed back in int8 on top of the ones kept so far (`probe` gets the whole set) and kept
 * when the probe passes. One probe per candidate, while `mayProbe` allows.
 */
export async function refineGreedily(
  candidates: readonly string[],
  probe: (back: ReadonlySet<string>, layer: string) => Promise<boolean>,
  mayProbe: () => boolean,
): Promise<{ kept: string[]; exhausted: boolean }> {
  const kept: string[] = [];
  for (const layer of candidates) {
    if (!mayProbe()) return { kept, exhausted: true };
    if (await probe(new Set([...kept, layer]), layer)) kept.push(layer);
  }
  return { kept, exhausted: false };
}
