import { beforeAll, describe, expect, it } from 'vitest';
import { getKernels, referenceKernels, type Kernels } from '../../src/kernels/index.js';
import { ODD_LENGTHS, quantInputs, Random } from '../helpers/random.js';

let wasm: Kernels;
beforeAll(async () => {
  wasm = await getKernels();
});

const LENGTHS = [...ODD_LENGTHS, 16383, 16385, 2 * 16384 + 9];

function withSpecials(rng: Random, x: Float32Array, rate: number): Float32Array {
  for (let i = 0; i < x.length; i++) {
    if (rng.next() < rate) x[i] = rng.pick([NaN, Infinity, -Infinity, 1e30, -1e30]);
  }
  return x;
}

describe('minMax', () => {
  it('matches the reference on random inputs, NaN ignored', () => {
    const rng = new Random(1);
    for (const n of LENGTHS) {
      for (const nanRate of [0, 0.01, 0.5]) {
        const x = rng.normals(n, rng.logUniform(1e-3, 1e3), rng.uniform(-5, 5));
        for (let i = 0; i < n; i++) if (rng.next() < nanRate) x[i] = NaN;
        const a = wasm.minMax(x);
        const b = referenceKernels.minMax(x);
        expect(a.min).toBe(b.min);
        expect(a.max).toBe(b.max);
      }
    }
  });

  it('edge cases: empty, all NaN, infinities, extremes at the ends', () => {
    for (const k of [referenceKernels, wasm]) {
      expect(k.minMax(new Float32Array(0))).toEqual({ min: Infinity, max: -Infinity });
      expect(k.minMax(new Float32Array(37).fill(NaN))).toEqual({ min: Infinity, max: -Infinity });
      expect(k.minMax(new Float32Array([NaN, -Infinity, 3, Infinity, NaN]))).toEqual({ min: -Infinity, max: Infinity });
      const x = new Float32Array(33).fill(1);
      x[0] = -7;
      x[32] = 9;
      expect(k.minMax(x)).toEqual({ min: -7, max: 9 });
    }
  });

  it('per-channel min / max / abs-max along every axis', () => {
    const rng = new Random(2);
    for (let rep = 0; rep < 20; rep++) {
      const rank = rng.int(1, 4);
      const shape = Array.from({ length: rank }, () => (rng.next() < 0.2 ? rng.int(17, 60) : rng.int(1, 6)));
      const n = shape.reduce((a, b) => a * b, 1);
      const x = withSpecials(rng, rng.normals(n, 2), 0.02);
      for (let axis = -1; axis < rank; axis++) {
        const a = wasm.minMaxPerChannel(x, shape, axis);
        const b = referenceKernels.minMaxPerChannel(x, shape, axis);
        expect(Array.from(a.min)).toEqual(Array.from(b.min));
        expect(Array.from(a.max)).toEqual(Array.from(b.max));
        expect(Array.from(wasm.absMaxPerChannel(x, shape, axis))).toEqual(
          Array.from(referenceKernels.absMaxPerChannel(x, shape, axis)),
        );
      }
    }
    // long channels and many channels cross the streaming chunk
    for (const [shape, axis] of [
      [[3, 50001], 1],
      [[50001, 3], 0],
      [[4, 3, 20000], 1],
    ] as Array<[number[], number]>) {
      const x = rng.normals(shape.reduce((a, b) => a * b, 1));
      expect(wasm.minMaxPerChannel(x, shape, axis)).toEqual(referenceKernels.minMaxPerChannel(x, shape, axis));
    }
  });

  it('per-channel edge cases: empty channels and all-NaN channels', () => {
    for (const k of [referenceKernels, wasm]) {
      const r = k.minMaxPerChannel(new Float32Array(0), [0, 3], 1);
      expect(Array.from(r.min)).toEqual([Infinity, Infinity, Infinity]);
      expect(Array.from(r.max)).toEqual([-Infinity, -Infinity, -Infinity]);
      expect(Array.from(k.absMaxPerChannel(new Float32Array(0), [0, 3], 1))).toEqual([0, 0, 0]);
      const x = new Float32Array([NaN, 1, NaN, -5]);
      expect(Array.from(k.absMaxPerChannel(x, [2, 2], 1))).toEqual([0, 5]);
    }
  });
});

