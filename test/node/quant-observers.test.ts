/**
 * The activation observers and AMCT's range-to-parameter formulas, tested directly against
 * hand-computed values and brute-force oracles built on `referenceKernels`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { getKernels, referenceKernels, SCALE_EPSILON, type Kernels } from '../../src/subpaths/kernels.js';
import { activationRange, asymmetricParams, rangeParams, symmetricParams, WEIGHT_RANGE } from '../../src/quant/calibrate/params.js';
import { HfmgObserver } from '../../src/quant/calibrate/observers/hfmg.js';
import { IfmrObserver, type IfmrOptions } from '../../src/quant/calibrate/observers/ifmr.js';
import { MinMaxObserver } from '../../src/quant/calibrate/observers/minmax.js';
import { PercentileObserver } from '../../src/quant/calibrate/observers/percentile.js';
import { StreamingHistogram } from '../../src/quant/calibrate/observers/histogram.js';
import { createObserver } from '../../src/quant/calibrate/observers/index.js';
import type { ActivationResult } from '../../src/quant/calibrate/observers/types.js';
import { Random } from '../helpers/random.js';

const f32 = Math.fround;
let k: Kernels;
beforeAll(async () => {
  k = await getKernels();
});

const IFMR8: IfmrOptions = {
  bits: 8,
  asymmetric: true,
  minPercentile: 0.999999,
  maxPercentile: 0.999999,
  searchRange: [0.7, 1.3],
  searchStep: 0.01,
};

/** Σ (fq(x) - x)^2 with the reference kernel, in float64. */
function sqError(x: Float32Array, scale: number, zeroPoint: number, bits: 8 | 16 = 8): number {
  const fq = referenceKernels.fakeQuantize(x, scale, zeroPoint, { type: bits === 8 ? 'int8' : 'int16' });
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (fq[i]! - x[i]!) ** 2;
  return s;
}

const errOf = (x: Float32Array, r: ActivationResult, bits: 8 | 16 = 8) => sqError(x, r.scale, r.zeroPoint, bits);

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Gaussian bulk with a few large positive and negative outliers. */
function outlierData(seed: number, n: number, outliers: number[]): Float32Array {
  const r = new Random(seed);
  const x = r.normals(n, 1);
  for (let i = 0; i < outliers.length; i++) x[r.int(0, n - 1)] = outliers[i]!;
  return x;
}

