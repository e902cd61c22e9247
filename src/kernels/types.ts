/**
 * The contract between the quantization code and the numeric kernels. Two implementations:
 * the SIMD WebAssembly kernels (`getKernels()`, src/kernels/wasm.ts) and a scalar TypeScript
 * reference (`referenceKernels`, src/kernels/reference.ts) that is the oracle in tests.
 *
 * Semantics shared by both (each method below documents its own on top of these):
 * - quantize is ONNX QuantizeLinear: q = saturate(round_half_to_even(x / scale) + zeroPoint), with
 *   x / scale an IEEE float32 division (not a multiply by the reciprocal). NaN quantizes to the zero
 *   point (q = zp); ±Infinity and values beyond the range saturate to qmin / qmax.
 * - dequantize is ONNX DequantizeLinear: (q - zeroPoint) * scale in float32.
 * - fakeQuantize(x) === dequantize(quantize(x)) bit for bit.
 * - scales must be finite and > 0 as float32 (tiny and denormal scales are used as given, exactly as
 *   ONNX would; apply `guardScale` first for AMCT's replace-tiny-scales-by-1 rule).
 * - per-channel parameters follow `axis` of `shape`: element index = ((o * C + c) * inner + i).
 */

export type QuantType = 'int8' | 'uint8' | 'int16';

/** Typed array holding quantized values of each type. */
export interface QuantArrayMap {
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
}
export type QuantArrayOf<T extends QuantType> = QuantArrayMap[T];
export type QuantArray = Int8Array | Uint8Array | Int16Array;

/** A per-tensor scale (number) or per-channel scales (one per channel along `axis`). */
export type ScaleArg = number | Float32Array | readonly number[];
/** A per-tensor zero point (number), or one per channel; a number with per-channel scales is broadcast. */
export type ZeroPointArg = number | Int32Array | ArrayLike<number>;

/** Where the channels are, for per-channel parameters (required when the scale is an array). */
export interface ChannelLayout {
  /** Channel axis; negative counts from the end. */
  axis?: number;
  /** Shape of the tensor; its product must equal the element count. */
  shape?: readonly number[];
}

export interface QuantizeOptions<T extends QuantType = QuantType> extends ChannelLayout {
  type: T;
  /** Written in place and returned instead of allocating; same length as x. */
  out?: QuantArrayOf<T>;
}

export interface DequantizeOptions extends ChannelLayout {
  /** Written in place and returned instead of allocating; same length as q. */
  out?: Float32Array;
}

export interface FakeQuantizeOptions extends ChannelLayout {
  /** The integer type whose range [qmin, qmax] the values are saturated to. */
  type: QuantType;
  /** Narrower range inside the type's (e.g. -127 for symmetric int8, or 4-bit ranges); zero points must lie in it. */
  qmin?: number;
  qmax?: number;
  /** Written in place and returned instead of allocating; same length as x (may be x itself). */
  out?: Float32Array;
}

/** K per-tensor candidates sharing one integer range, for clip-range searches (IFMR). */
export interface FakeQuantCandidates {
  scale: Float32Array;
  zeroPoint: Int32Array;
  qmin: number;
  qmax: number;
}

export interface MinMax {
  min: number;
  max: number;
}

export interface ChannelMinMax {
  min: Float32Array;
  max: Float32Array;
}

export type KernelBackend = 'wasm-simd' | 'reference';

/**
 * A float32 array that lives inside the kernels' memory (`Kernels.allocate`), so the Wasm kernels read
 * and write it in place instead of streaming it through their scratch buffers (no copies).
 */
export interface ResidentFloat32 {
  /** Element count, fixed at allocation. */
  readonly length: number;
  /**
   * A fresh Float32Array view of the block on every read. Re-read it after any kernel call (or
   * allocation): a call may grow the Wasm memory, which detaches every view taken before (length 0).
   * Throws after `free()`.
   */
  readonly array: Float32Array;
  /** Returns the block to the allocator for reuse; later `array` reads throw. Calling it again is a no-op. */
  free(): void;
}

export interface Kernels {
  /** Which implementation this is. */
  readonly backend: KernelBackend;

  /**
   * A zero-filled float32 array of `length` elements in the kernels' own memory. Passing its `array`
   * (or a subarray of it) as an input or `out` lets the Wasm kernels work on it in place, without copies;
   * results are bit-identical to passing an ordinary array. The reference kernels return a plain
   * JS-backed array under the same contract. Free it when done; re-read `array` after every kernel call.
   */
  allocate(length: number): ResidentFloat32;

  /**
   * ONNX QuantizeLinear. Per-tensor when `scale` is a number (or a 1-element array with no axis);
   * per-channel when `scale` is an array, which needs `axis` and `shape`.
   */
  quantize<T extends QuantType>(
    x: Float32Array,
    scale: ScaleArg,
    zeroPoint: ZeroPointArg,
    options: QuantizeOptions<T>,
  ): QuantArrayOf<T>;

