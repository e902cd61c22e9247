/**
 * Argument checking and normalisation shared by the Wasm kernels and the reference, so both reject
 * the same inputs with the same `KernelArgumentError` messages (each names the function and argument).
 */
import { KernelArgumentError } from '../errors.js';
import { describeValue } from '../text.js';
import type {
  ChannelLayout,
  FakeQuantCandidates,
  QuantArray,
  QuantType,
  ScaleArg,
  ZeroPointArg,
} from './types.js';

/** Inclusive integer range of each quantized type. */
export const QUANT_RANGES: Readonly<Record<QuantType, readonly [number, number]>> = Object.freeze({
  int8: Object.freeze([-128, 127] as const),
  uint8: Object.freeze([0, 255] as const),
  int16: Object.freeze([-32768, 32767] as const),
});

export const QUANT_ARRAYS = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
} as const;

/** Largest histogram bin count (bins - 1 must be exact in float32). */
export const MAX_BINS = 1 << 24;

/** Bounds for the integer range of fakeQuantSquaredError (keeps qmin - zp exact in float32). */
const MAX_Q_ABS = 1 << 16;

export interface ChannelShape {
  outer: number;
  channels: number;
  inner: number;
}

export type QuantParams =
  | { kind: 'tensor'; scale: number; zeroPoint: number }
  | ({ kind: 'channel'; scales: Float32Array; zeroPoints: Int32Array } & ChannelShape);