describe('params: AMCT range-to-factor formulas', () => {
  it('asymmetric int8: scale = (max - min) / 255, offset = round(-128 - min / scale)', () => {
    const p = asymmetricParams(-1, 3, 8);
    expect(p.scale).toBe(f32(4 / 255));
    // -128 + 1 / (4/255) = -128 + 63.75 = -64.25 -> -64
    expect(p.zeroPoint).toBe(-64);
    const q = asymmetricParams(-0.5, 2, 8);
    expect(q.scale).toBe(f32(2.5 / 255));
    expect(q.zeroPoint).toBe(Math.round(-128 + 0.5 / f32(2.5 / 255))); // -128 + 51 = -77
    expect(q.zeroPoint).toBe(-77);
    // 0 is exactly representable: dequantize(zeroPoint) == 0 and quantize(0) == zeroPoint
    expect(referenceKernels.quantize(new Float32Array([0]), p.scale, p.zeroPoint, { type: 'int8' })[0]).toBe(p.zeroPoint);
  });

  it('asymmetric: a range that does not include 0 is widened to include it', () => {
    const pos = asymmetricParams(2, 6, 8);
    expect(pos).toEqual({ scale: f32(6 / 255), zeroPoint: -128 });
    const neg = asymmetricParams(-6, -2, 8);
    expect(neg).toEqual({ scale: f32(6 / 255), zeroPoint: 127 });
    // the widened range's ends are grid points
    expect((127 - pos.zeroPoint) * pos.scale).toBeCloseTo(6, 5);
    expect((-128 - neg.zeroPoint) * neg.scale).toBeCloseTo(-6, 5);
  });

  it('symmetric int8: scale = absmax / 127, or absmax / 128 when the largest magnitude is negative; offset 0', () => {
    expect(symmetricParams(-1, 3, 8)).toEqual({ scale: f32(3 / 127), zeroPoint: 0 });
    expect(symmetricParams(-4, 3, 8)).toEqual({ scale: f32(4 / 128), zeroPoint: 0 });
    expect(symmetricParams(2, 6, 8)).toEqual({ scale: f32(6 / 127), zeroPoint: 0 });
    expect(symmetricParams(-6, -2, 8)).toEqual({ scale: f32(6 / 128), zeroPoint: 0 });
    expect(rangeParams(-1, 3, 8, false)).toEqual(symmetricParams(-1, 3, 8));
    expect(rangeParams(-1, 3, 8, true)).toEqual(asymmetricParams(-1, 3, 8));
  });

  it('16-bit uses the int16 range', () => {
    expect(activationRange(16)).toEqual({ type: 'int16', qmin: -32768, qmax: 32767 });
    expect(activationRange(8)).toEqual({ type: 'int8', qmin: -128, qmax: 127 });
    const a = asymmetricParams(-1, 3, 16);
    expect(a.scale).toBe(f32(4 / 65535));
    expect(a.zeroPoint).toBe(Math.round(-32768 + 1 / f32(4 / 65535))); // -32768 + 16383.75 -> -16384
    expect(a.zeroPoint).toBe(-16384);
    expect(symmetricParams(-1, 3, 16)).toEqual({ scale: f32(3 / 32767), zeroPoint: 0 });
    expect(symmetricParams(-4, 3, 16)).toEqual({ scale: f32(4 / 32768), zeroPoint: 0 });
    expect(WEIGHT_RANGE).toMatchObject({ type: 'int8', qmin: -127, qmax: 127 });
  });

  it('all-zero data (and ranges too small for float32) give scale 1 (AMCT guard)', () => {
    expect(asymmetricParams(0, 0, 8)).toEqual({ scale: 1, zeroPoint: -128 });
    expect(symmetricParams(0, 0, 8)).toEqual({ scale: 1, zeroPoint: 0 });
    expect(symmetricParams(0, 0, 16)).toEqual({ scale: 1, zeroPoint: 0 });
    // (1e-5 - 0) / 255 = 3.9e-8 < 2^-23
    expect(asymmetricParams(0, 1e-5, 8).scale).toBe(1);
    expect(symmetricParams(-1e-5, 0, 8).scale).toBe(1);
    // just above the threshold the scale is kept
    const s = asymmetricParams(0, 255 * 2 * SCALE_EPSILON, 8).scale;
    expect(s).toBe(f32(2 * SCALE_EPSILON));
  });
});

/** AMCT's IFMR over raw values (8-bit asymmetric): percentile seeds by sorting, every ratio tried. */
function exactIfmr(x: Float32Array, ratios: number[]) {
  const sorted = Array.from(x).sort((a, b) => a - b);
  const n = sorted.length;
  const min0 = Math.min(0, sorted[n - Math.ceil(0.999999 * n)]!);
  const max0 = Math.max(0, sorted[Math.ceil(0.999999 * n) - 1]!);
  let best = { err: Infinity, lo: 0, hi: 0 };
  for (const ratio of ratios) {
    const p = asymmetricParams(ratio * min0, ratio * max0, 8);
    const err = sqError(x, p.scale, p.zeroPoint);
    if (err < best.err) best = { err, lo: ratio * min0, hi: ratio * max0 };
  }
  return { min0, max0, best };
}

