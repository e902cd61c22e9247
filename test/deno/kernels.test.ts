// Deno: the BUILT package's Wasm kernels against its scalar reference (run `npm run build` first).
import assert from 'node:assert/strict';
import { getKernels, referenceKernels } from '../../dist/kernels.js';
import { rng } from './random.ts';

function inputs(next: () => number, n: number, scale: number): Float32Array {
  const specials = [NaN, Infinity, -Infinity, 3e38, -3e38, 0, -0];
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    if (r < 0.05) x[i] = specials[Math.floor(next() * specials.length)]!;
    else if (r < 0.4) x[i] = (Math.floor(next() * 400) - 200 + 0.5) * scale; // exact ties
    else x[i] = (next() * 2 - 1) * 300 * scale;
  }
  return x;
}

const sameBits = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
  }
};

Deno.test('wasm kernels load with SIMD and are shared', async () => {
  const [a, b] = await Promise.all([getKernels(), getKernels()]);
  assert.equal(a, b);
  assert.equal(a.backend, 'wasm-simd');
});

Deno.test('quantize / dequantize / fakeQuantize match the reference (ties, specials, all types)', async () => {
  const k = await getKernels();
  const next = rng(42);
  assert.deepEqual(Array.from(k.quantize(new Float32Array([-1.5, -0.5, 0.5, 1.5, 2.5]), 1, 0, { type: 'int8' })), [-2, 0, 0, 2, 2]);
  for (const type of ['int8', 'uint8', 'int16'] as const) {
    const zp = type === 'uint8' ? 128 : type === 'int8' ? -5 : 17;
    for (const n of [0, 1, 3, 5, 7, 15, 17, 1023, 20001]) {
      const scale = 2 ** -Math.floor(next() * 8);
      const x = inputs(next, n, scale);
      const q = k.quantize(x, scale, zp, { type });
      sameBits(q, referenceKernels.quantize(x, scale, zp, { type }), `quantize ${type} ${n}`);
      sameBits(k.dequantize(q, scale, zp), referenceKernels.dequantize(q, scale, zp), `dequantize ${type} ${n}`);
      sameBits(k.fakeQuantize(x, scale, zp, { type }), referenceKernels.fakeQuantize(x, scale, zp, { type }), `fq ${type} ${n}`);
    }
  }
});

Deno.test('per-channel along every axis matches the reference', async () => {
  const k = await getKernels();
  const next = rng(7);
  const shape = [3, 5, 4, 6];
  const n = shape.reduce((a, b) => a * b, 1);
  const x = inputs(next, n, 0.05);
  for (let axis = 0; axis < shape.length; axis++) {
    const C = shape[axis]!;
    const scales = new Float32Array(C).map(() => Math.fround(0.01 + next() * 0.1));
    const zps = Int32Array.from({ length: C }, () => Math.floor(next() * 256) - 128);
    const opts = { type: 'int8' as const, axis, shape };
    sameBits(k.quantize(x, scales, zps, opts), referenceKernels.quantize(x, scales, zps, opts), `q axis ${axis}`);
    sameBits(k.fakeQuantize(x, scales, zps, opts), referenceKernels.fakeQuantize(x, scales, zps, opts), `fq axis ${axis}`);
    const a = k.minMaxPerChannel(x, shape, axis);
    const b = referenceKernels.minMaxPerChannel(x, shape, axis);
    assert.deepEqual(Array.from(a.min), Array.from(b.min));
    assert.deepEqual(Array.from(a.max), Array.from(b.max));
  }
});

Deno.test('reductions match the reference', async () => {
  const k = await getKernels();
  const next = rng(9);
  const a = new Float32Array(100003).map(() => next() * 2 - 1);
  const b = a.map((v) => v + 1e-3 * (next() - 0.5));
  assert.ok(Math.abs(k.cosine(a, b) - referenceKernels.cosine(a, b)) < 1e-12);
  assert.ok(Math.abs(k.sqnr(a, b) - referenceKernels.sqnr(a, b)) < 1e-9);
  assert.ok(Math.abs(k.mse(a, b) / referenceKernels.mse(a, b) - 1) < 1e-12);
  assert.deepEqual(k.minMax(a), referenceKernels.minMax(a));
  const h1 = new Float64Array(2048);
  const h2 = new Float64Array(2048);
  k.histogram(a, -1, 1, h1);
  referenceKernels.histogram(a, -1, 1, h2);
  assert.deepEqual(Array.from(h1), Array.from(h2));
  const c = { scale: new Float32Array([0.004, 0.008, 0.01]), zeroPoint: new Int32Array([0, -3, 5]), qmin: -128, qmax: 127 };
  const e1 = k.fakeQuantSquaredError(a, c);
  const e2 = referenceKernels.fakeQuantSquaredError(a, c);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(e1[i]! / e2[i]! - 1) < 1e-12);
});

Deno.test('crossMoments matches the reference', async () => {
  const k = await getKernels();
  const next = rng(21);
  const rows = 101;
  const d = 13;
  const a = new Float32Array(rows * d).map(() => next() * 2 - 1);
  const b = new Float32Array(rows * d).map(() => next() * 2 - 1);
  const [h1, g1, h2, g2] = [0, 1, 2, 3].map(() => new Float64Array(d * d));
  k.crossMoments(a, b, rows, d, h1!, g1!);
  referenceKernels.crossMoments(a, b, rows, d, h2!, g2!);
  for (let i = 0; i < d * d; i++) {
    assert.ok(Math.abs(h1![i]! - h2![i]!) < 1e-9);
    assert.ok(Math.abs(g1![i]! - g2![i]!) < 1e-9);
  }
});

Deno.test('roundRows makes the same choices as the reference', async () => {
  const k = await getKernels();
  const next = rng(23);
  const rows = 6;
  const d = 11;
  const n = 80;
  const a = new Float32Array(n * d).map(() => 3 + next() - 0.5);
  const b = a.map((v) => v + 0.05 * (next() - 0.5));
  const hh = new Float64Array(d * d);
  const g = new Float64Array(d * d);
  k.crossMoments(a, b, n, d, hh, g);
  const h = new Float64Array(d * d);
  for (let j = 0; j < d; j++) for (let i = j; i < d; i++) h[j * d + i] = h[i * d + j] = hh[j * d + i]!;
  const w = new Float32Array(rows * d).map(() => next() * 2 - 1);
  const scale = new Float64Array(rows).fill(1 / 100);
  const nearest = Int8Array.from(w, (v) => Math.round(v * 100));
  const [q1, q2] = [nearest.slice(), nearest.slice()];
  const o1 = k.roundRows(h, g, w, scale, q1, d, 20);
  const o2 = referenceKernels.roundRows(h, g, w, scale, q2, d, 20);
  assert.deepEqual(Array.from(q1), Array.from(q2));
  assert.deepEqual(Array.from(o1), Array.from(o2));
  assert.notDeepEqual(Array.from(q1), Array.from(nearest));
});
