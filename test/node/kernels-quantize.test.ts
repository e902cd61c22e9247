import { beforeAll, describe, expect, it } from 'vitest';
import { getKernels, referenceKernels, type Kernels, type QuantType } from '../../src/kernels/index.js';
import { QUANT_RANGES } from '../../src/kernels/args.js';
import { firstBitMismatch, ODD_LENGTHS, quantInputs, Random } from '../helpers/random.js';

let wasm: Kernels;
beforeAll(async () => {
  wasm = await getKernels();
});

const TYPES: QuantType[] = ['int8', 'uint8', 'int16'];
/** Lengths around the vector width and around the streaming chunk (16384 elements). */
const LENGTHS = [...ODD_LENGTHS, 16383, 16385, 3 * 16384 + 5];

function expectSameBits(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, input?: Float32Array) {
  const i = firstBitMismatch(actual as Float32Array, expected as Float32Array);
  if (i >= 0) {
    const x = input ? ` (x=${input[i]})` : '';
    expect.fail(`${what}: element ${i}${x}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

function randomScale(rng: Random): number {
  const r = rng.next();
  if (r < 0.3) return 2 ** rng.int(-12, 4); // exact ties possible
  if (r < 0.4) return rng.pick([1e-30, 1e-38, 1e-40, 1.4e-45, 2 ** -23, 1.1e-7]); // tiny and denormal
  return Math.fround(rng.logUniform(1e-4, 10));
}

function randomZeroPoint(rng: Random, type: QuantType): number {
  const [lo, hi] = QUANT_RANGES[type];
  const r = rng.next();
  if (r < 0.2) return lo;
  if (r < 0.4) return hi;
  if (r < 0.6) return type === 'uint8' ? 128 : 0;
  return rng.int(lo, hi);
}

describe('QuantizeLinear semantics (hand-written expectations)', () => {
  it('rounds ties to even', () => {
    const x = new Float32Array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]);
    for (const k of [referenceKernels, wasm]) {
      expect(Array.from(k.quantize(x, 1, 0, { type: 'int8' }))).toEqual([-2, -2, 0, 0, 2, 2, 4]);
    }
    const y = new Float32Array([-1.5, -0.5, 0.5, 1.5, 2.5]);
    expect(Array.from(wasm.quantize(y, 1, 0, { type: 'int8' }))).toEqual([-2, 0, 0, 2, 2]);
  });

  it('divides by the scale (no reciprocal multiply) and saturates', () => {
    // 0.3 / 0.1 in float32 is 3.0000002 -> 3, and 254.5 / 1 + 1 rounds to 254 + 1 then saturates at 255
    const x = new Float32Array([0.3, 0.25, 0.35, 1000, -1000, 12.7, 12.8]);
    expect(Array.from(wasm.quantize(x, 0.1, 0, { type: 'int8' }))).toEqual(
      Array.from(referenceKernels.quantize(x, 0.1, 0, { type: 'int8' })),
    );
    expect(Array.from(wasm.quantize(new Float32Array([254.5, 255.5, -1, -0.5]), 1, 0, { type: 'uint8' }))).toEqual([
      254, 255, 0, 0,
    ]);
    expect(Array.from(wasm.quantize(new Float32Array([3.5, 4.5, -300]), 1, 100, { type: 'int8' }))).toEqual([
      104, 104, -128,
    ]);
  });

  it('maps NaN to the zero point and ±Infinity / huge values to the range ends', () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, 3.4e38, -3.4e38, -0, 0]);
    for (const k of [referenceKernels, wasm]) {
      expect(Array.from(k.quantize(x, 0.5, 7, { type: 'int8' }))).toEqual([7, 127, -128, 127, -128, 7, 7]);
      expect(Array.from(k.quantize(x, 0.5, 128, { type: 'uint8' }))).toEqual([128, 255, 0, 255, 0, 128, 128]);
      expect(Array.from(k.quantize(x, 0.5, -3, { type: 'int16' }))).toEqual([-3, 32767, -32768, 32767, -32768, -3, -3]);
      expect(Array.from(k.fakeQuantize(x, 0.5, 7, { type: 'int8' }))).toEqual([0, 60, -67.5, 60, -67.5, 0, 0]);
    }
  });

  it('uses tiny and denormal scales exactly as given', () => {
    const x = new Float32Array([1e-45, 2.8e-45, 4.2e-45, -1.4e-45, 1e-40, 1]);
    const s = 1.4e-45; // smallest float32 denormal
    for (const k of [referenceKernels, wasm]) {
      expect(Array.from(k.quantize(x, s, 0, { type: 'int16' }))).toEqual([1, 2, 3, -1, 32767, 32767]);
    }
  });

  it('dequantizes as (q - zp) * scale in float32', () => {
    const q = new Int8Array([-128, -1, 0, 1, 127]);
    expect(Array.from(wasm.dequantize(q, 0.1, -1))).toEqual([-127, 0, 1, 2, 128].map((v) => Math.fround(v * Math.fround(0.1))));
    const u = new Uint8Array([0, 128, 255]);
    expect(Array.from(wasm.dequantize(u, 2, 128))).toEqual([-256, 0, 254]);
    const h = new Int16Array([-32768, 32767]);
    expect(Array.from(wasm.dequantize(h, 1, 0))).toEqual([-32768, 32767]);
  });
});

describe('wasm matches the reference bit for bit (per-tensor)', () => {
  it.each(TYPES)('quantize / dequantize / fakeQuantize %s over many lengths and parameters', (type) => {
    const rng = new Random(0x5eed + type.length);
    const [qmin, qmax] = QUANT_RANGES[type];
    for (const n of LENGTHS) {
      for (let rep = 0; rep < (n > 5000 ? 2 : 6); rep++) {
        const scale = randomScale(rng);
        const zp = randomZeroPoint(rng, type);
        const x = quantInputs(rng, n, Math.fround(scale), Math.min(qmax - qmin, 600));
        const what = `${type} n=${n} scale=${scale} zp=${zp}`;
        const q = wasm.quantize(x, scale, zp, { type });
        const qr = referenceKernels.quantize(x, scale, zp, { type });
        expectSameBits(q, qr, `quantize ${what}`, x);
        const d = wasm.dequantize(q, scale, zp);
        expectSameBits(d, referenceKernels.dequantize(qr, scale, zp), `dequantize ${what}`);
        const f = wasm.fakeQuantize(x, scale, zp, { type });
        expectSameBits(f, referenceKernels.fakeQuantize(x, scale, zp, { type }), `fakeQuantize ${what}`, x);
        expectSameBits(f, d, `fakeQuantize == dequantize(quantize) ${what}`, x);
      }
    }
  });

  it('dequantizes every representable value exactly', () => {
    for (const type of TYPES) {
      const [qmin, qmax] = QUANT_RANGES[type];
      const q = new (type === 'int8' ? Int8Array : type === 'uint8' ? Uint8Array : Int16Array)(qmax - qmin + 1);
      for (let i = 0; i < q.length; i++) q[i] = qmin + i;
      for (const [s, z] of [
        [1, 0],
        [0.0123, qmin],
        [7.5, qmax],
        [1e-40, 0],
      ] as const) {
        const d = wasm.dequantize(q, s, z);
        for (let i = 0; i < q.length; i++) {
          if (d[i] !== Math.fround((q[i]! - z) * Math.fround(s))) expect.fail(`${type} ${s} ${z} at ${i}`);
        }
      }
    }
  });

  it('fakeQuantize honours a narrowed range and writes into out (also in place)', () => {
    const rng = new Random(77);
    const x = quantInputs(rng, 1001, 0.05, 200);
    const ref = referenceKernels.fakeQuantize(x, 0.05, 0, { type: 'int8', qmin: -127, qmax: 127 });
    const out = new Float32Array(x.length);
    expect(wasm.fakeQuantize(x, 0.05, 0, { type: 'int8', qmin: -127, qmax: 127, out })).toBe(out);
    expectSameBits(out, ref, 'narrowed');
    expect(Math.min(...out)).toBe(Math.fround(-127 * Math.fround(0.05)));
    const inPlace = x.slice();
    wasm.fakeQuantize(inPlace, 0.05, 0, { type: 'int8', qmin: -127, qmax: 127, out: inPlace });
    expectSameBits(inPlace, ref, 'in place');
    const q = new Int16Array(x.length);
    expect(wasm.quantize(x, 0.05, 3, { type: 'int16', out: q })).toBe(q);
    expectSameBits(q, referenceKernels.quantize(x, 0.05, 3, { type: 'int16' }), 'quantize out');
  });
});

describe('per-channel along every axis', () => {
  function randomShape(rng: Random, rank: number): number[] {
    return Array.from({ length: rank }, () => (rng.next() < 0.2 ? rng.int(17, 40) : rng.int(1, 7)));
  }

  it.each(TYPES)('%s: 1-D to 4-D shapes, every axis, wasm == reference', (type) => {
    const rng = new Random(0xc4a77e1 + type.length);
    for (let rep = 0; rep < 12; rep++) {
      for (let rank = 1; rank <= 4; rank++) {
        const shape = randomShape(rng, rank);
        const n = shape.reduce((a, b) => a * b, 1);
        for (let axis = -1; axis < rank; axis++) {
          const a = axis < 0 ? rank - 1 : axis;
          const C = shape[a]!;
          const scales = new Float32Array(C).map(() => randomScale(rng));
          const zps = Int32Array.from({ length: C }, () => randomZeroPoint(rng, type));
          const x = quantInputs(rng, n, 0.05, 200);
          const opts = { type, axis, shape };
          const what = `${type} shape=[${shape}] axis=${axis}`;
          const q = wasm.quantize(x, scales, zps, opts);
          expectSameBits(q, referenceKernels.quantize(x, scales, zps, opts), `quantize ${what}`, x);
          const d = wasm.dequantize(q, scales, zps, { axis, shape });
          expectSameBits(d, referenceKernels.dequantize(q, scales, zps, { axis, shape }), `dequantize ${what}`);
          const f = wasm.fakeQuantize(x, scales, zps, opts);
          expectSameBits(f, referenceKernels.fakeQuantize(x, scales, zps, opts), `fakeQuantize ${what}`, x);
          expectSameBits(f, d, `fq == dq(q) ${what}`, x);
        }
      }
    }
  });

  it('channel parameters really apply per channel (hand-checked)', () => {
    // shape [2, 3], axis 1: scales per column; axis 0: per row
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    expect(Array.from(wasm.quantize(x, new Float32Array([1, 2, 4]), [0, 1, 2], { type: 'int8', axis: 1, shape: [2, 3] }))).toEqual([
      1, 2, 3, 4, 3, 4, // 5 / 2 = 2.5 -> 2 (tie to even) + 1
    ]);
    expect(Array.from(wasm.quantize(x, new Float32Array([1, 2]), 0, { type: 'int8', axis: 0, shape: [2, 3] }))).toEqual([
      1, 2, 3, 2, 2, 3,
    ]);
    expect(Array.from(wasm.quantize(x, new Float32Array([2]), 0, { type: 'int8' }))).toEqual([0, 1, 2, 2, 2, 3]);
  });

  it('streams large per-channel tensors in chunks (inner = 1 and inner > 1)', () => {
    const rng = new Random(99);
    for (const [shape, axis] of [
      [[3, 40000], 1],
      [[40000, 3], 1],
      [[5, 7, 3001], 1],
      [[70001], 0],
      [[2, 33333], 0],
    ] as Array<[number[], number]>) {
      const n = shape.reduce((a, b) => a * b, 1);
      const C = shape[axis]!;
      const scales = new Float32Array(C).map(() => Math.fround(rng.logUniform(1e-3, 1)));
      const zps = Int32Array.from({ length: C }, () => rng.int(-128, 127));
      const x = rng.normals(n, 0.3);
      const opts = { type: 'int8' as const, axis, shape };
      expectSameBits(wasm.fakeQuantize(x, scales, zps, opts), referenceKernels.fakeQuantize(x, scales, zps, opts), `[${shape}] ${axis}`);
      const q = wasm.quantize(x, scales, zps, opts);
      expectSameBits(q, referenceKernels.quantize(x, scales, zps, opts), `q [${shape}]`);
      expectSameBits(wasm.dequantize(q, scales, zps, opts), referenceKernels.dequantize(q, scales, zps, opts), `dq [${shape}]`);
    }
  });
});
