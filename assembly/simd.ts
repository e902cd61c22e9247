// SIMD loops (128-bit: 4 f32 / 4 i32 / 16 i8 lanes). Each loop handles whole vectors and hands the
// remainder to the scalar helpers in scalar.ts, which compute a tail element exactly like a lane.
// Nothing here allocates: every buffer is a pointer into linear memory handed in by the JS side.
import { quantRel, fakeQuantOne, quantizeTail, dequantizeTail, fakeQuantTail, loadQ, storeQ } from './scalar';

// ---------------------------------------------------------------------------------------------
// Quantize core: round_half_to_even(x / s), saturated into [lo, hi] = [qmin - zp, qmax - zp].
// f32x4.nearest rounds ties to even (ONNX QuantizeLinear); trunc_sat maps NaN to 0 and saturates
// ±inf / huge values to the i32 range, which the clamp then brings into [lo, hi].
// ---------------------------------------------------------------------------------------------

// Rounding without nearest/trunc_sat (trunc_sat alone is ~8 x86 instructions in V8): the quotient
// v = x / s is first made NaN-free (NaN -> +0 via an and with v == v), clamped to [lo, hi] as floats
// (lo, hi are integers, |lo|, |hi| < 2^22, so clamping before rounding equals clamping after), then
// rounded by adding MAGIC = 1.5 * 2^23: the sum lies in [2^23, 2^24) where the float32 spacing is 1,
// so the hardware's round-to-nearest-even rounds v to an integer with ties to even, exactly like
// f32x4.nearest. The bits of (v + MAGIC) minus the bits of MAGIC are that integer; (v + MAGIC) - MAGIC
// is the same integer as a float (+0 for -0.5 <= v <= 0, matching the integer path's +0).
const MAGIC: f32 = 12582912.0;
const MAGIC_BITS: i32 = 0x4b400000;

// V8's TurboFan schedules pure nodes as late as possible, so splats and v128 constants computed
// before a loop get re-materialized inside the loop body (broadcasts, int->float conversions, a
// 64-bit immediate move + shuffle per v128.const, on every iteration). A value that round-trips
// through memory is a load on the effect chain and stays before the loop, in a register. Measured on
// the fake-quantize loop: 13-17% less time per element. Binaryen does not forward the store to the
// load, and the kernels never run concurrently, so one static scratch area is enough.
const PIN_SLOTS: usize = memory.data(8 * 16, 16);

/** Returns v unchanged, but kept out of V8's loop body (see above). `slot` < 8, one per live value. */
// @ts-ignore: decorator
@inline
function pin(v: v128, slot: u32): v128 {
  const p = PIN_SLOTS + (<usize>slot << 4);
  v128.store(p, v);
  return v128.load(p);
}

/** round_half_to_even(clamp(x / s, lo, hi)) + MAGIC, as floats (lo/hi are floats here). */
// @ts-ignore: decorator
@inline
function qmagic4(x: v128, s: v128, lo: v128, hi: v128, magic: v128): v128 {
  let v = f32x4.div(x, s);
  v = v128.and(v, f32x4.eq(v, v));
  v = f32x4.pmin(hi, f32x4.pmax(lo, v));
  return f32x4.add(v, magic);
}

/** q - zp = clamp(round(x / s), lo, hi) as i32 lanes. */
// @ts-ignore: decorator
@inline
function qrel4(x: v128, s: v128, lo: v128, hi: v128): v128 {
  return i32x4.sub(qmagic4(x, s, lo, hi, f32x4.splat(MAGIC)), i32x4.splat(MAGIC_BITS));
}

/** Narrows four i32x4 vectors of in-range values to 16 values of T and stores them. */
// @ts-ignore: decorator
@inline
function storeQ16<T>(out: usize, a: v128, b: v128, c: v128, d: v128): void {
  if (sizeof<T>() == 1) {
    const ab = i16x8.narrow_i32x4_s(a, b);
    const cd = i16x8.narrow_i32x4_s(c, d);
    if (isSigned<T>()) v128.store(out, i8x16.narrow_i16x8_s(ab, cd));
    else v128.store(out, i8x16.narrow_i16x8_u(ab, cd));
  } else {
    v128.store(out, i16x8.narrow_i32x4_s(a, b));
    v128.store(out, i16x8.narrow_i32x4_s(c, d), 16);
  }
}