describe('histogram', () => {
  it('matches the reference and accumulates into Float64Array and Uint32Array', () => {
    const rng = new Random(3);
    for (const n of LENGTHS) {
      const bins = rng.pick([1, 2, 7, 256, 2048]);
      const x = withSpecials(rng, rng.normals(n, 1.5), 0.03);
      const lo = rng.uniform(-3, -1);
      const hi = rng.uniform(0.5, 3);
      const a = new Float64Array(bins).fill(1);
      const b = new Float64Array(bins).fill(1);
      wasm.histogram(x, lo, hi, a);
      referenceKernels.histogram(x, lo, hi, b);
      expect(Array.from(a)).toEqual(Array.from(b));
      let nans = 0;
      for (const v of x) if (Number.isNaN(v)) nans++;
      expect(a.reduce((s, v) => s + v, 0)).toBe(n - nans + bins);
      const u = new Uint32Array(bins);
      wasm.histogram(x, lo, hi, u);
      wasm.histogram(x, lo, hi, u); // two batches merge
      expect(Array.from(u)).toEqual(Array.from(b).map((v) => 2 * (v - 1)));
    }
  });

  it('with sums: the same counts, and each bin sums exactly its values in float64 (reference and Wasm, resident input too)', () => {
    const rng = new Random(4);
    for (const n of LENGTHS) {
      const bins = rng.pick([1, 2, 7, 256, 8192]);
      const x = withSpecials(rng, rng.normals(n, 1.5), 0.03).map((v) => (Number.isFinite(v) || Number.isNaN(v) ? v : 0));
      const lo = rng.uniform(-3, -1);
      const hi = rng.uniform(0.5, 3);
      const counts = [new Float64Array(bins), new Float64Array(bins), new Float64Array(bins)];
      const sums = [new Float64Array(bins).fill(0.5), new Float64Array(bins).fill(0.5), new Float64Array(bins).fill(0.5)];
      referenceKernels.histogram(x, lo, hi, counts[0]!, sums[0]!);
      wasm.histogram(x, lo, hi, counts[1]!, sums[1]!);
      if (n > 0) {
        const resident = wasm.allocate(n);
        resident.array.set(x);
        wasm.histogram(resident.array, lo, hi, counts[2]!, sums[2]!);
        resident.free();
      } else {
        counts[2]!.set(counts[0]!);
        sums[2]!.set(sums[0]!);
      }
      const plain = new Float64Array(bins);
      wasm.histogram(x, lo, hi, plain);
      for (let i = 1; i < 3; i++) {
        expect(Array.from(counts[i]!)).toEqual(Array.from(counts[0]!));
        // Summation order differs (lanes): equal to float64 rounding.
        sums[i]!.forEach((v, b) => expect(v).toBeCloseTo(sums[0]![b]!, 9));
      }
      expect(Array.from(plain)).toEqual(Array.from(counts[0]!));
    }
    for (const k of [referenceKernels, wasm]) {
      const counts = new Float64Array(4);
      const sums = new Float64Array(4);
      k.histogram(new Float32Array([0.5, 0.25, 1.5, 3.5, 3.75, NaN]), 0, 4, counts, sums);
      expect(Array.from(sums)).toEqual([0.75, 1.5, 0, 7.25]);
      expect(() => k.histogram(new Float32Array(1), 0, 1, counts, new Float64Array(3))).toThrow(/sums must be a Float64Array as long as counts/);
    }
  });

  it('edges: lo goes to bin 0, hi and above to the last bin, below lo to bin 0, NaN skipped', () => {
    for (const k of [referenceKernels, wasm]) {
      const counts = new Float64Array(4);
      k.histogram(new Float32Array([0, 1, 2, 3, 4, -1, 5, Infinity, -Infinity, NaN, 0.999, 1.0]), 0, 4, counts);
      expect(Array.from(counts)).toEqual([4, 2, 1, 4]);
    }
  });
});