function fail(fn: string, message: string): never {
  throw new KernelArgumentError(`${fn}: ${message}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v === 'number' ? String(v) : typeof v;
}

export function checkFloat32(fn: string, name: string, x: unknown): asserts x is Float32Array {
  if (!(x instanceof Float32Array)) fail(fn, `${name} must be a Float32Array, got ${describe(x)}`);
}

/** Element count for `allocate`: an integer in [0, 2^30] (4 GiB of float32, the Wasm32 limit). */
export function checkLength(fn: string, length: unknown): asserts length is number {
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 0 || length > 2 ** 30) {
    fail(fn, `length must be an integer in [0, ${2 ** 30}], got ${describe(length)}`);
  }
}

export function checkSameLength(fn: string, a: Float32Array, b: Float32Array): void {
  checkFloat32(fn, 'a', a);
  checkFloat32(fn, 'b', b);
  if (a.length !== b.length) fail(fn, `a and b must have the same length, got ${a.length} and ${b.length}`);
}

/** crossMoments' arguments: rows·d values in a and b, d·d sums in hh and gg. */
export function checkMoments(a: Float32Array, b: Float32Array, rows: number, d: number, hh: Float64Array, gg: Float64Array): void {
  const fn = 'crossMoments';
  checkSameLength(fn, a, b);
  for (const [name, v] of [['rows', rows], ['d', d]] as const) {
    if (!Number.isInteger(v) || v < 0) fail(fn, `${name} must be an integer >= 0, got ${describe(v)}`);
  }
  if (a.length !== rows * d) fail(fn, `a and b must hold rows × d = ${rows * d} values, got ${a.length}`);
  for (const [name, v] of [['hh', hh], ['gg', gg]] as const) {
    if (!(v instanceof Float64Array) || v.length !== d * d) fail(fn, `${name} must be a Float64Array of d × d = ${d * d} sums, got ${describe(v)}`);
  }
}

/** roundRows' arguments: d·d statistics, rows·d weights and values, one scale per row. */
export function checkRoundRows(h: Float64Array, g: Float64Array, w: Float32Array, scale: Float64Array, q: Int8Array, d: number, sweeps: number): void {
  const fn = 'roundRows';
  for (const [name, v] of [['d', d], ['sweeps', sweeps]] as const) {
    if (!Number.isInteger(v) || v < 0) fail(fn, `${name} must be an integer >= 0, got ${describe(v)}`);
  }
  for (const [name, v] of [['h', h], ['g', g]] as const) {
    if (!(v instanceof Float64Array) || v.length !== d * d) fail(fn, `${name} must be a Float64Array of d × d = ${d * d} values, got ${describe(v)}`);
  }
  if (!(scale instanceof Float64Array)) fail(fn, `scale must be a Float64Array, got ${describe(scale)}`);
  const n = scale.length * d;
  checkFloat32(fn, 'w', w);
  if (w.length !== n) fail(fn, `w must hold rows × d = ${n} weights (rows = scale.length), got ${w.length}`);
  if (!(q instanceof Int8Array) || q.length !== n) fail(fn, `q must be an Int8Array of rows × d = ${n} values, got ${describe(q)}`);
}

export function checkQuantType(fn: string, type: unknown): QuantType {
  if (type !== 'int8' && type !== 'uint8' && type !== 'int16') {
    fail(fn, `options.type must be 'int8', 'uint8' or 'int16', got ${describeValue(type)}`);
  }
  return type;
}

/** The quantized type of an array, or an error naming the argument. */
export function quantTypeOf(fn: string, q: unknown): QuantType {
  if (q instanceof Int8Array) return 'int8';
  if (q instanceof Uint8Array && !(q instanceof Uint8ClampedArray)) return 'uint8';
  if (q instanceof Int16Array) return 'int16';
  return fail(fn, `q must be an Int8Array, Uint8Array or Int16Array, got ${describe(q)}`);
}

/** Validates an `out` array (right class and length) or allocates one. */
export function outputArray<A extends QuantArray | Float32Array | Float64Array>(
  fn: string,
  out: unknown,
  ctor: { new (n: number): A },
  length: number,
): A {
  if (out === undefined) return new ctor(length);
  if (!(out instanceof ctor) || (ctor === (Uint8Array as unknown) && out instanceof Uint8ClampedArray)) {
    fail(fn, `out must be a ${ctor.name}, got ${describe(out)}`);
  }
  if (out.length !== length) fail(fn, `out must have length ${length}, got ${out.length}`);
  return out;
}

/** float32 value of a scale, or an error unless it is finite and > 0 as a float32. */
export function checkScale(fn: string, name: string, s: unknown): number {
  const f = typeof s === 'number' ? Math.fround(s) : NaN;
  if (!(f > 0) || f === Infinity) {
    fail(fn, `${name} must be a finite number > 0 (as float32), got ${describe(s)}`);
  }
  return f;
}

export function checkZeroPoint(fn: string, name: string, z: unknown, qmin: number, qmax: number): number {
  if (typeof z !== 'number' || !Number.isInteger(z) || z < qmin || z > qmax) {
    fail(fn, `${name} must be an integer in [${qmin}, ${qmax}], got ${describe(z)}`);
  }
  return z;
}

/** Resolves shape + axis into [outer, C, inner] and checks them against the element count. */
export function channelShape(fn: string, length: number, shape: unknown, axis: unknown): ChannelShape {
  if (!Array.isArray(shape) && !(ArrayBuffer.isView(shape) && !(shape instanceof DataView))) {
    fail(fn, `shape must be an array of non-negative integers, got ${describe(shape)}`);
  }
  const dims = Array.from(shape as ArrayLike<unknown>);
  if (dims.length === 0) fail(fn, 'shape must have at least one dimension for a channel axis');
  for (let d = 0; d < dims.length; d++) {
    const v = dims[d];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      fail(fn, `shape[${d}] must be a non-negative integer, got ${describe(v)}`);
    }
  }
  const sizes = dims as number[];
  const rank = sizes.length;
  if (typeof axis !== 'number' || !Number.isInteger(axis) || axis < -rank || axis >= rank) {
    fail(fn, `axis must be an integer in [${-rank}, ${rank - 1}] for shape [${sizes.join(', ')}], got ${describe(axis)}`);
  }
  const a = axis < 0 ? axis + rank : axis;
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < a; d++) outer *= sizes[d]!;
  for (let d = a + 1; d < rank; d++) inner *= sizes[d]!;
  const channels = sizes[a]!;
  const total = outer * channels * inner;
  if (total !== length) {
    fail(fn, `shape [${sizes.join(', ')}] has ${total} elements but the input has ${length}`);
  }
  return { outer, channels, inner };
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return (
    v !== null &&
    typeof v === 'object' &&
    typeof (v as ArrayLike<unknown>).length === 'number' &&
    !(v instanceof DataView)
  );
}

/**
 * Normalises (scale, zeroPoint, axis/shape) into per-tensor or per-channel parameters:
 * float32 scales (finite, > 0) and integer zero points inside [qmin, qmax].
 */
export function quantParams(
  fn: string,
  length: number,
  scale: ScaleArg,
  zeroPoint: ZeroPointArg,
  layout: ChannelLayout | undefined,
  qmin: number,
  qmax: number,
): QuantParams {
  const axis = layout?.axis;
  if (typeof scale === 'number' || (isArrayLike(scale) && scale.length === 1 && axis === undefined)) {
    const s = checkScale(fn, 'scale', typeof scale === 'number' ? scale : scale[0]);
    let z: unknown = zeroPoint;
    if (isArrayLike(zeroPoint)) {
      if (zeroPoint.length !== 1) {
        fail(fn, `zeroPoint must be a number (or have 1 element) with a per-tensor scale, got length ${zeroPoint.length}`);
      }
      z = zeroPoint[0];
    }
    return { kind: 'tensor', scale: s, zeroPoint: checkZeroPoint(fn, 'zeroPoint', z, qmin, qmax) };
  }
  if (!isArrayLike(scale)) fail(fn, `scale must be a number or a Float32Array, got ${describe(scale)}`);
  if (axis === undefined || layout?.shape === undefined) {
    fail(fn, 'per-channel scale (an array) needs options.axis and options.shape');
  }
  const cs = channelShape(fn, length, layout.shape, axis);
  if (scale.length !== cs.channels) {
    fail(fn, `scale has ${scale.length} elements but shape[axis] is ${cs.channels}`);
  }
  const scales = new Float32Array(cs.channels);
  for (let c = 0; c < cs.channels; c++) scales[c] = checkScale(fn, `scale[${c}]`, scale[c]);
  const zeroPoints = new Int32Array(cs.channels);
  if (typeof zeroPoint === 'number') {
    zeroPoints.fill(checkZeroPoint(fn, 'zeroPoint', zeroPoint, qmin, qmax));
  } else if (isArrayLike(zeroPoint)) {
    if (zeroPoint.length !== cs.channels) {
      fail(fn, `zeroPoint has ${zeroPoint.length} elements but shape[axis] is ${cs.channels}`);
    }
    for (let c = 0; c < cs.channels; c++) {
      zeroPoints[c] = checkZeroPoint(fn, `zeroPoint[${c}]`, zeroPoint[c], qmin, qmax);
    }
  } else {
    fail(fn, `zeroPoint must be a number or an array, got ${describe(zeroPoint)}`);
  }
  return { kind: 'channel', scales, zeroPoints, ...cs };
}

/** [qmin, qmax] for fakeQuantize: the type's range, optionally narrowed. */
export function fakeQuantRange(fn: string, type: QuantType, qmin?: number, qmax?: number): [number, number] {
  const [tmin, tmax] = QUANT_RANGES[type];
  const lo = qmin ?? tmin;
  const hi = qmax ?? tmax;
  if (!Number.isInteger(lo) || lo < tmin || lo > tmax) fail(fn, `options.qmin must be an integer in [${tmin}, ${tmax}], got ${describe(qmin)}`);
  if (!Number.isInteger(hi) || hi < tmin || hi > tmax) fail(fn, `options.qmax must be an integer in [${tmin}, ${tmax}], got ${describe(qmax)}`);
  if (lo > hi) fail(fn, `options.qmin (${lo}) must not exceed options.qmax (${hi})`);
  return [lo, hi];
}

export interface CheckedCandidates {
  scales: Float32Array;
  zeroPoints: Int32Array;
  qmin: number;
  qmax: number;
}

export function checkCandidates(fn: string, c: FakeQuantCandidates): CheckedCandidates {
  if (c === null || typeof c !== 'object') fail(fn, `candidates must be an object, got ${describe(c)}`);
  const { qmin, qmax } = c;
  if (typeof qmin !== 'number' || !Number.isInteger(qmin) || Math.abs(qmin) > MAX_Q_ABS) {
    fail(fn, `candidates.qmin must be an integer in [${-MAX_Q_ABS}, ${MAX_Q_ABS}], got ${describe(qmin)}`);
  }
  if (typeof qmax !== 'number' || !Number.isInteger(qmax) || Math.abs(qmax) > MAX_Q_ABS) {
    fail(fn, `candidates.qmax must be an integer in [${-MAX_Q_ABS}, ${MAX_Q_ABS}], got ${describe(qmax)}`);
  }
  if (qmin > qmax) fail(fn, `candidates.qmin (${qmin}) must not exceed candidates.qmax (${qmax})`);
  if (!isArrayLike(c.scale)) fail(fn, `candidates.scale must be a Float32Array, got ${describe(c.scale)}`);
  if (!isArrayLike(c.zeroPoint)) fail(fn, `candidates.zeroPoint must be an Int32Array, got ${describe(c.zeroPoint)}`);
  const k = c.scale.length;
  if (c.zeroPoint.length !== k) {
    fail(fn, `candidates.scale and candidates.zeroPoint must have the same length, got ${k} and ${c.zeroPoint.length}`);
  }
  const scales = new Float32Array(k);
  const zeroPoints = new Int32Array(k);
  for (let i = 0; i < k; i++) {
    scales[i] = checkScale(fn, `candidates.scale[${i}]`, c.scale[i]);
    zeroPoints[i] = checkZeroPoint(fn, `candidates.zeroPoint[${i}]`, c.zeroPoint[i], qmin, qmax);
  }
  return { scales, zeroPoints, qmin, qmax };
}

export interface HistogramRange {
  lo: number;
  /** float32(bins / (hi - lo)) */
  k: number;
  bins: number;
}

export function checkHistogram(fn: string, lo: unknown, hi: unknown, counts: unknown, sums?: unknown): HistogramRange {
  if (!(counts instanceof Float64Array) && !(counts instanceof Uint32Array)) {
    fail(fn, `counts must be a Float64Array or Uint32Array, got ${describe(counts)}`);
  }
  const bins = counts.length;
  if (sums !== undefined && (!(sums instanceof Float64Array) || sums.length !== bins)) {
    fail(fn, `sums must be a Float64Array as long as counts (${bins}), got ${describe(sums)}`);
  }
  if (bins < 1 || bins > MAX_BINS) fail(fn, `counts.length (the bin count) must be in [1, ${MAX_BINS}], got ${bins}`);
  if (typeof lo !== 'number' || !Number.isFinite(lo)) fail(fn, `lo must be a finite number, got ${describe(lo)}`);
  if (typeof hi !== 'number' || !Number.isFinite(hi)) fail(fn, `hi must be a finite number, got ${describe(hi)}`);
  const lo32 = Math.fround(lo);
  const hi32 = Math.fround(hi);
  if (!(lo32 < hi32) || !Number.isFinite(hi32) || !Number.isFinite(lo32)) {
    fail(fn, `lo must be less than hi as float32 numbers, got lo=${lo}, hi=${hi}`);
  }
  const k = Math.fround(bins / (hi32 - lo32));
  if (!(k > 0) || !Number.isFinite(k)) {
    fail(fn, `the range [${lo}, ${hi}] is too narrow or too wide for ${bins} float32 bins`);
  }
  return { lo: lo32, k, bins };
}