/** Quantize n values with one scale / zero point. */
export function quantizeRun<T>(x: usize, out: usize, n: i32, scale: f32, zp: i32, qmin: i32, qmax: i32): void {
  const lo = qmin - zp;
  const hi = qmax - zp;
  const vs = pin(f32x4.splat(scale), 0);
  const vlo = pin(f32x4.splat(<f32>lo), 1);
  const vhi = pin(f32x4.splat(<f32>hi), 2);
  const vm = pin(f32x4.splat(MAGIC), 3);
  const bias = pin(i32x4.splat(MAGIC_BITS - zp), 4); // bits(round(v) + MAGIC) - bias = round(v) + zp
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    const p = x + (<usize>i << 2);
    const a = i32x4.sub(qmagic4(v128.load(p), vs, vlo, vhi, vm), bias);
    const b = i32x4.sub(qmagic4(v128.load(p, 16), vs, vlo, vhi, vm), bias);
    const c = i32x4.sub(qmagic4(v128.load(p, 32), vs, vlo, vhi, vm), bias);
    const d = i32x4.sub(qmagic4(v128.load(p, 48), vs, vlo, vhi, vm), bias);
    storeQ16<T>(out + (<usize>i) * sizeof<T>(), a, b, c, d);
  }
  quantizeTail<T>(x + (<usize>i << 2), out + (<usize>i) * sizeof<T>(), n - i, scale, zp, lo, hi);
}

// @ts-ignore: decorator
@inline
function qabs4(x: v128, s: v128, zp: v128, qmin: v128, qmax: v128): v128 {
  const lo = f32x4.convert_i32x4_s(i32x4.sub(qmin, zp));
  const hi = f32x4.convert_i32x4_s(i32x4.sub(qmax, zp));
  return i32x4.add(qrel4(x, s, lo, hi), zp);
}

/** Quantize n values whose channel advances with every element (scales/zps point at channel c). */
export function quantizeRunVec<T>(x: usize, out: usize, n: i32, scales: usize, zps: usize, qmin: i32, qmax: i32): void {
  const vqmin = i32x4.splat(qmin);
  const vqmax = i32x4.splat(qmax);
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    const off = <usize>i << 2;
    const p = x + off;
    const s = scales + off;
    const z = zps + off;
    const a = qabs4(v128.load(p), v128.load(s), v128.load(z), vqmin, vqmax);
    const b = qabs4(v128.load(p, 16), v128.load(s, 16), v128.load(z, 16), vqmin, vqmax);
    const c = qabs4(v128.load(p, 32), v128.load(s, 32), v128.load(z, 32), vqmin, vqmax);
    const d = qabs4(v128.load(p, 48), v128.load(s, 48), v128.load(z, 48), vqmin, vqmax);
    storeQ16<T>(out + (<usize>i) * sizeof<T>(), a, b, c, d);
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const zp = load<i32>(zps + off);
    const q = quantRel(load<f32>(x + off), load<f32>(scales + off), qmin - zp, qmax - zp) + zp;
    storeQ<T>(out + (<usize>i) * sizeof<T>(), q);
  }
}

/**
 * Per-channel quantize of a contiguous segment of n elements of a tensor laid out as
 * [outer, C, inner]; the segment starts at channel c0, inner position i0.
 */
