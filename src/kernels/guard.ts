/**
 * AMCT's guard against degenerate scales: a scale below float32 epsilon (1.1920929e-7) is replaced by 1.
 * The kernels themselves use any finite positive scale exactly as ONNX would; observers apply this
 * guard when they derive a scale from statistics (e.g. an all-zero tensor gives scale 0 -> 1).
 */
/** float32 epsilon, 2^-23 = 1.1920928955078125e-7 (the value AMCT writes as 1.1920929e-7). */
export const SCALE_EPSILON = 2 ** -23;

/** Returns 1 when `scale` is below 2^-23 ≈ 1.1920929e-7 (or NaN), otherwise `scale` unchanged. */
export function guardScale(scale: number): number {
  return scale >= SCALE_EPSILON ? scale : 1;
}

/** guardScale applied to every element, in place; returns the same array. */
export function guardScales<A extends Float32Array | Float64Array>(scales: A): A {
  for (let i = 0; i < scales.length; i++) scales[i] = guardScale(scales[i]!);
  return scales;
}
