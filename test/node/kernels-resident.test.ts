/**
 * Resident arrays (`Kernels.allocate`): views of the kernels' own memory that the Wasm kernels read and
 * write in place. Results must be bit-identical to the streaming path (ordinary arrays) and agree with
 * the reference, for every kernel, in place, after memory growth, and with mixed arguments.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { KernelArgumentError } from '../../src/errors.js';
import { getKernels, referenceKernels, type Kernels, type ResidentFloat32 } from '../../src/kernels/index.js';
import { firstBitMismatch, ODD_LENGTHS, quantInputs, Random } from '../helpers/random.js';

let wasm: Kernels;
beforeAll(async () => {
  wasm = await getKernels();
  expect(wasm.backend).toBe('wasm-simd');
});

/** Around the vector width, the 4096-element candidate chunk and the 16384-element streaming chunk. */
const LENGTHS = [...ODD_LENGTHS, 4097, 16383, 16385, 3 * 16384 + 5];

function expectSameBits(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  const i = firstBitMismatch(actual as Float32Array, expected as Float32Array);
  if (i >= 0) expect.fail(`${what}: element ${i}: got ${actual[i]}, expected ${expected[i]}`);
}

function residentCopy(k: Kernels, src: Float32Array): ResidentFloat32 {
  const r = k.allocate(src.length);
  r.array.set(src);
  return r;
}

function near(a: number, b: number, rel = 1e-12): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
}

describe('allocate: the ResidentFloat32 contract (both backends)', () => {
  for (const name of ['wasm', 'reference'] as const) {
    const kernels = (): Kernels => (name === 'wasm' ? wasm : referenceKernels);

    it(`${name}: zero-filled, writable, fresh view per read, throws after free, double free is a no-op`, () => {
      const k = kernels();
      const r = k.allocate(7);
      expect(r.length).toBe(7);
      expect(Array.from(r.array)).toEqual([0, 0, 0, 0, 0, 0, 0]);
      r.array.set([1, 2, 3, 4, 5, 6, 7]);
      expect(Array.from(r.array)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(r.array).toBeInstanceOf(Float32Array);
      r.free();
      expect(() => r.array).toThrow(/freed/);
      expect(() => r.free()).not.toThrow();
      const empty = k.allocate(0);
      expect(empty.length).toBe(0);
      expect(empty.array.length).toBe(0);
      empty.free();
    });

    it(`${name}: rejects bad lengths`, () => {
      const k = kernels();
      for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 30 + 1, '4' as unknown as number]) {
        expect(() => k.allocate(bad)).toThrow(KernelArgumentError);
      }
    });
  }

  it('wasm: blocks live in kernel memory, do not overlap, and freed blocks are reused', () => {
    const a = wasm.allocate(100);
    const b = wasm.allocate(100);
    expect(a.array.buffer).toBe(b.array.buffer);
    expect(a.array.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    const [ao, bo] = [a.array.byteOffset, b.array.byteOffset];
    expect(ao % 16).toBe(0);
    expect(Math.abs(ao - bo)).toBeGreaterThanOrEqual(400);
    a.free();
    const c = wasm.allocate(50); // first fit: a's block
    expect(c.array.byteOffset).toBe(ao);
    c.free();
    b.free();
    const d = wasm.allocate(200); // a's and b's blocks coalesced (or the top reused)
    expect(d.array.byteOffset).toBe(Math.min(ao, bo));
    d.free();
  });

  it('wasm: many allocations and frees keep every live block intact', () => {
    const rng = new Random(77);
    const live: Array<{ r: ResidentFloat32; tag: number }> = [];
    let tag = 0;
    for (let round = 0; round < 400; round++) {
      if (live.length > 0 && rng.next() < 0.45) {
        const [{ r, tag: t }] = live.splice(rng.int(0, live.length - 1), 1);
        const arr = r.array;
        for (let i = 0; i < arr.length; i++) if (arr[i] !== t) expect.fail(`block ${t} corrupted at ${i}`);
        r.free();
      } else {
        const n = rng.next() < 0.1 ? rng.int(20000, 300000) : rng.int(0, 3000);
        const r = wasm.allocate(n);
        const arr = r.array;
        for (let i = 0; i < n; i++) if (arr[i] !== 0) expect.fail(`fresh block not zero-filled at ${i}`);
        arr.fill(++tag);
        live.push({ r, tag });
        // run a kernel in between: its scratch must not touch resident blocks
        wasm.fakeQuantize(new Float32Array(20000).fill(1.3), 0.1, 0, { type: 'int8' });
      }
    }
    for (const { r, tag: t } of live) {
      const arr = r.array;
      for (let i = 0; i < arr.length; i++) if (arr[i] !== t) expect.fail(`block ${t} corrupted at ${i}`);
      r.free();
    }
  });
});