export function quantizePerChannel<T>(
  x: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32,
  scales: usize, zps: usize, qmin: i32, qmax: i32,
): void {
  let c = c0;
  let i = i0;
  let j = 0;
  while (j < n) {
    const xp = x + (<usize>j << 2);
    const op = out + (<usize>j) * sizeof<T>();
    if (inner == 1) {
      const run = min<i32>(C - c, n - j);
      quantizeRunVec<T>(xp, op, run, scales + (<usize>c << 2), zps + (<usize>c << 2), qmin, qmax);
      j += run;
      c += run;
      if (c == C) c = 0;
    } else {
      const run = min<i32>(inner - i, n - j);
      const cs = <usize>c << 2;
      quantizeRun<T>(xp, op, run, load<f32>(scales + cs), load<i32>(zps + cs), qmin, qmax);
      j += run;
      i += run;
      if (i == inner) {
        i = 0;
        c++;
        if (c == C) c = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dequantize: (q - zp) * scale, the subtraction in i32 (exact), one f32 multiply.
// ---------------------------------------------------------------------------------------------

/** Dequantize n values with one scale / zero point. */
export function dequantizeRun<T>(q: usize, out: usize, n: i32, scale: f32, zp: i32): void {
  const vs = f32x4.splat(scale);
  const vzp = i32x4.splat(zp);
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    const qp = q + (<usize>i) * sizeof<T>();
    let a: v128, b: v128, c: v128, d: v128;
    if (sizeof<T>() == 1) {
      const v = v128.load(qp);
      let l: v128, h: v128;
      if (isSigned<T>()) {
        l = i16x8.extend_low_i8x16_s(v);
        h = i16x8.extend_high_i8x16_s(v);
      } else {
        l = i16x8.extend_low_i8x16_u(v);
        h = i16x8.extend_high_i8x16_u(v);
      }
      a = i32x4.extend_low_i16x8_s(l);
      b = i32x4.extend_high_i16x8_s(l);
      c = i32x4.extend_low_i16x8_s(h);
      d = i32x4.extend_high_i16x8_s(h);
    } else {
      const l = v128.load(qp);
      const h = v128.load(qp, 16);
      a = i32x4.extend_low_i16x8_s(l);
      b = i32x4.extend_high_i16x8_s(l);
      c = i32x4.extend_low_i16x8_s(h);
      d = i32x4.extend_high_i16x8_s(h);
    }
    const op = out + (<usize>i << 2);
    v128.store(op, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(a, vzp)), vs));
    v128.store(op, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(b, vzp)), vs), 16);
    v128.store(op, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(c, vzp)), vs), 32);
    v128.store(op, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(d, vzp)), vs), 48);
  }
  dequantizeTail<T>(q + (<usize>i) * sizeof<T>(), out + (<usize>i << 2), n - i, scale, zp);
}

/** Dequantize n values whose channel advances with every element. */
export function dequantizeRunVec<T>(q: usize, out: usize, n: i32, scales: usize, zps: usize): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const qp = q + (<usize>i) * sizeof<T>();
    let a: v128;
    if (sizeof<T>() == 1) {
      const v = v128.load32_zero(qp);
      if (isSigned<T>()) a = i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v));
      else a = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v));
    } else {
      a = i32x4.extend_low_i16x8_s(v128.load64_zero(qp));
    }
    const off = <usize>i << 2;
    const r = f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(a, v128.load(zps + off))), v128.load(scales + off));
    v128.store(out + off, r);
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const v = loadQ<T>(q + (<usize>i) * sizeof<T>());
    store<f32>(out + off, <f32>(v - load<i32>(zps + off)) * load<f32>(scales + off));
  }
}