describe('IFMR', () => {
  it('tries the 60 ratios 0.7, 0.71, ..., 1.29', () => {
    const o = new IfmrObserver(k, IFMR8);
    const r = o.ratios();
    expect(r).toHaveLength(60);
    r.forEach((v, i) => expect(v).toBeCloseTo(0.7 + 0.01 * i, 12));
  });

  it('picks the candidate with the least squared error (brute force over all 60 ratios with referenceKernels)', () => {
    // Uniform bulk in [-2, 10] plus a few outliers up to 13: the best clip lies strictly inside the search range.
    const r = new Random(7);
    const batches = [0, 1].map(() => Float32Array.from({ length: 20_000 }, () => r.uniform(-2, 10)));
    batches[0]![5] = 13;
    batches[1]![17] = 12.5;
    batches[1]![99] = -2.6;
    const x = concat(batches);
    const o = new IfmrObserver(k, IFMR8);
    for (const b of batches) o.observe(b);
    const got = o.compute();

    // 0.999999 of 40000 values: the seed is the exact min and max
    let min0 = Infinity;
    let max0 = -Infinity;
    for (const v of x) {
      min0 = Math.min(min0, v);
      max0 = Math.max(max0, v);
    }
    min0 = Math.min(min0, 0);
    max0 = Math.max(max0, 0);
    const errors: number[] = [];
    const cands: { scale: number; zeroPoint: number; ratio: number }[] = [];
    for (let i = 0; i < 60; i++) {
      const ratio = 0.7 + 0.01 * i;
      const lo = ratio * min0;
      const hi = ratio * max0;
      // AMCT by hand, independent of params.ts
      let scale = f32((hi - lo) / 255);
      if (!(scale >= 2 ** -23)) scale = 1;
      const zeroPoint = Math.max(-128, Math.min(127, Math.round(-128 - lo / scale)));
      cands.push({ scale, zeroPoint, ratio });
      errors.push(sqError(x, scale, zeroPoint));
    }
    let best = 0;
    for (let i = 1; i < 60; i++) if (errors[i]! < errors[best]!) best = i;
    // the test data is meant to have an interior optimum
    expect(best).toBeGreaterThan(0);
    expect(best).toBeLessThan(59);
    expect(got.scale).toBe(cands[best]!.scale);
    expect(got.zeroPoint).toBe(cands[best]!.zeroPoint);
    expect(got.clipMax).toBeCloseTo(cands[best]!.ratio * max0, 10);
    expect(got.clipMin).toBeCloseTo(cands[best]!.ratio * min0, 10);
    expect(got.count).toBe(x.length);
    // it is truly the least among all candidates
    expect(errOf(x, got)).toBe(Math.min(...errors));
  });

  it('gives the same result with the reference kernels as with the Wasm kernels', () => {
    const batches = [outlierData(3, 30_000, [25, -18]), outlierData(4, 30_000, [40])];
    const a = new IfmrObserver(k, IFMR8);
    const b = new IfmrObserver(referenceKernels, IFMR8);
    for (const x of batches) {
      a.observe(x);
      b.observe(x);
    }
    expect(a.compute()).toEqual(b.compute());
  });

  it('clips outliers harder than min-max, with less squared error', () => {
    const batches = [outlierData(11, 50_000, [30, -22, 35]), outlierData(12, 50_000, [28, -30])];
    const x = concat(batches);
    const ifmr = new IfmrObserver(k, IFMR8);
    const mm = new MinMaxObserver(k, 8, true);
    for (const b of batches) {
      ifmr.observe(b);
      mm.observe(b);
    }
    const ri = ifmr.compute();
    const rm = mm.compute();
    expect(ri.clipMax).toBeLessThan(rm.clipMax);
    expect(ri.clipMin).toBeGreaterThan(rm.clipMin);
    expect(ri.scale).toBeLessThan(rm.scale);
    expect(errOf(x, ri)).toBeLessThan(errOf(x, rm));
  });

  it('symmetric mode gives zero point 0; 16-bit searches in the int16 range', () => {
    const x = outlierData(21, 20_000, [12, -9]);
    const sym = new IfmrObserver(k, { ...IFMR8, asymmetric: false });
    sym.observe(x);
    const rs = sym.compute();
    expect(rs.zeroPoint).toBe(0);

    const o16 = new IfmrObserver(k, { ...IFMR8, bits: 16 });
    o16.observe(x);
    const r16 = o16.compute();
    // a 16-bit scale spans 65535 steps of the clip range
    expect(r16.scale).toBeCloseTo((r16.clipMax - r16.clipMin) / 65535, 9);
    expect(r16.zeroPoint).toBeGreaterThanOrEqual(-32768);
    expect(r16.zeroPoint).toBeLessThanOrEqual(32767);
    // brute force in int16
    let best = Infinity;
    let min0 = 0;
    let max0 = 0;
    for (const v of x) {
      min0 = Math.min(min0, v);
      max0 = Math.max(max0, v);
    }
    for (let i = 0; i < 60; i++) {
      const ratio = 0.7 + 0.01 * i;
      const p = asymmetricParams(ratio * min0, ratio * max0, 16);
      best = Math.min(best, sqError(x, p.scale, p.zeroPoint, 16));
    }
    expect(errOf(x, r16, 16)).toBe(best);
    expect(errOf(x, r16, 16)).toBeLessThan(errOf(x, (() => {
      const o = new IfmrObserver(k, IFMR8);
      o.observe(x);
      return o.compute();
    })(), 8));
  });

  it('all-zero activations give scale 1', () => {
    const o = new IfmrObserver(k, IFMR8);
    o.observe(new Float32Array(1000));
    const r = o.compute();
    expect(r.scale).toBe(1);
    expect(errOf(new Float32Array(1000), r)).toBe(0);
  });

  it('holds fixed memory, no raw values: 24 bytes × histogram bins (counts, and sums and counts of the first batch) whatever it observes', () => {
    const o = new IfmrObserver(k, IFMR8);
    const before = o.bytesHeld;
    o.observe(new Float32Array(100_000).map((_, i) => i % 7));
    o.observe(new Float32Array(50).fill(-1e4));
    expect(o.bytesHeld).toBe(before);
    expect(before).toBe(24 * 8192);
  });

  it('over batches whose ranges grow (the histogram doubles its range 10 times): clip values within one histogram step of the exact raw-value search, squared error within 0.1% of its optimum (the neighbouring ratio only where the two all but tie)', () => {
    const bad: string[] = [];
    let exact = 0;
    for (const seed of [31, 32, 33, 34]) {
      const r = new Random(seed);
      const batches = [r.normals(20_000, 0.01), r.normals(20_000, 1), outlierData(seed, 20_000, [9, -7.5]), r.normals(5, 10)];
      const x = concat(batches);
      const o = new IfmrObserver(k, IFMR8);
      for (const b of batches) o.observe(b);
      const got = o.compute();
      const { min0, max0, best } = exactIfmr(x, o.ratios());
      const ours = errOf(x, got);
      // Where two neighbouring ratios' exact errors differ by less than the estimate resolves, the
      // neighbour may win: then the clip is one ratio step (1%) off and the error all but equal.
      const within = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol;
      const sameClip = within(got.clipMax, best.hi, o.step) && within(got.clipMin, best.lo, o.step);
      const neighbour = within(got.clipMax, best.hi, 0.0101 * max0 + o.step) && within(got.clipMin, best.lo, 0.0101 * -min0 + o.step);
      if (!(sameClip || neighbour) || ours > best.err * 1.001) {
        bad.push(`seed ${seed}: clip [${got.clipMin}, ${got.clipMax}] vs exact [${best.lo}, ${best.hi}] (step ${o.step}), error ${ours} vs ${best.err}`);
      }
      if (sameClip) exact++;
    }
    expect(bad).toEqual([]);
    expect(exact).toBeGreaterThanOrEqual(3);
  });

  it('post-ReLU data whose zeros are most of the values (a point mass): the same choice as the exact search over raw values', () => {
    const bad: string[] = [];
    for (const seed of [41, 42, 43]) {
      const r = new Random(seed);
      // 90% zeros, a bulk up to about 4 and a sparse tail up to 14: a ReLU output whose best clip
      // lies inside the search range.
      const batches = [0, 1].map(() => Float32Array.from({ length: 30_000 }, () => {
        const u = r.next();
        return u < 0.9 ? 0 : u < 0.9995 ? Math.abs(r.normal()) : 4 + r.next() * 10;
      }));
      const x = concat(batches);
      const o = new IfmrObserver(k, IFMR8);
      for (const b of batches) o.observe(b);
      const got = o.compute();
      const { max0, best } = exactIfmr(x, o.ratios());
      const ours = errOf(x, got);
      if (Math.abs(got.clipMax - best.hi) > 0.0101 * max0 + o.step || ours > best.err * 1.001) bad.push(`seed ${seed}: clip max ${got.clipMax} vs exact ${best.hi}, error ${ours} vs ${best.err}`);
    }
    expect(bad).toEqual([]);
  });

  it('copies each batch: a caller reusing its buffer does not change what was observed', () => {
    const buf = Float32Array.from({ length: 1000 }, (_, i) => (i % 100) / 10 - 2);
    const a = new IfmrObserver(k, IFMR8);
    a.observe(buf);
    const expected = (() => {
      const b = new IfmrObserver(k, IFMR8);
      b.observe(buf.slice());
      return b.compute();
    })();
    buf.fill(1000);
    expect(a.compute()).toEqual(expected);
  });
});

