// The kernel module's exports. Every pointer is a byte offset into this module's memory, laid out by
// the JS wrapper (src/kernels/wasm.ts) above heapBase(); the module itself never allocates.
// Per-channel kernels take a segment of a tensor laid out as [outer, C, inner]: n elements starting
// at channel c0, inner position i0 (so the JS side can stream a tensor in chunks).
import * as simd from './simd';

/** First free byte after the module's static data, 16-byte aligned. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}

export function quantize_i8(x: usize, out: usize, n: i32, scale: f32, zp: i32, qmin: i32, qmax: i32): void {
  simd.quantizeRun<i8>(x, out, n, scale, zp, qmin, qmax);
}
export function quantize_u8(x: usize, out: usize, n: i32, scale: f32, zp: i32, qmin: i32, qmax: i32): void {
  simd.quantizeRun<u8>(x, out, n, scale, zp, qmin, qmax);
}
export function quantize_i16(x: usize, out: usize, n: i32, scale: f32, zp: i32, qmin: i32, qmax: i32): void {
  simd.quantizeRun<i16>(x, out, n, scale, zp, qmin, qmax);
}

export function quantize_pc_i8(
  x: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, qmin: i32, qmax: i32,
): void {
  simd.quantizePerChannel<i8>(x, out, n, C, inner, c0, i0, scales, zps, qmin, qmax);
}
export function quantize_pc_u8(
  x: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, qmin: i32, qmax: i32,
): void {
  simd.quantizePerChannel<u8>(x, out, n, C, inner, c0, i0, scales, zps, qmin, qmax);
}
export function quantize_pc_i16(
  x: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, qmin: i32, qmax: i32,
): void {
  simd.quantizePerChannel<i16>(x, out, n, C, inner, c0, i0, scales, zps, qmin, qmax);
}

export function dequantize_i8(q: usize, out: usize, n: i32, scale: f32, zp: i32): void {
  simd.dequantizeRun<i8>(q, out, n, scale, zp);
}
export function dequantize_u8(q: usize, out: usize, n: i32, scale: f32, zp: i32): void {
  simd.dequantizeRun<u8>(q, out, n, scale, zp);
}
export function dequantize_i16(q: usize, out: usize, n: i32, scale: f32, zp: i32): void {
  simd.dequantizeRun<i16>(q, out, n, scale, zp);
}

export function dequantize_pc_i8(
  q: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize,
): void {
  simd.dequantizePerChannel<i8>(q, out, n, C, inner, c0, i0, scales, zps);
}
export function dequantize_pc_u8(
  q: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize,
): void {
  simd.dequantizePerChannel<u8>(q, out, n, C, inner, c0, i0, scales, zps);
}
export function dequantize_pc_i16(
  q: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize,
): void {
  simd.dequantizePerChannel<i16>(q, out, n, C, inner, c0, i0, scales, zps);
}

export function fake_quantize(x: usize, out: usize, n: i32, scale: f32, zp: i32, qmin: i32, qmax: i32): void {
  simd.fakeQuantRun(x, out, n, scale, zp, qmin, qmax);
}
export function fake_quantize_pc(
  x: usize, out: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, scales: usize, zps: usize, qmin: i32, qmax: i32,
): void {
  simd.fakeQuantPerChannel(x, out, n, C, inner, c0, i0, scales, zps, qmin, qmax);
}

export function min_max(x: usize, n: i32, out: usize): void {
  simd.minMax(x, n, out);
}
export function min_max_pc(x: usize, n: i32, C: i32, inner: i32, c0: i32, i0: i32, mins: usize, maxs: usize): void {
  simd.minMaxPerChannel(x, n, C, inner, c0, i0, mins, maxs);
}

export function histogram(x: usize, n: i32, lo: f32, k: f32, bins: i32, counts: usize): void {
  simd.histogram(x, n, lo, k, bins, counts, 0);
}

export function histogram_sums(x: usize, n: i32, lo: f32, k: f32, bins: i32, counts: usize, sums: usize): void {
  simd.histogram(x, n, lo, k, bins, counts, sums);
}

export function fq_squared_error(
  x: usize, n: i32, scales: usize, zps: usize, K: i32, qmin: i32, qmax: i32, sums: usize,
): void {
  simd.fakeQuantSquaredError(x, n, scales, zps, K, qmin, qmax, sums);
}

export function dot3(a: usize, b: usize, n: i32, out: usize): void {
  simd.dot3(a, b, n, out);
}
export function energy_and_error(a: usize, b: usize, n: i32, out: usize): void {
  simd.energyAndError(a, b, n, out);
}
export function cross_moments(a: usize, b: usize, rows: i32, d: i32, hh: usize, gg: usize): void {
  simd.crossMoments(a, b, rows, d, hh, gg);
}
export function round_rows(
  h: usize, g: usize, w: usize, s: usize, q: usize, rows: i32, d: i32, sweeps: i32, t: usize, v: usize, hv: usize, out: usize,
): void {
  simd.roundRows(h, g, w, s, q, rows, d, sweeps, t, v, hv, out);
}
