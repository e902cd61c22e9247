/**
 * Scalar TypeScript reference of every kernel, written straight from the math one element at a time.
 * It is the oracle the Wasm kernels are tested against, and the fallback where Wasm SIMD is missing.
 * float32 rounding is made explicit with Math.fround wherever the Wasm code computes in float32.
 */
import { KernelArgumentError } from '../errors.js';
import {
  QUANT_ARRAYS,
  QUANT_RANGES,
  checkCandidates,
  checkFloat32,
  checkHistogram,
  checkQuantType,
  checkLength,
  checkMoments,
  checkRoundRows,
  checkSameLength,
  channelShape,
  fakeQuantRange,
  outputArray,
  quantParams,
  quantTypeOf,
  type QuantParams,
} from './args.js';
import type {
  ChannelMinMax,
  DequantizeOptions,
  FakeQuantCandidates,
  FakeQuantizeOptions,
  Kernels,
  MinMax,
  QuantArray,
  QuantArrayOf,
  QuantizeOptions,
  QuantType,
  ResidentFloat32,
  ScaleArg,
  ZeroPointArg,
} from './types.js';

/** Rounds to the nearest integer, ties to the even one (IEEE roundTiesToEven). */
export function roundHalfEven(v: number): number {
  if (!Number.isFinite(v)) return v;
  const f = Math.floor(v);
  const d = v - f; // exact for |v| < 2^52
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** ONNX QuantizeLinear of one value; NaN gives the zero point. */
export function quantizeValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  const v = Math.fround(x / scale); // float32 division
  if (Number.isNaN(v)) return zeroPoint;
  const q = roundHalfEven(v) + zeroPoint;
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

/** ONNX DequantizeLinear of one value. */
export function dequantizeValue(q: number, scale: number, zeroPoint: number): number {
  return Math.fround((q - zeroPoint) * scale);
}

/** Scale and zero point of element `index` (per-channel: channel = floor(index / inner) % C). */
function paramsAt(p: QuantParams, index: number): [number, number] {
  if (p.kind === 'tensor') return [p.scale, p.zeroPoint];
  const c = Math.floor(index / p.inner) % p.channels;
  return [p.scales[c]!, p.zeroPoints[c]!];
}

function quantize<T extends QuantType>(
  x: Float32Array,
  scale: ScaleArg,
  zeroPoint: ZeroPointArg,
  options: QuantizeOptions<T>,
): QuantArrayOf<T> {
  const fn = 'quantize';
  checkFloat32(fn, 'x', x);
  const type = checkQuantType(fn, options?.type);
  const [qmin, qmax] = QUANT_RANGES[type];
  const p = quantParams(fn, x.length, scale, zeroPoint, options, qmin, qmax);
  const out = outputArray(fn, options.out, QUANT_ARRAYS[type] as { new (n: number): QuantArray }, x.length);
  for (let i = 0; i < x.length; i++) {
    const [s, z] = paramsAt(p, i);
    out[i] = quantizeValue(x[i]!, s, z, qmin, qmax);
  }
  return out as QuantArrayOf<T>;
}

function dequantize(q: QuantArray, scale: ScaleArg, zeroPoint: ZeroPointArg, options?: DequantizeOptions): Float32Array {
  const fn = 'dequantize';
  const type = quantTypeOf(fn, q);
  const [qmin, qmax] = QUANT_RANGES[type];
  const p = quantParams(fn, q.length, scale, zeroPoint, options, qmin, qmax);
  const out = outputArray(fn, options?.out, Float32Array, q.length);
  for (let i = 0; i < q.length; i++) {
    const [s, z] = paramsAt(p, i);
    out[i] = dequantizeValue(q[i]!, s, z);
  }
  return out;
}

function fakeQuantize(
  x: Float32Array,
  scale: ScaleArg,
  zeroPoint: ZeroPointArg,
  options: FakeQuantizeOptions,
): Float32Array {
  const fn = 'fakeQuantize';
  checkFloat32(fn, 'x', x);
  const type = checkQuantType(fn, options?.type);
  const [qmin, qmax] = fakeQuantRange(fn, type, options.qmin, options.qmax);
  const p = quantParams(fn, x.length, scale, zeroPoint, options, qmin, qmax);
  const out = outputArray(fn, options.out, Float32Array, x.length);
  for (let i = 0; i < x.length; i++) {
    const [s, z] = paramsAt(p, i);
    out[i] = dequantizeValue(quantizeValue(x[i]!, s, z, qmin, qmax), s, z);
  }
  return out;
}

function minMax(x: Float32Array): MinMax {
  checkFloat32('minMax', 'x', x);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v < min) min = v; // false for NaN: NaN is ignored
    if (v > max) max = v;
  }
  return { min, max };
}

