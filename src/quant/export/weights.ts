/**
 * Weight and bias quantization. ARQ as AMCT ships it: symmetric int8 with scale = max|w| / 127,
 * per output channel where the layer allows it, per tensor otherwise. Biases become int32 with
 * scale = activation scale × weight scale, the form integer kernels expect.
 */
import { guardScale } from '../../kernels/guard.js';
import type { Kernels } from '../../kernels/types.js';
import { roundHalfEven, WEIGHT_RANGE } from '../calibrate/params.js';

export interface QuantizedWeight {
  /** One scale per channel along `axis`, or a single scale when `axis` is -1. */
  scale: Float32Array;
  axis: number;
  q: Int8Array;
  /** dequantize(q): the values the deployed model computes with. */
  fq: Float32Array;
}

/**
 * `minScale` (one value, or one per channel): a floor on the scale, so that a bias still fits int32
 * (see biasScaleFloor).
 */
export function quantizeWeight(k: Kernels, w: Float32Array, dims: readonly number[], axis: number, minScale?: Float32Array): QuantizedWeight {
  let absmax: Float32Array;
  if (axis < 0) {
    const { min, max } = k.minMax(w);
    absmax = Float32Array.of(Math.max(Math.abs(min), Math.abs(max)) || 0);
  } else {
    absmax = k.absMaxPerChannel(w, dims, axis);
  }
  const scale = absmax.map((a, c) => guardScale(Math.max(Math.fround(a / WEIGHT_RANGE.qmax), minScale?.[minScale.length === 1 ? 0 : c] ?? 0)));
  const q = k.quantize(w, axis < 0 ? scale[0]! : scale, 0, { type: 'int8', ...(axis < 0 ? {} : { axis, shape: dims }) });
  return { scale, axis, q, fq: dequantizeWeight(k, q, scale, axis, dims) };
}

/** The float values of int8 weights `q` with per-tensor (axis < 0) or per-channel `scale`. */
export function dequantizeWeight(k: Kernels, q: Int8Array, scale: Float32Array, axis: number, dims: readonly number[]): Float32Array {
  return axis < 0 ? k.dequantize(q, scale[0]!, 0) : k.dequantize(q, scale, 0, { axis, shape: dims });
}

export interface QuantizedBias {
  dims: number[];
  /** Per output channel (the bias's last axis) or a single value. */
  scale: Float32Array;
  q: Int32Array;
  fq: Float32Array;
}

const INT32_MAX = 2 ** 31 - 1;
/** Bias values stay below this many steps, leaving int32 headroom for float32 rounding of the scale. */
const BIAS_STEPS = 2 ** 30;

/**
 * Per channel (`channels` along the bias's last axis, or 1), the smallest weight scale with which
 * |b| / (s_x · s_w) stays within int32. A channel whose weights are tiny beside its bias (a dead
 * filter, or one that equalization divided) would otherwise have its bias clipped, the integer kernels
 * then adding a wrong constant; ONNX Runtime's quantizer raises the weight scale the same way.
 */
export function biasScaleFloor(b: Float32Array, channels: number, activationScale: number): Float32Array {
  const floor = new Float32Array(channels);
  for (let i = 0; i < b.length; i++) {
    const c = i % channels;
    floor[c] = Math.max(floor[c]!, Math.abs(b[i]!) / (activationScale * BIAS_STEPS));
  }
  return floor;
}

/**
 * b_q = round(b / (s_x · s_w[c])) in int32, c being the index along the bias's last axis (Gemm's C
 * may be [M, N]); the bias scale is computed in float32 as runtimes do.
 */
export function quantizeBias(b: Float32Array, dims: number[], activationScale: number, weightScale: Float32Array): QuantizedBias {
  const scale = new Float32Array(weightScale.length);
  for (let c = 0; c < scale.length; c++) scale[c] = Math.fround(activationScale * weightScale[c]!);
  const q = new Int32Array(b.length);
  const fq = new Float32Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const s = scale[i % scale.length]!;
    const v = Math.min(INT32_MAX, Math.max(-INT32_MAX, roundHalfEven(Math.fround(b[i]! / s))));
    q[i] = v;
    fq[i] = Math.fround(v * s);
  }
  return { dims, scale, q, fq };
}
