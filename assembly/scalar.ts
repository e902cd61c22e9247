// Scalar helpers: one element at a time. The SIMD loops in simd.ts use these for the tails that do
// not fill a whole vector, so a tail element is computed by exactly the same arithmetic as a lane.

/**
 * round_half_to_even(x / scale), saturated into [lo, hi] where lo = qmin - zp and hi = qmax - zp.
 * The result is relative to the zero point (add zp to get q). `<i32>` of an f32 is trunc_sat
 * (nontrapping-f2i): NaN becomes 0 (so q = zp) and ±inf / huge values saturate before the clamp.
 */
// @ts-ignore: decorator
@inline
export function quantRel(x: f32, scale: f32, lo: i32, hi: i32): i32 {
  const r = <i32>nearest<f32>(x / scale);
  return min<i32>(max<i32>(r, lo), hi);
}

/** fake-quantize one value: quantRel(...) * scale (the zero point cancels). */
// @ts-ignore: decorator
@inline
export function fakeQuantOne(x: f32, scale: f32, lo: i32, hi: i32): f32 {
  return <f32>quantRel(x, scale, lo, hi) * scale;
}

/** Stores q (already in range) as T. */
// @ts-ignore: decorator
@inline
export function storeQ<T>(ptr: usize, q: i32): void {
  store<T>(ptr, <T>q);
}

/** Loads a quantized value of type T widened to i32 (sign- or zero-extended as T says). */
// @ts-ignore: decorator
@inline
export function loadQ<T>(ptr: usize): i32 {
  return <i32>load<T>(ptr);
}

/** Scalar tail of quantize with per-tensor parameters. */
export function quantizeTail<T>(x: usize, out: usize, n: i32, scale: f32, zp: i32, lo: i32, hi: i32): void {
  for (let i = 0; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    storeQ<T>(out + (<usize>i) * sizeof<T>(), quantRel(v, scale, lo, hi) + zp);
  }
}

/** Scalar tail of dequantize with per-tensor parameters. */
export function dequantizeTail<T>(q: usize, out: usize, n: i32, scale: f32, zp: i32): void {
  for (let i = 0; i < n; i++) {
    const v = loadQ<T>(q + (<usize>i) * sizeof<T>());
    store<f32>(out + (<usize>i << 2), <f32>(v - zp) * scale);
  }
}

/** Scalar tail of fake-quantize with per-tensor parameters. */
export function fakeQuantTail(x: usize, out: usize, n: i32, scale: f32, lo: i32, hi: i32): void {
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, fakeQuantOne(load<f32>(x + off), scale, lo, hi));
  }
}