function minMaxPerChannel(x: Float32Array, shape: readonly number[], axis: number): ChannelMinMax {
  const fn = 'minMaxPerChannel';
  checkFloat32(fn, 'x', x);
  const { channels, inner } = channelShape(fn, x.length, shape, axis);
  const min = new Float32Array(channels).fill(Infinity);
  const max = new Float32Array(channels).fill(-Infinity);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / inner) % channels;
    const v = x[i]!;
    if (v < min[c]!) min[c] = v;
    if (v > max[c]!) max[c] = v;
  }
  return { min, max };
}

function absMaxPerChannel(x: Float32Array, shape: readonly number[], axis: number): Float32Array {
  const fn = 'absMaxPerChannel';
  checkFloat32(fn, 'x', x);
  const { channels, inner } = channelShape(fn, x.length, shape, axis);
  const out = new Float32Array(channels);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / inner) % channels;
    const v = Math.abs(x[i]!);
    if (v > out[c]!) out[c] = v;
  }
  return out;
}

function histogram(x: Float32Array, lo: number, hi: number, counts: Float64Array | Uint32Array, sums?: Float64Array): void {
  const fn = 'histogram';
  checkFloat32(fn, 'x', x);
  const r = checkHistogram(fn, lo, hi, counts, sums);
  const top = r.bins - 1;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (Number.isNaN(v)) continue;
    const t = Math.fround(Math.fround(v - r.lo) * r.k);
    const b = t >= top ? top : t > 0 ? Math.floor(t) : 0;
    counts[b]! += 1;
    if (sums) sums[b]! += v;
  }
}

function fakeQuantSquaredError(x: Float32Array, candidates: FakeQuantCandidates, out?: Float64Array): Float64Array {
  const fn = 'fakeQuantSquaredError';
  checkFloat32(fn, 'x', x);
  const c = checkCandidates(fn, candidates);
  const sums = outputArray(fn, out, Float64Array, c.scales.length);
  for (let k = 0; k < c.scales.length; k++) {
    const s = c.scales[k]!;
    const z = c.zeroPoints[k]!;
    let sum = 0;
    for (let i = 0; i < x.length; i++) {
      const d = dequantizeValue(quantizeValue(x[i]!, s, z, c.qmin, c.qmax), s, z) - x[i]!;
      sum += d * d;
    }
    sums[k] = sum;
  }
  return sums;
}

function cosine(a: Float32Array, b: Float32Array): number {
  checkSameLength('cosine', a, b);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return cosineFromSums(ab, aa, bb);
}

function crossMoments(a: Float32Array, b: Float32Array, rows: number, d: number, hh: Float64Array, gg: Float64Array): void {
  checkMoments(a, b, rows, d, hh, gg);
  for (let j = 0; j < d; j++) {
    for (let i = 0; i < d; i++) {
      let ab = 0;
      let aa = 0;
      for (let r = 0; r < rows; r++) {
        const x = a[j * rows + r]!;
        ab += x * b[i * rows + r]!;
        if (i >= j) aa += x * a[i * rows + r]!;
      }
      gg[j * d + i] = gg[j * d + i]! + ab;
      if (i >= j) hh[j * d + i] = hh[j * d + i]! + aa;
    }
  }
}