describe('fakeQuantSquaredError (IFMR clip search)', () => {
  function candidates(rng: Random, K: number, qmin: number, qmax: number) {
    const scale = new Float32Array(K);
    const zeroPoint = new Int32Array(K);
    for (let k = 0; k < K; k++) {
      scale[k] = rng.logUniform(1e-3, 0.1);
      zeroPoint[k] = rng.int(qmin, qmax);
    }
    return { scale, zeroPoint, qmin, qmax };
  }

  it('matches the float64 reference for batches of candidates', () => {
    const rng = new Random(4);
    for (const n of [0, 1, 5, 7, 9, 1023, 4095, 4097, 10001]) {
      const x = rng.normals(n, 1);
      for (const [qmin, qmax] of [
        [-128, 127],
        [0, 255],
        [-127, 127],
        [-32768, 32767],
      ]) {
        const c = candidates(rng, rng.int(1, 9), qmin!, qmax!);
        const a = wasm.fakeQuantSquaredError(x, c);
        const b = referenceKernels.fakeQuantSquaredError(x, c);
        for (let k = 0; k < a.length; k++) {
          expect(Math.abs(a[k]! - b[k]!)).toBeLessThanOrEqual(1e-12 * Math.abs(b[k]!) + 1e-300);
        }
      }
    }
  });

  it('equals the error of fakeQuantize computed separately, and saturation equals clipping at grid ends', () => {
    const rng = new Random(5);
    const x = rng.normals(3001, 2);
    const K = 60; // AMCT: ratios 0.70 .. 1.29
    const { min, max } = wasm.minMax(x);
    const scale = new Float32Array(K);
    const zeroPoint = new Int32Array(K);
    for (let k = 0; k < K; k++) {
      const r = 0.7 + 0.01 * k;
      const cmin = Math.min(0, r * min);
      const cmax = Math.max(0, r * max);
      scale[k] = (cmax - cmin) / 255;
      zeroPoint[k] = Math.max(-128, Math.min(127, Math.round(-128 - cmin / scale[k]!)));
    }
    const sums = wasm.fakeQuantSquaredError(x, { scale, zeroPoint, qmin: -128, qmax: 127 });
    for (let k = 0; k < K; k++) {
      const s = scale[k]!;
      const z = zeroPoint[k]!;
      const fq = wasm.fakeQuantize(x, s, z, { type: 'int8' });
      // explicit clip to the grid's ends, then fake-quantize: identical to saturation
      const lo = Math.fround((-128 - z) * s);
      const hi = Math.fround((127 - z) * s);
      const clipped = x.map((v) => Math.min(hi, Math.max(lo, v)));
      const fqClipped = wasm.fakeQuantize(clipped, s, z, { type: 'int8' });
      expect(Array.from(fqClipped)).toEqual(Array.from(fq));
      let e = 0;
      for (let i = 0; i < x.length; i++) e += (fq[i]! - x[i]!) ** 2;
      expect(Math.abs(sums[k]! - e)).toBeLessThanOrEqual(1e-12 * e);
    }
  });

  it('propagates NaN and Infinity; returns zeros for empty input; writes into out', () => {
    const c = { scale: new Float32Array([0.1, 0.2]), zeroPoint: new Int32Array([0, 1]), qmin: -128, qmax: 127 };
    for (const k of [referenceKernels, wasm]) {
      expect(Array.from(k.fakeQuantSquaredError(new Float32Array([1, NaN, 2]), c)).every(Number.isNaN)).toBe(true);
      expect(Array.from(k.fakeQuantSquaredError(new Float32Array([1, Infinity]), c))).toEqual([Infinity, Infinity]);
      expect(Array.from(k.fakeQuantSquaredError(new Float32Array(0), c))).toEqual([0, 0]);
      const out = new Float64Array(2).fill(5);
      expect(k.fakeQuantSquaredError(new Float32Array([0.05]), c, out)).toBe(out);
      expect(out[0]).toBe(Math.fround(0.05) ** 2); // 0.05 / 0.1 = 0.5 -> 0, error = x^2
    }
  });
});