describe('percentile', () => {
  /** The rank rule by sorting: max = value with ceil(p·n) values at or below it; min mirrors it. */
  function bySorting(x: Float32Array, pMin: number, pMax: number) {
    const s = Array.from(x).filter((v) => v === v).sort((a, b) => a - b);
    const n = s.length;
    return { min: s[n - Math.ceil(pMin * n)]!, max: s[Math.ceil(pMax * n) - 1]! };
  }

  it('the streaming histogram reads percentiles within one bin of the exact order statistics (heavy tails, duplicates, NaN, batches that widen the range both ways)', () => {
    const r = new Random(5);
    const batch = (n: number, wide: number) => {
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const u = r.next();
        x[i] = u < 0.3 ? Math.round(r.normal() * 4) / 4 : u < 0.999 ? r.normal() : r.normal() * wide;
      }
      return x;
    };
    const batches = [batch(50_000, 1), batch(30_001, 1000), batch(20_002, 5)];
    batches[0]![10] = NaN;
    batches[1]![20] = NaN;
    batches.push(Float32Array.of(-5e4));
    const x = concat(batches);
    const h = new StreamingHistogram(k);
    for (const b of batches) h.observe(b);
    expect(h.count).toBe(x.length - 2);
    const bad: string[] = [];
    for (const [pMin, pMax] of [[0.99999, 0.99999], [0.999999, 0.999999], [0.99, 0.999], [0.75, 0.5], [1, 1]] as const) {
      const got = h.percentiles(pMin, pMax);
      const want = bySorting(x, pMin, pMax);
      if (Math.abs(got.min - want.min) > h.step || Math.abs(got.max - want.max) > h.step) bad.push(`${pMin} ${pMax}: [${got.min}, ${got.max}] vs [${want.min}, ${want.max}], step ${h.step}`);
    }
    expect(bad).toEqual([]);
    // p = 1: the exact extremes
    const all = Array.from(x).filter((v) => v === v);
    expect(h.percentiles(1, 1)).toEqual({ min: Math.min(...all), max: Math.max(...all) });
  });

  it('the histogram\'s squared-error estimate is within 1% of the exact error over the raw values, for clip ranges inside and beyond the data', () => {
    const r = new Random(19);
    const x = concat([r.normals(40_000, 1), outlierData(3, 10_000, [12, -9])]);
    const h = new StreamingHistogram(k);
    h.observe(x);
    const bad: string[] = [];
    for (const [lo, hi] of [[-3, 3], [-1, 2], [-9, 12], [-20, 20], [0, 1]] as const) {
      const p = asymmetricParams(lo, hi, 8);
      const est = h.squaredError(p.scale, p.zeroPoint, 8);
      const exact = sqError(x, p.scale, p.zeroPoint);
      if (Math.abs(est - exact) > 0.01 * exact) bad.push(`[${lo}, ${hi}]: ${est} vs ${exact}`);
    }
    expect(bad).toEqual([]);
  });

  it('a value of ±Infinity is a CalibrationError, not a silent range', () => {
    const h = new StreamingHistogram(k);
    expect(() => h.observe(Float32Array.of(1, Infinity))).toThrow(/Infinity/);
  });

  it('the observer merges batches and its clip range is within one histogram step of the exact percentiles (widened to 0)', () => {
    const r = new Random(6);
    const batches = [r.normals(30_001, 2, 0.5), r.normals(20_000, 1, -0.2), r.normals(7, 50)];
    const x = concat(batches);
    const o = new PercentileObserver(k, 8, true, 0.999, 0.9999);
    for (const b of batches) o.observe(b);
    const got = o.compute();
    const want = bySorting(x, 0.999, 0.9999);
    expect(want.min).toBeLessThan(0);
    expect(want.max).toBeGreaterThan(0);
    expect(Math.abs(got.clipMin - want.min)).toBeLessThanOrEqual(o.step);
    expect(Math.abs(got.clipMax - want.max)).toBeLessThanOrEqual(o.step);
    expect(got.count).toBe(x.length);
    expect({ scale: got.scale, zeroPoint: got.zeroPoint }).toEqual(asymmetricParams(got.clipMin, got.clipMax, 8));

    const sym = new PercentileObserver(k, 8, false, 0.999, 0.9999);
    for (const b of batches) sym.observe(b);
    expect(sym.compute().zeroPoint).toBe(0);
  });
});

