/**
 * Search strategies over "how many of the most sensitive layers fall back". Both assume what AMCT
 * assumes: falling back more layers (in ranking order) never makes the metric worse. Each probe is
 * one full evaluation, so strategies are judged by how few they spend.
 */

/** Evaluates the configuration with the `count` most sensitive layers in float; true when acceptable. */
export type Probe = (count: number) => Promise<boolean>;

export type StrategyName = 'binary' | 'sequential';

export interface SearchOutcome {
  /** Smallest passing fallback count found, or undefined when none passed within the budget. */
  count: number | undefined;
  /** Whether the search ended because the evaluation budget ran out. */
  exhausted: boolean;
}

/**
 * `count = 0` is known to fail, so the answer lies in (0, n]. When layers fall back to float,
 * `count = n` is the float model and passes without a probe (`nPasses`); when they fall back to a
 * wider integer type it must be probed like any other count. `mayProbe` says whether the budget
 * (evaluations, time) allows one more probe.
 */
export async function searchFallbackCount(
  strategy: StrategyName,
  n: number,
  probe: Probe,
  mayProbe: () => boolean,
  nPasses = true,
): Promise<SearchOutcome> {
  const tryCount = (c: number) => probe(c);
  if (strategy === 'sequential') {
    // The seed's loop: one more layer in float per evaluation.
    for (let c = 1; c < (nPasses ? n : n + 1); c++) {
      if (!mayProbe()) return { count: undefined, exhausted: true };
      if (await tryCount(c)) return { count: c, exhausted: false };
    }
    return { count: undefined, exhausted: false };
  }
  // Bisection: lo always fails, hi is the smallest count known to pass (n: everything in float).
  let lo = 0;
  let hi = n;
  let passedHi = false;
  while (hi - lo > 1) {
    if (!mayProbe()) return { count: passedHi ? hi : undefined, exhausted: true };
    const mid = (lo + hi) >>> 1;
    if (await tryCount(mid)) {
      hi = mid;
      passedHi = true;
    } else {
      lo = mid;
    }
  }
  if (!passedHi && !nPasses && hi === n) {
    if (!mayProbe()) return { count: undefined, exhausted: true };
    if (await tryCount(n)) return { count: n, exhausted: false };
  }
  return { count: passedHi ? hi : undefined, exhausted: false };
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