  /** ONNX DequantizeLinear; the quantized type is taken from the array (Int8Array, Uint8Array, Int16Array). */
  dequantize(q: QuantArray, scale: ScaleArg, zeroPoint: ZeroPointArg, options?: DequantizeOptions): Float32Array;

  /** dequantize(quantize(x)) in one pass. */
  fakeQuantize(x: Float32Array, scale: ScaleArg, zeroPoint: ZeroPointArg, options: FakeQuantizeOptions): Float32Array;

  /**
   * Smallest and largest value. NaN is ignored; an empty or all-NaN input gives
   * { min: +Infinity, max: -Infinity } (the identities, so results of batches merge with Math.min/max).
   * The sign of a zero result is unspecified (-0 and 0 compare equal).
   */
  minMax(x: Float32Array): MinMax;

  /** Per-channel min / max along `axis` of `shape`, NaN ignored, empty channels +Infinity / -Infinity. */
  minMaxPerChannel(x: Float32Array, shape: readonly number[], axis: number): ChannelMinMax;

  /** Per-channel max |x| along `axis` of `shape`, NaN ignored, empty or all-NaN channels 0. */
  absMaxPerChannel(x: Float32Array, shape: readonly number[], axis: number): Float32Array;

  /**
   * Adds the values of x into `counts` (bins = counts.length) over [lo, hi]:
   * bin = floor(clamp((x - lo) * k, 0, bins - 1)) with k = float32(bins / (hi - lo)) and the
   * subtraction and product in float32. Values outside [lo, hi] (±Infinity included) land in the edge
   * bins; NaN is skipped. Counts accumulate so batches merge (a Uint32Array wraps at 2^32).
   * With `sums` (as long as counts) each value is also added, in float64, to its bin's sum.
   */
  histogram(x: Float32Array, lo: number, hi: number, counts: Float64Array | Uint32Array, sums?: Float64Array): void;

  /**
   * For each candidate k: Σ_i (fq_k(x_i) - x_i)^2 in float64, where fq_k is fakeQuantize with
   * scale[k], zeroPoint[k] saturating to [qmin, qmax]. Saturation is the clip: for a clip range whose
   * ends are grid points, cmin = (qmin - zp) * s and cmax = (qmax - zp) * s, fq(clip(x)) === fq(x).
   * NaN or ±Infinity in x make the sums NaN / Infinity.
   */
  fakeQuantSquaredError(x: Float32Array, candidates: FakeQuantCandidates, out?: Float64Array): Float64Array;

  /**
   * Cosine similarity, accumulated in float64, clamped to [-1, 1]. Both vectors all zero (or empty): 1;
   * exactly one all zero: 0. NaN in an input gives NaN.
   */
  cosine(a: Float32Array, b: Float32Array): number;

  /** Mean of (a - b)^2 in float64; 0 for empty inputs. */
  mse(a: Float32Array, b: Float32Array): number;

  /**
   * Signal-to-quantization-noise ratio in dB, 10 * log10(Σ a^2 / Σ (a - b)^2), b being the
   * approximation of a. Identical inputs (also empty): +Infinity; all-zero a with b != a: -Infinity.
   */
  sqnr(a: Float32Array, b: Float32Array): number;

  /**
   * Cross moments of `rows` samples of `d` values, added in float64 (the statistics of adaptive
   * rounding): hh[j·d + i] += Σ_r a[r][j]·a[r][i] for i ≥ j (the upper triangle; the rest untouched) and
   * gg[j·d + i] += Σ_r a[r][j]·b[r][i]. `a` and `b` are column-major: value j of sample r at j·rows + r.
   */
  crossMoments(a: Float32Array, b: Float32Array, rows: number, d: number, hh: Float64Array, gg: Float64Array): void;

  /**
   * Adaptive rounding's coordinate descent for weight rows of `d` inputs that share the statistics `h`
   * (E[x̃ x̃ᵀ], d×d, symmetric) and `g` (g[j·d + i] = E[x̃_j x_i]). Row r has float weights
   * w[r·d … r·d + d), scale `scale[r]` and int8 values q[r·d …) (nearest on entry, chosen on return):
   * each value moves between ⌊w/s⌋ and ⌊w/s⌋ + 1 (within ±127) while that lowers vᵀhv − 2vᵀg·w
   * (v = q·s), for at most `sweeps` sweeps over the row. Returns that objective per row before and
   * after: [before₀, after₀, before₁, …].
   */
  roundRows(h: Float64Array, g: Float64Array, w: Float32Array, scale: Float64Array, q: Int8Array, d: number, sweeps: number): Float64Array;
}