describe('HFMG', () => {
  it('merges batches whose ranges differ (second batch wider) without losing mass', () => {
    const r = new Random(13);
    const a = r.normals(40_000, 0.5);
    const b = r.normals(40_000, 2); // wider range: the histogram is re-binned
    const c = r.normals(1000, 0.1); // narrower: no re-binning
    const merged = new HfmgObserver(k, 8, true, 4096);
    merged.observe(a);
    merged.observe(b);
    merged.observe(c);
    const counts = merged.counts;
    const mass = counts.reduce((s, v) => s + v, 0);
    expect(mass).toBeCloseTo(81_000, 6);
    expect(merged.bytesHeld).toBe(4096 * 24);
    const rm = merged.compute();
    expect(rm.count).toBe(81_000);

    // Same data in one batch: nearly the same error. The merged histogram's bins are coarser (its
    // range doubled to cover the second batch), so its trims land elsewhere: the scales differ by
    // up to about one trim step.
    const x = concat([a, b, c]);
    const once = new HfmgObserver(k, 8, true, 4096);
    once.observe(x);
    const ro = once.compute();
    expect(Math.abs(rm.scale - ro.scale) / ro.scale).toBeLessThan(0.1);
    expect(errOf(x, rm)).toBeLessThan(1.05 * errOf(x, ro));
    // the first batch's range is covered
    const mm = k.minMax(x);
    expect(rm.clipMin).toBeLessThan(0);
    expect(rm.clipMax).toBeGreaterThan(0);
    expect(rm.clipMin).toBeGreaterThanOrEqual(mm.min);
    expect(rm.clipMax).toBeLessThanOrEqual(mm.max);
  });

  it('on outlier-heavy data: error no worse than 1.5 × IFMR and better than min-max', () => {
    const r = new Random(17);
    const batches = [0, 1, 2].map(() => {
      const x = r.normals(40_000, 1);
      // 0.5% outliers up to ±40
      for (let i = 0; i < 200; i++) x[r.int(0, x.length - 1)] = (r.next() < 0.5 ? -1 : 1) * r.uniform(5, 40);
      return x;
    });
    batches[2]![3] = 60; // the last batch widens the range
    const x = concat(batches);
    const hfmg = new HfmgObserver(k, 8, true, 4096);
    const ifmr = new IfmrObserver(k, IFMR8);
    const mm = new MinMaxObserver(k, 8, true);
    for (const b of batches) for (const o of [hfmg, ifmr, mm]) o.observe(b);
    const eh = errOf(x, hfmg.compute());
    const ei = errOf(x, ifmr.compute());
    const em = errOf(x, mm.compute());
    console.log(`squared error on outlier data: hfmg ${eh.toFixed(1)}, ifmr ${ei.toFixed(1)}, minmax ${em.toFixed(1)}`);
    expect(eh).toBeLessThanOrEqual(1.5 * ei);
    expect(eh).toBeLessThan(em);
  });

  it('on skewed data (ReLU-like, long tail) trims the sparse tail and beats min-max', () => {
    const r = new Random(19);
    const x = Float32Array.from({ length: 100_000 }, () => Math.max(0, r.normal()) ** 2);
    const hfmg = new HfmgObserver(k, 8, true, 4096);
    hfmg.observe(x);
    const rh = hfmg.compute();
    const mm = new MinMaxObserver(k, 8, true);
    mm.observe(x);
    const rm = mm.compute();
    expect(rh.clipMin).toBe(0);
    expect(rh.zeroPoint).toBe(-128);
    expect(rh.clipMax).toBeLessThan(rm.clipMax);
    expect(errOf(x, rh)).toBeLessThan(errOf(x, rm));
  });

  it('all-zero data gives scale 1; symmetric mode gives zero point 0; 16-bit gives int16 factors', () => {
    const z = new HfmgObserver(k, 8, true, 4096);
    z.observe(new Float32Array(500));
    z.observe(new Float32Array(500));
    const rz = z.compute();
    expect(rz.scale).toBe(1);
    expect(rz.count).toBe(1000);

    const x = new Random(23).normals(20_000, 1.5, 0.3);
    const sym = new HfmgObserver(k, 8, false, 4096);
    sym.observe(x);
    expect(sym.compute().zeroPoint).toBe(0);

    const h16 = new HfmgObserver(k, 16, true, 4096);
    h16.observe(x);
    const r16 = h16.compute();
    expect(r16.scale).toBeCloseTo((r16.clipMax - r16.clipMin) / 65535, 9);
    expect(r16.zeroPoint).toBeLessThan(-128); // offset only reachable in int16
    expect(r16.zeroPoint).toBeGreaterThanOrEqual(-32768);
  });
});