describe('resident inputs are bit-identical to the streaming path and the reference', () => {
  it('fakeQuantize per tensor: resident x, resident out, in place, and mixed', () => {
    const rng = new Random(1);
    for (const n of LENGTHS) {
      const x = quantInputs(rng, n, 0.05, 140);
      const opts = { type: 'int8' as const, qmin: -127 };
      const expected = referenceKernels.fakeQuantize(x, 0.05, 3, opts);
      expectSameBits(wasm.fakeQuantize(x, 0.05, 3, opts), expected, `streamed n=${n}`);

      const rx = residentCopy(wasm, x);
      const ro = wasm.allocate(n);
      expectSameBits(wasm.fakeQuantize(rx.array, 0.05, 3, opts), expected, `resident x n=${n}`);
      const res = wasm.fakeQuantize(rx.array, 0.05, 3, { ...opts, out: ro.array });
      expectSameBits(res, expected, `resident x and out n=${n}`);
      expectSameBits(ro.array, expected, `resident out contents n=${n}`);
      const plainOut = new Float32Array(n);
      wasm.fakeQuantize(rx.array, 0.05, 3, { ...opts, out: plainOut });
      expectSameBits(plainOut, expected, `resident x, plain out n=${n}`);
      ro.array.fill(0);
      wasm.fakeQuantize(x, 0.05, 3, { ...opts, out: ro.array });
      expectSameBits(ro.array, expected, `plain x, resident out n=${n}`);
      const inPlace = rx.array;
      const r2 = wasm.fakeQuantize(inPlace, 0.05, 3, { ...opts, out: inPlace });
      expectSameBits(r2, expected, `in place n=${n}`);
      expectSameBits(rx.array, expected, `in place contents n=${n}`);
      expectSameBits(rx.array, expected, `in place contents n=${n}`);
      rx.free();
      ro.free();
    }
  });

  it('fakeQuantize per channel (several axes), resident and in place', () => {
    const rng = new Random(2);
    for (const [shape, axis] of [
      [[3, 5, 7], 1],
      [[64, 3, 3, 3], 0],
      [[2, 3, 9000], 2],
      [[5, 4099], -2],
    ] as Array<[number[], number]>) {
      const n = shape.reduce((a, b) => a * b, 1);
      const C = shape[axis < 0 ? axis + shape.length : axis]!;
      const scales = Float32Array.from({ length: C }, () => Math.fround(rng.uniform(0.01, 0.2)));
      const zps = Int32Array.from({ length: C }, () => rng.int(-10, 10));
      const x = quantInputs(rng, n, 0.05, 140);
      const opts = { type: 'int8' as const, axis, shape };
      const expected = referenceKernels.fakeQuantize(x, scales, zps, opts);
      expectSameBits(wasm.fakeQuantize(x, scales, zps, opts), expected, `streamed ${shape}`);
      const rx = residentCopy(wasm, x);
      expectSameBits(wasm.fakeQuantize(rx.array, scales, zps, opts), expected, `resident ${shape}`);
      const a = rx.array;
      wasm.fakeQuantize(a, scales, zps, { ...opts, out: a });
      expectSameBits(rx.array, expected, `in place ${shape}`);
      rx.free();
    }
  });

  it('quantize and dequantize with resident x (and a resident int8 view as out)', () => {
    const rng = new Random(3);
    for (const n of LENGTHS) {
      const x = quantInputs(rng, n, 0.05, 140);
      const expectedQ = referenceKernels.quantize(x, 0.05, -2, { type: 'int8' });
      const rx = residentCopy(wasm, x);
      expectSameBits(wasm.quantize(rx.array, 0.05, -2, { type: 'int8' }), expectedQ, `quantize resident x n=${n}`);
      const rq = wasm.allocate(Math.ceil(n / 4));
      const qview = new Int8Array(rq.array.buffer, rq.array.byteOffset, n);
      wasm.quantize(rx.array, 0.05, -2, { type: 'int8', out: qview });
      const q = new Int8Array(rq.array.buffer, rq.array.byteOffset, n);
      expect(Array.from(q)).toEqual(Array.from(expectedQ));
      const expectedD = referenceKernels.dequantize(expectedQ, 0.05, -2);
      expectSameBits(wasm.dequantize(q, 0.05, -2), expectedD, `dequantize resident q n=${n}`);
      const ro = wasm.allocate(n);
      wasm.dequantize(new Int8Array(rq.array.buffer, rq.array.byteOffset, n), 0.05, -2, { out: ro.array });
      expectSameBits(ro.array, expectedD, `dequantize resident q and out n=${n}`);
      rx.free();
      rq.free();
      ro.free();
    }
  });

  it('reductions: minMax, per-channel min/max, histogram, fakeQuantSquaredError', () => {
    const rng = new Random(4);
    const candidates = {
      scale: Float32Array.from([0.01, 0.02, 0.05, 0.1]),
      zeroPoint: Int32Array.from([0, 1, -3, 0]),
      qmin: -128,
      qmax: 127,
    };
    for (const n of LENGTHS) {
      const x = quantInputs(rng, n, 0.05, 140);
      const rx = residentCopy(wasm, x);
      expect(wasm.minMax(rx.array)).toEqual(wasm.minMax(x));
      expect(wasm.minMax(rx.array)).toEqual(referenceKernels.minMax(x));
      if (n > 0 && n % 3 === 0) {
        const shape = [3, n / 3];
        const got = wasm.minMaxPerChannel(rx.array, shape, 0);
        const want = referenceKernels.minMaxPerChannel(x, shape, 0);
        expectSameBits(got.min, want.min, `minMaxPerChannel min n=${n}`);
        expectSameBits(got.max, want.max, `minMaxPerChannel max n=${n}`);
        expectSameBits(wasm.absMaxPerChannel(rx.array, shape, 0), referenceKernels.absMaxPerChannel(x, shape, 0), 'absMax');
      }
      const h1 = new Float64Array(64);
      const h2 = new Float64Array(64);
      const h3 = new Float64Array(64);
      wasm.histogram(rx.array, -5, 5, h1);
      wasm.histogram(x, -5, 5, h2);
      referenceKernels.histogram(x, -5, 5, h3);
      expect(Array.from(h1)).toEqual(Array.from(h2));
      expect(Array.from(h1)).toEqual(Array.from(h3));
      const e1 = wasm.fakeQuantSquaredError(rx.array, candidates);
      const e2 = wasm.fakeQuantSquaredError(x, candidates);
      const e3 = referenceKernels.fakeQuantSquaredError(x, candidates);
      expectSameBits(e1, e2, `fakeQuantSquaredError resident vs streamed n=${n}`);
      for (let i = 0; i < e1.length; i++) {
        if (!near(e1[i]!, e3[i]!, 1e-9)) expect.fail(`fakeQuantSquaredError vs reference n=${n} k=${i}`);
      }
      rx.free();
    }
  });

  it('cosine, mse, sqnr: both resident and mixed, same float64 sums as streamed', () => {
    const rng = new Random(5);
    for (const n of LENGTHS) {
      const a = Float32Array.from({ length: n }, () => rng.normal());
      const b = Float32Array.from(a, (v) => v + 0.01 * rng.normal());
      const ra = residentCopy(wasm, a);
      const rb = residentCopy(wasm, b);
      for (const fn of ['cosine', 'mse', 'sqnr'] as const) {
        const streamed = wasm[fn](a, b);
        const ref = referenceKernels[fn](a, b);
        expect(near(streamed, ref, 1e-9), `${fn} n=${n}: ${streamed} vs ${ref}`).toBe(true);
        for (const [x, y, what] of [
          [ra.array, rb.array, 'both'],
          [ra.array, b, 'a resident'],
          [a, rb.array, 'b resident'],
        ] as Array<[Float32Array, Float32Array, string]>) {
          expect(Object.is(wasm[fn](x, y), streamed), `${fn} ${what} n=${n}`).toBe(true);
        }
        expect(Object.is(wasm[fn](ra.array, ra.array), wasm[fn](a, a)), `${fn} aliased n=${n}`).toBe(true);
      }
      ra.free();
      rb.free();
    }
  });
});

