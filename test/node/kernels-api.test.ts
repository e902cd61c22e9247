import { describe, expect, it } from 'vitest';
import { KernelArgumentError } from '../../src/errors.js';
import {
  getKernels,
  getKernelsSync,
  guardScale,
  guardScales,
  referenceKernels,
  SCALE_EPSILON,
  type Kernels,
} from '../../src/kernels/index.js';
import { dequantizeValue, quantizeValue } from '../../src/kernels/reference.js';
import { Random } from '../helpers/random.js';

describe('instantiation', () => {
  it('concurrent getKernels() calls share one instance, and getKernelsSync() returns it', async () => {
    const all = await Promise.all([getKernels(), getKernels(), getKernels()]);
    expect(all[1]).toBe(all[0]);
    expect(all[2]).toBe(all[0]);
    expect(await getKernels()).toBe(all[0]);
    expect(getKernelsSync()).toBe(all[0]);
    expect(all[0]!.backend).toBe('wasm-simd');
  });
});

describe('memory: growth, streaming, no stale views', () => {
  it('small -> 64M elements -> large channel table (grows memory) -> small, all correct', async () => {
    const k = await getKernels();
    const small = new Float32Array([0.5, 1.5, -2.5, 100, NaN]);
    const expectSmall = Array.from(referenceKernels.fakeQuantize(small, 1, 0, { type: 'int8' }));
    expect(Array.from(k.fakeQuantize(small, 1, 0, { type: 'int8' }))).toEqual(expectSmall);

    const n = 64 * 1024 * 1024;
    const big = new Float32Array(n);
    for (let i = 0; i < n; i++) big[i] = ((i * 7919) % 4001) * 0.0625 - 125;
    const s = 0.5;
    const fq = k.fakeQuantize(big, s, 3, { type: 'int8' });
    for (let i = 0; i < n; i++) {
      const e = dequantizeValue(quantizeValue(big[i]!, s, 3, -128, 127), s, 3);
      if (fq[i] !== e) expect.fail(`64M fakeQuantize: element ${i}`);
    }
    const mm = k.minMax(big);
    expect(mm).toEqual({ min: -125, max: 4000 * 0.0625 - 125 });
    expect(k.cosine(big, big)).toBe(1);

    // 8M channels: 64 MiB of per-channel parameters must live in Wasm memory at once -> memory.grow
    const C = 8 * 1024 * 1024;
    const x = big.subarray(0, 2 * C);
    const scales = new Float32Array(C).fill(0.25);
    scales[C - 1] = 2;
    const q = k.quantize(x, scales, 0, { type: 'int16', axis: 1, shape: [2, C] });
    expect(q[0]).toBe(quantizeValue(x[0]!, 0.25, 0, -32768, 32767));
    expect(q[2 * C - 1]).toBe(quantizeValue(x[2 * C - 1]!, 2, 0, -32768, 32767));
    expect(q[C + 5]).toBe(quantizeValue(x[C + 5]!, 0.25, 0, -32768, 32767));

    // after the grow: the small call again (fresh views)
    expect(Array.from(k.fakeQuantize(small, 1, 0, { type: 'int8' }))).toEqual(expectSmall);
    expect(k.minMax(small)).toEqual({ min: -2.5, max: 100 });
    const counts = new Float64Array(4);
    k.histogram(small, -4, 4, counts);
    expect(Array.from(counts)).toEqual([1, 0, 2, 1]);
  }, 120_000);
});