/** Per-channel dequantize of a segment (see quantizePerChannel for the layout arguments). */
export function dequantizePerChannel<T>(
  q: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize,
): void {
  let c = c0;
  let i = i0;
  let j = 0;
  while (j < n) {
    const qp = q + (<usize>j) * sizeof<T>();
    const op = out + (<usize>j << 2);
    if (inner == 1) {
      const run = min<i32>(C - c, n - j);
      dequantizeRunVec<T>(qp, op, run, scales + (<usize>c << 2), zps + (<usize>c << 2));
      j += run;
      c += run;
      if (c == C) c = 0;
    } else {
      const run = min<i32>(inner - i, n - j);
      const cs = <usize>c << 2;
      dequantizeRun<T>(qp, op, run, load<f32>(scales + cs), load<i32>(zps + cs));
      j += run;
      i += run;
      if (i == inner) {
        i = 0;
        c++;
        if (c == C) c = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Fake-quantize: dequantize(quantize(x)) = clamp(round(x / s), qmin - zp, qmax - zp) * s.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline
function fq4(x: v128, s: v128, lo: v128, hi: v128, magic: v128): v128 {
  return f32x4.mul(f32x4.sub(qmagic4(x, s, lo, hi, magic), magic), s);
}

/** Fake-quantize n values with one scale / zero point. */
export function fakeQuantRun(x: usize, out: usize, n: i32, scale: f32, zp: i32, qmin: i32, qmax: i32): void {
  const lo = qmin - zp;
  const hi = qmax - zp;
  const vs = pin(f32x4.splat(scale), 0);
  const vlo = pin(f32x4.splat(<f32>lo), 1);
  const vhi = pin(f32x4.splat(<f32>hi), 2);
  const vm = pin(f32x4.splat(MAGIC), 3);
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    const off = <usize>i << 2;
    const p = x + off;
    const o = out + off;
    v128.store(o, fq4(v128.load(p), vs, vlo, vhi, vm));
    v128.store(o, fq4(v128.load(p, 16), vs, vlo, vhi, vm), 16);
    v128.store(o, fq4(v128.load(p, 32), vs, vlo, vhi, vm), 32);
    v128.store(o, fq4(v128.load(p, 48), vs, vlo, vhi, vm), 48);
  }
  fakeQuantTail(x + (<usize>i << 2), out + (<usize>i << 2), n - i, scale, lo, hi);
}

/** Fake-quantize n values whose channel advances with every element. */
export function fakeQuantRunVec(x: usize, out: usize, n: i32, scales: usize, zps: usize, qmin: i32, qmax: i32): void {
  const vqmin = i32x4.splat(qmin);
  const vqmax = i32x4.splat(qmax);
  const vm = f32x4.splat(MAGIC);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const off = <usize>i << 2;
    const s = v128.load(scales + off);
    const z = v128.load(zps + off);
    const lo = f32x4.convert_i32x4_s(i32x4.sub(vqmin, z));
    const hi = f32x4.convert_i32x4_s(i32x4.sub(vqmax, z));
    v128.store(out + off, fq4(v128.load(x + off), s, lo, hi, vm));
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const zp = load<i32>(zps + off);
    store<f32>(out + off, fakeQuantOne(load<f32>(x + off), load<f32>(scales + off), qmin - zp, qmax - zp));
  }
}

/** Per-channel fake-quantize of a segment (see quantizePerChannel for the layout arguments). */
export function fakeQuantPerChannel(
  x: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32,
  scales: usize, zps: usize, qmin: i32, qmax: i32,
): void {
  let c = c0;
  let i = i0;
  let j = 0;
  while (j < n) {
    const off = <usize>j << 2;
    if (inner == 1) {
      const run = min<i32>(C - c, n - j);
      fakeQuantRunVec(x + off, out + off, run, scales + (<usize>c << 2), zps + (<usize>c << 2), qmin, qmax);
      j += run;
      c += run;
      if (c == C) c = 0;
    } else {
      const run = min<i32>(inner - i, n - j);
      const cs = <usize>c << 2;
      fakeQuantRun(x + off, out + off, run, load<f32>(scales + cs), load<i32>(zps + cs), qmin, qmax);
      j += run;
      i += run;
      if (i == inner) {
        i = 0;
        c++;
        if (c == C) c = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Min / max. pmin(acc, x) = x < acc ? x : acc, so a NaN x never replaces the accumulator: NaN is
// ignored. The accumulators start at +inf / -inf (the identities), which is what an empty or
// all-NaN input returns.
// ---------------------------------------------------------------------------------------------

// Results of minMaxRun (a function returns one value); always written before they are read.
let runMin: f32 = 0;
let runMax: f32 = 0;

/** Reduces n values to (runMin, runMax). */
export function minMaxRun(x: usize, n: i32): void {
  let mn0 = f32x4.splat(Infinity);
  let mn1 = mn0;
  let mn2 = mn0;
  let mn3 = mn0;
  let mx0 = f32x4.splat(-Infinity);
  let mx1 = mx0;
  let mx2 = mx0;
  let mx3 = mx0;
  const n16 = n & ~15;
  let i = 0;
  for (; i < n16; i += 16) {
    const p = x + (<usize>i << 2);
    const v0 = v128.load(p);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    mn0 = f32x4.pmin(mn0, v0);
    mn1 = f32x4.pmin(mn1, v1);
    mn2 = f32x4.pmin(mn2, v2);
    mn3 = f32x4.pmin(mn3, v3);
    mx0 = f32x4.pmax(mx0, v0);
    mx1 = f32x4.pmax(mx1, v1);
    mx2 = f32x4.pmax(mx2, v2);
    mx3 = f32x4.pmax(mx3, v3);
  }
  const mn = f32x4.pmin(f32x4.pmin(mn0, mn1), f32x4.pmin(mn2, mn3));
  const mx = f32x4.pmax(f32x4.pmax(mx0, mx1), f32x4.pmax(mx2, mx3));
  let m: f32 = f32x4.extract_lane(mn, 0);
  let M: f32 = f32x4.extract_lane(mx, 0);
  let t: f32 = f32x4.extract_lane(mn, 1);
  if (t < m) m = t;
  t = f32x4.extract_lane(mn, 2);
  if (t < m) m = t;
  t = f32x4.extract_lane(mn, 3);
  if (t < m) m = t;
  t = f32x4.extract_lane(mx, 1);
  if (t > M) M = t;
  t = f32x4.extract_lane(mx, 2);
  if (t > M) M = t;
  t = f32x4.extract_lane(mx, 3);
  if (t > M) M = t;
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v < m) m = v;
    if (v > M) M = v;
  }
  runMin = m;
  runMax = M;
}

/** Reduces n values into out[0] (min) and out[1] (max), combining with what is there. */
export function minMax(x: usize, n: i32, out: usize): void {
  minMaxRun(x, n);
  if (runMin < load<f32>(out)) store<f32>(out, runMin);
  if (runMax > load<f32>(out, 4)) store<f32>(out, runMax, 4);
}

/** Per-channel min / max of a segment, combined into mins[C] / maxs[C]. */
export function minMaxPerChannel(
  x: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, mins: usize, maxs: usize,
): void {
  let c = c0;
  let i = i0;
  let j = 0;
  while (j < n) {
    const xp = x + (<usize>j << 2);
    if (inner == 1) {
      const run = min<i32>(C - c, n - j);
      const mp = mins + (<usize>c << 2);
      const Mp = maxs + (<usize>c << 2);
      const r4 = run & ~3;
      let k = 0;
      for (; k < r4; k += 4) {
        const off = <usize>k << 2;
        const v = v128.load(xp + off);
        v128.store(mp + off, f32x4.pmin(v128.load(mp + off), v));
        v128.store(Mp + off, f32x4.pmax(v128.load(Mp + off), v));
      }
      for (; k < run; k++) {
        const off = <usize>k << 2;
        const v = load<f32>(xp + off);
        if (v < load<f32>(mp + off)) store<f32>(mp + off, v);
        if (v > load<f32>(Mp + off)) store<f32>(Mp + off, v);
      }
      j += run;
      c += run;
      if (c == C) c = 0;
    } else {
      const run = min<i32>(inner - i, n - j);
      minMaxRun(xp, run);
      const cs = <usize>c << 2;
      if (runMin < load<f32>(mins + cs)) store<f32>(mins + cs, runMin);
      if (runMax > load<f32>(maxs + cs)) store<f32>(maxs + cs, runMax);
      j += run;
      i += run;
      if (i == inner) {
        i = 0;
        c++;
        if (c == C) c = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Histogram: bin = trunc(clamp((x - lo) * k, 0, bins - 1)) with k = bins / (hi - lo), all in f32.
// NaN goes to the extra slot counts[bins], which the caller discards.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline
function countInto(counts: usize, sums: usize, b: usize, v: f32): void {
  store<u32>(counts + (b << 2), load<u32>(counts + (b << 2)) + 1);
  if (sums) store<f64>(sums + (b << 3), load<f64>(sums + (b << 3)) + <f64>v);
}

/**
 * Adds n values into u32 counts[0..bins] (counts[bins] collects NaN) and, when `sums` is not 0,
 * each value into f64 sums[0..bins], so a bin's mean (where a point mass sits) is known.
 */
export function histogram(x: usize, n: i32, lo: f32, k: f32, bins: i32, counts: usize, sums: usize): void {
  const vlo = f32x4.splat(lo);
  const vk = f32x4.splat(k);
  const vtop = f32x4.splat(<f32>(bins - 1));
  const vzero = f32x4.splat(0);
  const vnan = i32x4.splat(bins);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    const t = f32x4.pmax(vzero, f32x4.pmin(vtop, f32x4.mul(f32x4.sub(v, vlo), vk)));
    const idx = v128.bitselect(vnan, i32x4.trunc_sat_f32x4_s(t), f32x4.ne(v, v));
    countInto(counts, sums, <usize>i32x4.extract_lane(idx, 0), f32x4.extract_lane(v, 0));
    countInto(counts, sums, <usize>i32x4.extract_lane(idx, 1), f32x4.extract_lane(v, 1));
    countInto(counts, sums, <usize>i32x4.extract_lane(idx, 2), f32x4.extract_lane(v, 2));
    countInto(counts, sums, <usize>i32x4.extract_lane(idx, 3), f32x4.extract_lane(v, 3));
  }
  const top = <f32>(bins - 1);
  for (; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    let b = bins;
    if (v == v) {
      let t = (v - lo) * k;
      if (t > top) t = top;
      if (!(t > 0)) t = 0;
      b = <i32>t;
    }
    countInto(counts, sums, <usize>b, v);
  }
}

// ---------------------------------------------------------------------------------------------
// f64 reductions. Products and differences of two f32 are formed in f64 (products exactly) and
// summed in f64 with several independent accumulators.
// ---------------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline
function lo64(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}

// @ts-ignore: decorator
@inline
function hi64(v: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3));
}

// @ts-ignore: decorator
@inline
function hsum(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/** fake-quant squared error for K per-tensor candidates: sums[k] += Σ (fq_k(x) - x)^2. */
export function fakeQuantSquaredError(
  x: usize, n: i32, scales: usize, zps: usize, K: i32, qmin: i32, qmax: i32, sums: usize,
): void {
  const n8 = n & ~7;
  for (let k = 0; k < K; k++) {
    const scale = load<f32>(scales + (<usize>k << 2));
    const zp = load<i32>(zps + (<usize>k << 2));
    const lo = qmin - zp;
    const hi = qmax - zp;
    const vs = f32x4.splat(scale);
    const vlo = f32x4.splat(<f32>lo);
    const vhi = f32x4.splat(<f32>hi);
    const vm = f32x4.splat(MAGIC);
    let a0 = f64x2.splat(0);
    let a1 = a0;
    let a2 = a0;
    let a3 = a0;
    let i = 0;
    for (; i < n8; i += 8) {
      const p = x + (<usize>i << 2);
      const v0 = v128.load(p);
      const v1 = v128.load(p, 16);
      const f0 = fq4(v0, vs, vlo, vhi, vm);
      const f1 = fq4(v1, vs, vlo, vhi, vm);
      const d0 = f64x2.sub(lo64(f0), lo64(v0));
      const d1 = f64x2.sub(hi64(f0), hi64(v0));
      const d2 = f64x2.sub(lo64(f1), lo64(v1));
      const d3 = f64x2.sub(hi64(f1), hi64(v1));
      a0 = f64x2.add(a0, f64x2.mul(d0, d0));
      a1 = f64x2.add(a1, f64x2.mul(d1, d1));
      a2 = f64x2.add(a2, f64x2.mul(d2, d2));
      a3 = f64x2.add(a3, f64x2.mul(d3, d3));
    }
    let s = hsum(f64x2.add(f64x2.add(a0, a1), f64x2.add(a2, a3)));
    for (; i < n; i++) {
      const v = load<f32>(x + (<usize>i << 2));
      const d = <f64>fakeQuantOne(v, scale, lo, hi) - <f64>v;
      s += d * d;
    }
    const sp = sums + (<usize>k << 3);
    store<f64>(sp, load<f64>(sp) + s);
  }
}

// Two f32 lanes at a time are loaded with load64_zero and promoted (cheaper in V8 than a full load
// plus a shuffle for the high half); 8 elements per iteration, two accumulators per sum.

// @ts-ignore: decorator
@inline
function ld64(p: usize, off: u32): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p + off));
}

/** out[0] += Σ a·b, out[1] += Σ a², out[2] += Σ b² (for the cosine). */
export function dot3(a: usize, b: usize, n: i32, out: usize): void {
  let ab0 = f64x2.splat(0);
  let ab1 = ab0;
  let aa0 = ab0;
  let aa1 = ab0;
  let bb0 = ab0;
  let bb1 = ab0;
  const n8 = n & ~7;
  let i = 0;
  for (; i < n8; i += 8) {
    const off = <usize>i << 2;
    const p = a + off;
    const q = b + off;
    const a0 = ld64(p, 0);
    const a1 = ld64(p, 8);
    const a2 = ld64(p, 16);
    const a3 = ld64(p, 24);
    const b0 = ld64(q, 0);
    const b1 = ld64(q, 8);
    const b2 = ld64(q, 16);
    const b3 = ld64(q, 24);
    ab0 = f64x2.add(ab0, f64x2.add(f64x2.mul(a0, b0), f64x2.mul(a1, b1)));
    ab1 = f64x2.add(ab1, f64x2.add(f64x2.mul(a2, b2), f64x2.mul(a3, b3)));
    aa0 = f64x2.add(aa0, f64x2.add(f64x2.mul(a0, a0), f64x2.mul(a1, a1)));
    aa1 = f64x2.add(aa1, f64x2.add(f64x2.mul(a2, a2), f64x2.mul(a3, a3)));
    bb0 = f64x2.add(bb0, f64x2.add(f64x2.mul(b0, b0), f64x2.mul(b1, b1)));
    bb1 = f64x2.add(bb1, f64x2.add(f64x2.mul(b2, b2), f64x2.mul(b3, b3)));
  }
  let sab = hsum(f64x2.add(ab0, ab1));
  let saa = hsum(f64x2.add(aa0, aa1));
  let sbb = hsum(f64x2.add(bb0, bb1));
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const x = <f64>load<f32>(a + off);
    const y = <f64>load<f32>(b + off);
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  store<f64>(out, load<f64>(out) + sab);
  store<f64>(out, load<f64>(out, 8) + saa, 8);
  store<f64>(out, load<f64>(out, 16) + sbb, 16);
}

/** out[0] += Σ a², out[1] += Σ (a - b)² (for SQNR and MSE). */
export function energyAndError(a: usize, b: usize, n: i32, out: usize): void {
  let aa0 = f64x2.splat(0);
  let aa1 = aa0;
  let dd0 = aa0;
  let dd1 = aa0;
  const n8 = n & ~7;
  let i = 0;
  for (; i < n8; i += 8) {
    const off = <usize>i << 2;
    const p = a + off;
    const q = b + off;
    const a0 = ld64(p, 0);
    const a1 = ld64(p, 8);
    const a2 = ld64(p, 16);
    const a3 = ld64(p, 24);
    const d0 = f64x2.sub(a0, ld64(q, 0));
    const d1 = f64x2.sub(a1, ld64(q, 8));
    const d2 = f64x2.sub(a2, ld64(q, 16));
    const d3 = f64x2.sub(a3, ld64(q, 24));
    aa0 = f64x2.add(aa0, f64x2.add(f64x2.mul(a0, a0), f64x2.mul(a1, a1)));
    aa1 = f64x2.add(aa1, f64x2.add(f64x2.mul(a2, a2), f64x2.mul(a3, a3)));
    dd0 = f64x2.add(dd0, f64x2.add(f64x2.mul(d0, d0), f64x2.mul(d1, d1)));
    dd1 = f64x2.add(dd1, f64x2.add(f64x2.mul(d2, d2), f64x2.mul(d3, d3)));
  }
  let saa = hsum(f64x2.add(aa0, aa1));
  let sdd = hsum(f64x2.add(dd0, dd1));
  for (; i < n; i++) {
    const off = <usize>i << 2;
    const x = <f64>load<f32>(a + off);
    const d = x - <f64>load<f32>(b + off);
    saa += x * x;
    sdd += d * d;
  }
  store<f64>(out, load<f64>(out) + saa);
  store<f64>(out, load<f64>(out, 8) + sdd, 8);
}

/** Σ a[i]·b[i] over n float32 values, in float64. */
function dot(a: usize, b: usize, n: i32): f64 {
  let s0 = f64x2.splat(0);
  let s1 = s0;
  const n8 = n & ~7;
  let i = 0;
  for (; i < n8; i += 8) {
    const off = <usize>i << 2;
    const p = a + off;
    const q = b + off;
    s0 = f64x2.add(s0, f64x2.add(f64x2.mul(ld64(p, 0), ld64(q, 0)), f64x2.mul(ld64(p, 8), ld64(q, 8))));
    s1 = f64x2.add(s1, f64x2.add(f64x2.mul(ld64(p, 16), ld64(q, 16)), f64x2.mul(ld64(p, 24), ld64(q, 24))));
  }
  let s = hsum(f64x2.add(s0, s1));
  for (; i < n; i++) {
    const off = <usize>i << 2;
    s += <f64>load<f32>(a + off) * <f64>load<f32>(b + off);
  }
  return s;
}

/**
 * Cross moments of column-major samples (see Kernels.crossMoments): each sum is a dot product of two
 * contiguous columns, so every read is sequential.
 */
export function crossMoments(a: usize, b: usize, rows: i32, d: i32, hh: usize, gg: usize): void {
  const col = <usize>rows << 2;
  for (let j = 0; j < d; j++) {
    const aj = a + <usize>j * col;
    const row = <usize>j * <usize>d;
    for (let i = j; i < d; i++) {
      const at = hh + ((row + <usize>i) << 3);
      store<f64>(at, load<f64>(at) + dot(aj, a + <usize>i * col, rows));
    }
    for (let i = 0; i < d; i++) {
      const at = gg + ((row + <usize>i) << 3);
      store<f64>(at, load<f64>(at) + dot(aj, b + <usize>i * col, rows));
    }
  }
}

/**
 * Adaptive rounding's coordinate descent (see Kernels.roundRows) for `rows` rows sharing h and g.
 * The dot products run in order, as the reference does, so both choose the same flips; the update of
 * h·v after a flip is elementwise (row j of the symmetric h), the same in any lane order.
 * t, v, hv: d f64 of scratch each; out: before and after per row.
 */
export function roundRows(
  h: usize, g: usize, w: usize, s: usize, q: usize, rows: i32, d: i32, sweeps: i32, t: usize, v: usize, hv: usize, out: usize,
): void {
  const rowBytes = <usize>d << 3;
  for (let r = 0; r < rows; r++) {
    const sc = load<f64>(s + (<usize>r << 3));
    const wr = w + ((<usize>r * <usize>d) << 2);
    const qr = q + <usize>r * <usize>d;
    for (let i = 0; i < d; i++) store<f64>(v + (<usize>i << 3), <f64>load<i8>(qr + <usize>i) * sc);
    for (let j = 0; j < d; j++) {
      const gj = g + <usize>j * rowBytes;
      const hj = h + <usize>j * rowBytes;
      let a = 0.0;
      let b = 0.0;
      for (let i = 0; i < d; i++) {
        a += load<f64>(gj + (<usize>i << 3)) * <f64>load<f32>(wr + (<usize>i << 2));
        b += load<f64>(hj + (<usize>i << 3)) * load<f64>(v + (<usize>i << 3));
      }
      store<f64>(t + (<usize>j << 3), a);
      store<f64>(hv + (<usize>j << 3), b);
    }
    const before = objective(v, hv, t, d);
    if (sc > 0) {
      const tol = -1e-12 * Math.abs(before) - 1e-30;
      for (let sweep = 0; sweep < sweeps; sweep++) {
        let changed = false;
        for (let j = 0; j < d; j++) {
          const cur = <i32>load<i8>(qr + <usize>j);
          const lo = <i32>Math.floor(<f64>load<f32>(wr + (<usize>j << 2)) / sc);
          const alt = cur == lo ? lo + 1 : lo;
          if (alt > 127 || alt < -127 || (cur != lo && cur != lo + 1)) continue;
          const delta = <f64>(alt - cur) * sc;
          const hj = h + <usize>j * rowBytes;
          const dJ = 2 * delta * (load<f64>(hv + (<usize>j << 3)) - load<f64>(t + (<usize>j << 3))) + delta * delta * load<f64>(hj + (<usize>j << 3));
          if (!(dJ < tol)) continue;
          store<i8>(qr + <usize>j, <i8>alt);
          store<f64>(v + (<usize>j << 3), <f64>alt * sc);
          const dv = f64x2.splat(delta);
          let k = 0;
          for (; k + 2 <= d; k += 2) {
            const at = hv + (<usize>k << 3);
            v128.store(at, f64x2.add(v128.load(at), f64x2.mul(dv, v128.load(hj + (<usize>k << 3)))));
          }
          for (; k < d; k++) {
            const at = hv + (<usize>k << 3);
            store<f64>(at, load<f64>(at) + delta * load<f64>(hj + (<usize>k << 3)));
          }
          changed = true;
        }
        if (!changed) break;
      }
    }
    store<f64>(out + (<usize>r << 4), before);
    store<f64>(out + (<usize>r << 4) + 8, objective(v, hv, t, d));
  }
}

/** vᵀ(h·v − 2t): the rounding's output error without the constant E[(w·x)²]. */
// @ts-ignore: decorator
@inline
function objective(v: usize, hv: usize, t: usize, d: i32): f64 {
  let acc = 0.0;
  for (let j = 0; j < d; j++) {
    const o = <usize>j << 3;
    acc += load<f64>(v + o) * (load<f64>(hv + o) - 2 * load<f64>(t + o));
  }
  return acc;
}
