import { describe, expect, it } from 'vitest';
import { findBoundary, nextProbe, searchFallbackCount } from '../../src/auto/strategies.js';

// A deterministic generator, so that a failing case can be replayed.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** Losses falling with the index (monotone), passing at or below `limit` from `boundary` on. */
function monotone(n: number, rnd: () => number, limit: number): { loss: number[]; boundary: number } {
  const loss = new Array<number>(n + 1);
  loss[n] = 0;
  for (let i = n - 1; i >= 0; i--) loss[i] = loss[i + 1]! + rnd() * (rnd() < 0.3 ? 3 : 1) * limit * (4 / n);
  let boundary = 0;
  while (loss[boundary]! > limit) boundary++;
  return { loss, boundary };
}

describe('findBoundary (the bracket search of the fallback count and the repairs)', () => {
  it('finds the same smallest passing index as a scan, with or without the threshold, on 300 monotone sequences', async () => {
    const rnd = lcg(7);
    for (let t = 0; t < 300; t++) {
      const n = 2 + Math.floor(rnd() * 60);
      const limit = 0.001;
      const { loss, boundary } = monotone(n, rnd, limit);
      if (boundary === 0) continue;
      for (const threshold of [undefined, () => limit]) {
        let probes = 0;
        const found = await findBoundary(
          { lo: 0, loLoss: loss[0]!, hi: n, hiLoss: 0 },
          async (i) => {
            probes++;
            return { ok: loss[i]! <= limit, loss: loss[i]! };
          },
          () => true,
          threshold,
        );
        expect(found.hi).toBe(boundary);
        // The Illinois step bounds a poor line to about twice bisection's probes.
        expect(probes).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(n)) + 2);
      }
    }
  });

  it('needs at most two probes where the loss is a straight line', async () => {
    const n = 40;
    const loss = Array.from({ length: n + 1 }, (_, i) => 0.004 * (1 - i / n));
    let probes = 0;
    const found = await findBoundary({ lo: 0, loLoss: loss[0]!, hi: n, hiLoss: 0 }, async (i) => {
      probes++;
      return { ok: loss[i]! <= 0.001, loss: loss[i]! };
    }, () => true, () => 0.001);
    expect(found.hi).toBe(30);
    expect(probes).toBeLessThanOrEqual(2);
  });

  it('probes the midpoint when the threshold is unknown or the ends do not straddle it', () => {
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 10, hiLoss: 0 }, undefined, false)).toBe(5);
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 10, hiLoss: 0 }, 0.001, true)).toBe(5);
    expect(nextProbe({ lo: 0, loLoss: 0.0005, hi: 10, hiLoss: 0 }, 0.001, false)).toBe(5);
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 10, hiLoss: NaN }, 0.001, false)).toBe(5);
    // Inside the bracket, never at its ends.
    expect(nextProbe({ lo: 3, loLoss: 1, hi: 5, hiLoss: 0 }, 0.999, false)).toBe(4);
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 10, hiLoss: 0 }, 0.001, false)).toBe(8);
  });

  it('interpolates the logarithm of the loss geometrically, kept in the bracket\'s middle half', () => {
    // Losses 0.004 at 0 and 0.0001 at 16: log-linear reaches 0.001 at 16·ln 4/ln 40 = 6.01, a line at 12.
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 16, hiLoss: 0.0001 }, 0.001, false, 'geometric')).toBe(7);
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 16, hiLoss: 0.0001 }, 0.001, false, 'linear')).toBe(13);
    // A guess near an end is pulled in to a quarter of the bracket.
    expect(nextProbe({ lo: 0, loLoss: 1, hi: 16, hiLoss: 0.0009 }, 0.001, false, 'geometric')).toBe(12);
    expect(nextProbe({ lo: 0, loLoss: 0.0011, hi: 16, hiLoss: 0.0001 }, 0.001, false, 'geometric')).toBe(4);
    // A passing end without loss has no logarithm: the line, within the same margin.
    expect(nextProbe({ lo: 0, loLoss: 0.004, hi: 16, hiLoss: 0 }, 0.001, false, 'geometric')).toBe(12);
  });

  it('stops when the budget does, returning the best passing index seen', async () => {
    let left = 2;
    const found = await findBoundary({ lo: 0, loLoss: 1, hi: 64, hiLoss: NaN }, async (i) => ({ ok: i >= 10, loss: i >= 10 ? 0 : 1 }), () => left-- > 0);
    expect(found).toEqual({ hi: 16, passed: true, exhausted: true });
  });
});

describe('searchFallbackCount', () => {
  it('bisects the count and needs no probe of n when layers fall back to float', async () => {
    const seen: number[] = [];
    const r = await searchFallbackCount('binary', 32, async (c) => (seen.push(c), { ok: c >= 13, loss: c >= 13 ? 0 : 1 }), () => true);
    expect(r).toEqual({ count: 13, exhausted: false });
    expect(seen).toEqual([16, 8, 12, 14, 13]);
  });

  it('with count 0 unprobed (outputs dropped, not evaluated) bisects [0, n] and spends no probe on 0 when the answer is above it', async () => {
    const seen: number[] = [];
    const r = await searchFallbackCount('binary', 32, async (c) => (seen.push(c), { ok: c >= 13, loss: c >= 13 ? 0 : 1 }), () => true, true, { lo: -1, loLoss: 1 });
    expect(r).toEqual({ count: 13, exhausted: false });
    expect(seen).toEqual([15, 7, 11, 13, 12]);
  });

  it('with count 0 unprobed finds 0 itself when the model without output quantizations passes', async () => {
    const seen: number[] = [];
    const r = await searchFallbackCount('binary', 8, async (c) => (seen.push(c), { ok: true, loss: 0 }), () => true, true, { lo: -1, loLoss: 1 });
    expect(r).toEqual({ count: 0, exhausted: false });
    expect(seen.at(-1)).toBe(0);
    const sequential: number[] = [];
    expect((await searchFallbackCount('sequential', 8, async (c) => (sequential.push(c), { ok: c >= 2, loss: 0 }), () => true, true, { lo: -1, loLoss: 1 })).count).toBe(2);
    expect(sequential).toEqual([0, 1, 2]);
  });

  it('interpolated finds the boundary of geometrically falling losses in fewer probes than bisection', async () => {
    // Loss 0.01·0.7^c: the limit 0.001 is first met at c = 7.
    const loss = (c: number) => 0.01 * 0.7 ** c;
    const run = async (strategy: 'interpolated' | 'binary') => {
      const seen: number[] = [];
      const r = await searchFallbackCount(strategy, 40, async (c) => (seen.push(c), { ok: loss(c) <= 0.001, loss: loss(c) }), () => true, true, { lo: 0, loLoss: loss(0) }, () => 0.001);
      return { count: r.count, probes: seen.length };
    };
    const interpolated = await run('interpolated');
    const binary = await run('binary');
    expect(interpolated.count).toBe(7);
    expect(binary.count).toBe(7);
    expect(interpolated.probes).toBeLessThan(binary.probes);
  });

  it('probes n itself when the fallback is a wider integer type and nothing below passes', async () => {
    const seen: number[] = [];
    const r = await searchFallbackCount('binary', 4, async (c) => (seen.push(c), { ok: c === 4, loss: 0 }), () => true, false);
    expect(r.count).toBe(4);
    expect(seen.at(-1)).toBe(4);
  });
});