describe('argument validation', () => {
  const x = new Float32Array([1, 2, 3, 4, 5, 6]);
  const cases: Array<[string, (k: Kernels) => unknown, RegExp]> = [
    ['x not Float32Array', (k) => k.quantize(new Float64Array(3) as unknown as Float32Array, 1, 0, { type: 'int8' }), /quantize: x must be a Float32Array/],
    ['scale 0', (k) => k.quantize(x, 0, 0, { type: 'int8' }), /quantize: scale must be a finite number > 0/],
    ['scale negative', (k) => k.fakeQuantize(x, -1, 0, { type: 'int8' }), /fakeQuantize: scale must be/],
    ['scale NaN', (k) => k.quantize(x, NaN, 0, { type: 'int8' }), /scale must be/],
    ['scale Infinity', (k) => k.quantize(x, Infinity, 0, { type: 'int8' }), /scale must be/],
    ['scale 1e39 (float32 overflow)', (k) => k.quantize(x, 1e39, 0, { type: 'int8' }), /scale must be/],
    ['scale 1e-50 (float32 underflow)', (k) => k.dequantize(new Int8Array(2), 1e-50, 0), /dequantize: scale must be/],
    ['zero point out of int8', (k) => k.quantize(x, 1, 128, { type: 'int8' }), /zeroPoint must be an integer in \[-128, 127\]/],
    ['zero point negative for uint8', (k) => k.quantize(x, 1, -1, { type: 'uint8' }), /zeroPoint must be an integer in \[0, 255\]/],
    ['zero point fractional', (k) => k.quantize(x, 1, 0.5, { type: 'int16' }), /zeroPoint must be an integer/],
    ['zero point outside narrowed range', (k) => k.fakeQuantize(x, 1, -128, { type: 'int8', qmin: -127 }), /zeroPoint must be an integer in \[-127, 127\]/],
    ['bad type', (k) => k.quantize(x, 1, 0, { type: 'int4' as 'int8' }), /options.type must be/],
    ['per-channel without axis', (k) => k.quantize(x, new Float32Array([1, 2]), 0, { type: 'int8' }), /needs options.axis and options.shape/],
    ['scale length != shape[axis]', (k) => k.quantize(x, new Float32Array([1, 2]), 0, { type: 'int8', axis: 1, shape: [2, 3] }), /scale has 2 elements but shape\[axis\] is 3/],
    ['zero point length', (k) => k.quantize(x, new Float32Array([1, 2]), [0], { type: 'int8', axis: 0, shape: [2, 3] }), /zeroPoint has 1 elements/],
    ['per-channel bad scale', (k) => k.quantize(x, new Float32Array([1, 0]), 0, { type: 'int8', axis: 0, shape: [2, 3] }), /scale\[1\] must be/],
    ['per-channel bad zero point', (k) => k.quantize(x, new Float32Array([1, 1]), [0, 300], { type: 'int8', axis: 0, shape: [2, 3] }), /zeroPoint\[1\] must be/],
    ['shape product', (k) => k.quantize(x, new Float32Array([1, 2]), 0, { type: 'int8', axis: 0, shape: [2, 4] }), /shape \[2, 4\] has 8 elements but the input has 6/],
    ['axis out of range', (k) => k.quantize(x, new Float32Array([1, 2]), 0, { type: 'int8', axis: 2, shape: [2, 3] }), /axis must be an integer in \[-2, 1\]/],
    ['negative dim', (k) => k.minMaxPerChannel(x, [-2, -3], 0), /shape\[0\] must be a non-negative integer/],
    ['out wrong length', (k) => k.fakeQuantize(x, 1, 0, { type: 'int8', out: new Float32Array(5) }), /out must have length 6/],
    ['out wrong type', (k) => k.quantize(x, 1, 0, { type: 'int8', out: new Uint8Array(6) as unknown as Int8Array }), /out must be a Int8Array/],
    ['dequantize Float32Array', (k) => k.dequantize(x as unknown as Int8Array, 1, 0), /q must be an Int8Array, Uint8Array or Int16Array/],
    ['dequantize Uint8ClampedArray', (k) => k.dequantize(new Uint8ClampedArray(2) as unknown as Uint8Array, 1, 0), /q must be/],
    ['qmin > qmax', (k) => k.fakeQuantize(x, 1, 0, { type: 'int8', qmin: 5, qmax: 4 }), /qmin \(5\) must not exceed/],
    ['qmax outside type', (k) => k.fakeQuantize(x, 1, 0, { type: 'uint8', qmax: 256 }), /options.qmax must be an integer in \[0, 255\]/],
    ['histogram lo >= hi', (k) => k.histogram(x, 1, 1, new Float64Array(4)), /lo must be less than hi/],
    ['histogram no bins', (k) => k.histogram(x, 0, 1, new Float64Array(0)), /bin count/],
    ['histogram counts type', (k) => k.histogram(x, 0, 1, new Int32Array(4) as unknown as Uint32Array), /counts must be a Float64Array or Uint32Array/],
    ['histogram infinite lo', (k) => k.histogram(x, -Infinity, 1, new Float64Array(4)), /lo must be a finite number/],
    ['cosine lengths', (k) => k.cosine(x, x.subarray(1)), /cosine: a and b must have the same length/],
    ['mse type', (k) => k.mse(x, [1, 2, 3, 4, 5, 6] as unknown as Float32Array), /mse: b must be a Float32Array/],
    ['candidates lengths', (k) => k.fakeQuantSquaredError(x, { scale: new Float32Array(2), zeroPoint: new Int32Array(1), qmin: -128, qmax: 127 }), /same length/],
    ['candidate zero point', (k) => k.fakeQuantSquaredError(x, { scale: new Float32Array([1]), zeroPoint: new Int32Array([200]), qmin: -128, qmax: 127 }), /candidates.zeroPoint\[0\] must be an integer in \[-128, 127\]/],
    ['candidate scale', (k) => k.fakeQuantSquaredError(x, { scale: new Float32Array([0]), zeroPoint: new Int32Array([0]), qmin: -128, qmax: 127 }), /candidates.scale\[0\] must be/],
    ['candidate range', (k) => k.fakeQuantSquaredError(x, { scale: new Float32Array([1]), zeroPoint: new Int32Array([0]), qmin: 1, qmax: 0 }), /qmin \(1\) must not exceed/],
  ];

  it.each(cases)('%s', async (_name, call, message) => {
    const wasm = await getKernels();
    for (const k of [wasm, referenceKernels]) {
      let err: unknown;
      try {
        call(k);
      } catch (e) {
        err = e;
      }
      expect(err, `${k.backend} should throw`).toBeInstanceOf(KernelArgumentError);
      expect((err as KernelArgumentError).code).toBe('KERNEL_ARGUMENT');
      expect((err as Error).message).toMatch(message);
    }
  });

  it('accepts per-tensor parameters given as 1-element arrays and negative axes', async () => {
    const k = await getKernels();
    expect(Array.from(k.quantize(x, new Float32Array([2]), [1], { type: 'int8' }))).toEqual([1, 2, 3, 3, 3, 4]);
    expect(Array.from(k.quantize(x, [1, 2], 0, { type: 'int8', axis: -2, shape: [2, 3] }))).toEqual([1, 2, 3, 2, 2, 3]);
  });
});