describe('MinMax', () => {
  it('tracks the exact min and max across batches', () => {
    const r = new Random(29);
    const batches = [r.normals(1000, 1), r.normals(10, 5, 3), r.normals(500, 0.1)];
    const x = concat(batches);
    let min = Infinity;
    let max = -Infinity;
    for (const v of x) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const o = new MinMaxObserver(k, 8, true);
    for (const b of batches) o.observe(b);
    const got = o.compute();
    expect(got.clipMin).toBe(min);
    expect(got.clipMax).toBe(max);
    expect(got.count).toBe(1510);
    expect({ scale: got.scale, zeroPoint: got.zeroPoint }).toEqual(asymmetricParams(min, max, 8));
    expect(o.bytesHeld).toBe(16);
  });

  it('widens a range without 0 to include it, ignores NaN, and an empty observer gives scale 1', () => {
    const o = new MinMaxObserver(k, 8, true);
    o.observe(new Float32Array([2, NaN, 5, 3]));
    const r = o.compute();
    expect(r.clipMin).toBe(0);
    expect(r.clipMax).toBe(5);
    expect(r).toMatchObject(asymmetricParams(0, 5, 8));

    const e = new MinMaxObserver(k, 8, true);
    expect(e.compute()).toMatchObject({ scale: 1, count: 0 });
  });

  it('symmetric mode gives zero point 0 and absmax / 127 (or / 128)', () => {
    const o = new MinMaxObserver(k, 8, false);
    o.observe(new Float32Array([-1, 0.5, 2.54]));
    expect(o.compute()).toMatchObject({ scale: f32(2.54 / 127), zeroPoint: 0 });
    const n = new MinMaxObserver(k, 8, false);
    n.observe(new Float32Array([-2.56, 0.5, 1]));
    expect(n.compute()).toMatchObject({ scale: f32(2.56 / 128), zeroPoint: 0 });
  });

  it('16-bit gives int16 factors', () => {
    const o = new MinMaxObserver(k, 16, true);
    o.observe(new Float32Array([-1, 3]));
    expect(o.compute()).toMatchObject({ scale: f32(4 / 65535), zeroPoint: -16384 });
    const s = new MinMaxObserver(k, 16, false);
    s.observe(new Float32Array([-1, 3]));
    expect(s.compute()).toMatchObject({ scale: f32(3 / 32767), zeroPoint: 0 });
  });
});