describe('cosine / mse / sqnr', () => {
  function f64Reference(a: Float32Array, b: Float32Array) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    let dd = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      ab += x * y;
      aa += x * x;
      bb += y * y;
      dd += (x - y) ** 2;
    }
    return { cos: ab / Math.sqrt(aa * bb), mse: dd / a.length, sqnr: 10 * Math.log10(aa / dd) };
  }

  it('match the float64 reference on random inputs of many lengths', () => {
    const rng = new Random(6);
    for (const n of LENGTHS.filter((n) => n > 0)) {
      const a = rng.normals(n, 3, 1);
      const b = a.map((v) => v + 0.01 * rng.normal());
      const r = f64Reference(a, b);
      expect(Math.abs(wasm.cosine(a, b) - r.cos)).toBeLessThan(1e-12);
      expect(Math.abs(referenceKernels.cosine(a, b) - r.cos)).toBeLessThan(1e-12);
      expect(Math.abs(wasm.mse(a, b) - r.mse)).toBeLessThanOrEqual(1e-12 * r.mse);
      expect(Math.abs(wasm.sqnr(a, b) - r.sqnr)).toBeLessThan(1e-9);
      expect(Math.abs(referenceKernels.sqnr(a, b) - r.sqnr)).toBeLessThan(1e-9);
    }
  });

  it('edge cases: zero vectors, identical vectors, empty inputs', () => {
    const z = new Float32Array(5);
    const v = new Float32Array([1, -2, 3, 0, 5]);
    for (const k of [referenceKernels, wasm]) {
      expect(k.cosine(z, z)).toBe(1);
      expect(k.cosine(z, v)).toBe(0);
      expect(k.cosine(v, z)).toBe(0);
      expect(k.cosine(v, v)).toBe(1);
      expect(k.cosine(v, v.map((t) => -2 * t))).toBe(-1);
      expect(k.cosine(new Float32Array(0), new Float32Array(0))).toBe(1);
      expect(k.mse(new Float32Array(0), new Float32Array(0))).toBe(0);
      expect(k.mse(v, v)).toBe(0);
      expect(k.sqnr(v, v)).toBe(Infinity);
      expect(k.sqnr(z, z)).toBe(Infinity);
      expect(k.sqnr(z, v)).toBe(-Infinity);
      expect(k.sqnr(new Float32Array(0), new Float32Array(0))).toBe(Infinity);
      expect(k.cosine(new Float32Array([NaN, 1]), v.subarray(0, 2))).toBeNaN();
    }
  });

  it('16M elements: cosine agrees with a float64 JavaScript reference to 1e-9', () => {
    const n = 16 * 1024 * 1024;
    const rng = new Random(7);
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const v = rng.normal();
      a[i] = v + 0.5;
      b[i] = v + 0.5 + 1e-3 * rng.normal();
    }
    const r = f64Reference(a, b);
    const c = wasm.cosine(a, b);
    expect(Math.abs(c - r.cos)).toBeLessThan(1e-9);
    expect(c).toBeLessThan(1);
    expect(Math.abs(wasm.mse(a, b) - r.mse)).toBeLessThanOrEqual(1e-9 * r.mse);
    expect(Math.abs(wasm.sqnr(a, b) - r.sqnr)).toBeLessThan(1e-7);
  }, 120_000);
});

describe('quantized-input statistics stay consistent', () => {
  it('sqnr of fakeQuantize output matches the reference', () => {
    const rng = new Random(8);
    const x = quantInputs(rng, 5000, 0.01, 100).map((v) => (Number.isFinite(v) && Math.abs(v) < 10 ? v : 0));
    const f = wasm.fakeQuantize(x, 0.01, 0, { type: 'int8' });
    expect(Math.abs(wasm.sqnr(x, f) - referenceKernels.sqnr(x, f))).toBeLessThan(1e-9);
  });
});