describe('memory growth', () => {
  it('between calls: old views detach, re-read array keeps contents and results', () => {
    const rng = new Random(6);
    const n = 10001;
    const x = quantInputs(rng, n, 0.05, 140);
    const rx = residentCopy(wasm, x);
    const stale = rx.array;
    const big = wasm.allocate(32 * 1024 * 1024); // 128 MiB: grows memory
    expect(stale.length).toBe(0); // detached by the grow
    expectSameBits(rx.array, x, 'contents after growth');
    const expected = referenceKernels.fakeQuantize(x, 0.05, 0, { type: 'int8' });
    const a = rx.array;
    expectSameBits(wasm.fakeQuantize(a, 0.05, 0, { type: 'int8', out: a }), expected, 'in place after growth');
    expect(Object.is(wasm.cosine(rx.array, big.array.subarray(0, n)), wasm.cosine(x, new Float32Array(n)))).toBe(true);
    big.free();
    rx.free();
  });

  it('within a call (per-channel parameters larger than the scratch area): returns a live view', () => {
    const rng = new Random(7);
    const C = 1 << 19; // 4 MiB of scales + zero points, beyond the 1 MiB scratch area
    const shape = [2, C];
    const n = 2 * C;
    const x = quantInputs(rng, n, 0.05, 140);
    const scales = Float32Array.from({ length: C }, (_, c) => 0.01 + (c % 7) * 0.01);
    const opts = { type: 'int8' as const, axis: 1, shape };
    const expected = referenceKernels.fakeQuantize(x, scales, 0, opts);
    const rx = residentCopy(wasm, x);
    // The spill area sits above the resident blocks: fill memory up to its end with a block so that
    // this call must grow memory.
    const end = rx.array.byteOffset + 4 * n;
    const filler = wasm.allocate((rx.array.buffer.byteLength - end) / 4);
    const before = rx.array.buffer;
    const a = rx.array;
    const res = wasm.fakeQuantize(a, scales, 0, { ...opts, out: a });
    expect(rx.array.buffer).not.toBe(before); // it grew
    expect(a.length).toBe(0); // so the view passed in is stale, but the result is a live view
    expect(res.length).toBe(n);
    expect(res.buffer).toBe(rx.array.buffer);
    expectSameBits(res, expected, 'in place with spilled parameters');
    expectSameBits(rx.array, expected, 'contents with spilled parameters');
    filler.free();
    rx.free();
  });
});