describe('createObserver', () => {
  it('maps each act_algo to its observer, with asymmetric defaulting to activation_offset', () => {
    expect(createObserver(k, { num_bits: 8, act_algo: 'ifmr' }, true)).toBeInstanceOf(IfmrObserver);
    expect(createObserver(k, { num_bits: 8, act_algo: 'hfmg' }, true)).toBeInstanceOf(HfmgObserver);
    expect(createObserver(k, { num_bits: 8, act_algo: 'minmax' }, true)).toBeInstanceOf(MinMaxObserver);
    expect(createObserver(k, { num_bits: 8, act_algo: 'percentile' }, true)).toBeInstanceOf(PercentileObserver);
    const x = new Float32Array([-1, 2, 3]);
    for (const [p, def, zeroPointIsZero] of [
      [{ num_bits: 8, act_algo: 'minmax' }, false, true],
      [{ num_bits: 8, act_algo: 'minmax' }, true, false],
      [{ num_bits: 8, act_algo: 'minmax', asymmetric: false }, true, true],
      [{ num_bits: 8, act_algo: 'minmax', asymmetric: true }, false, false],
    ] as const) {
      const o = createObserver(k, p, def);
      o.observe(x);
      expect(o.compute().zeroPoint === 0, JSON.stringify([p, def])).toBe(zeroPointIsZero);
    }
  });
});