describe('guardScale (AMCT: scales below float32 epsilon become 1)', () => {
  it('replaces tiny, zero, negative and NaN scales by 1 and keeps the rest', () => {
    expect(SCALE_EPSILON).toBe(Math.fround(1.1920929e-7));
    expect(guardScale(0)).toBe(1);
    expect(guardScale(1e-8)).toBe(1);
    expect(guardScale(-0.5)).toBe(1);
    expect(guardScale(NaN)).toBe(1);
    expect(guardScale(Math.fround(1.1920929e-7))).toBe(Math.fround(1.1920929e-7));
    expect(guardScale(0.02)).toBe(0.02);
    const s = new Float32Array([0, 1e-9, 0.5]);
    expect(Array.from(guardScales(s))).toEqual([1, 1, 0.5]);
  });

  it('the kernels still use tiny scales as given (same as the reference)', async () => {
    const k = await getKernels();
    const rng = new Random(11);
    const x = rng.normals(1000, 1e-6);
    for (const s of [1e-7, 1e-9, 1e-20, 1e-38, 1e-41]) {
      expect(Array.from(k.quantize(x, s, 0, { type: 'int16' }))).toEqual(
        Array.from(referenceKernels.quantize(x, s, 0, { type: 'int16' })),
      );
    }
  });
});