function roundRows(h: Float64Array, g: Float64Array, w: Float32Array, scale: Float64Array, q: Int8Array, d: number, sweeps: number): Float64Array {
  checkRoundRows(h, g, w, scale, q, d, sweeps);
  const rows = scale.length;
  const out = new Float64Array(2 * rows);
  const v = new Float64Array(d);
  const t = new Float64Array(d);
  const hv = new Float64Array(d);
  const objective = () => {
    let acc = 0;
    for (let j = 0; j < d; j++) acc += v[j]! * (hv[j]! - 2 * t[j]!);
    return acc;
  };
  for (let r = 0; r < rows; r++) {
    const s = scale[r]!;
    const base = r * d;
    for (let i = 0; i < d; i++) v[i] = q[base + i]! * s;
    for (let j = 0; j < d; j++) {
      let a = 0;
      let b = 0;
      for (let i = 0; i < d; i++) {
        a += g[j * d + i]! * w[base + i]!;
        b += h[j * d + i]! * v[i]!;
      }
      t[j] = a;
      hv[j] = b;
    }
    const before = objective();
    if (s > 0) {
      const tol = -1e-12 * Math.abs(before) - 1e-30;
      for (let sweep = 0; sweep < sweeps; sweep++) {
        let changed = false;
        for (let j = 0; j < d; j++) {
          const cur = q[base + j]!;
          const lo = Math.floor(w[base + j]! / s);
          const alt = cur === lo ? lo + 1 : lo;
          if (alt > 127 || alt < -127 || (cur !== lo && cur !== lo + 1)) continue;
          const delta = (alt - cur) * s;
          const dJ = 2 * delta * (hv[j]! - t[j]!) + delta * delta * h[j * d + j]!;
          if (!(dJ < tol)) continue;
          q[base + j] = alt;
          v[j] = alt * s;
          for (let k = 0; k < d; k++) hv[k] = hv[k]! + delta * h[j * d + k]!;
          changed = true;
        }
        if (!changed) break;
      }
    }
    out[2 * r] = before;
    out[2 * r + 1] = objective();
  }
  return out;
}

/** cos = ab / (|a| |b|) with the zero-vector conventions, clamped to [-1, 1]. */
export function cosineFromSums(ab: number, aa: number, bb: number): number {
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  const c = ab / (Math.sqrt(aa) * Math.sqrt(bb));
  return c > 1 ? 1 : c < -1 ? -1 : c;
}

function mse(a: Float32Array, b: Float32Array): number {
  checkSameLength('mse', a, b);
  let dd = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    dd += d * d;
  }
  return a.length === 0 ? 0 : dd / a.length;
}

/** 10 log10(signal / noise) with identical inputs giving +Infinity. */
export function sqnrFromSums(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  return 10 * Math.log10(signal / noise);
}

function sqnr(a: Float32Array, b: Float32Array): number {
  checkSameLength('sqnr', a, b);
  let aa = 0;
  let dd = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    aa += a[i]! * a[i]!;
    dd += d * d;
  }
  return sqnrFromSums(aa, dd);
}

/** Plain JS-backed `ResidentFloat32` (the reference has no separate memory to live in). */
function allocate(length: number): ResidentFloat32 {
  checkLength('allocate', length);
  let data: Float32Array | undefined = new Float32Array(length);
  return {
    length,
    get array(): Float32Array {
      if (data === undefined) throw new KernelArgumentError('allocate: this ResidentFloat32 has been freed');
      return data;
    },
    free(): void {
      data = undefined;
    },
  };
}

export const referenceKernels: Kernels = Object.freeze({
  backend: 'reference' as const,
  allocate,
  quantize,
  dequantize,
  fakeQuantize,
  minMax,
  minMaxPerChannel,
  absMaxPerChannel,
  histogram,
  fakeQuantSquaredError,
  cosine,
  mse,
  sqnr,
  crossMoments,
  roundRows,
});
