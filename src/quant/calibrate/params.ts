/**
 * AMCT's formulas from a range to quantization parameters. Kept pure so observers, the record
 * and the tests share one definition.
 */
import { guardScale } from '../../kernels/guard.js';
import type { QuantType } from '../../kernels/types.js';

export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

export interface IntRange {
  type: QuantType;
  qmin: number;
  qmax: number;
}

/** Activations: signed types (int8/int16) with an offset when asymmetric, as AMCT does. */
export function activationRange(bits: 8 | 16): IntRange {
  return bits === 8 ? { type: 'int8', qmin: -128, qmax: 127 } : { type: 'int16', qmin: -32768, qmax: 32767 };
}

/** Weights are symmetric with a narrow range (-127..127) so that -x quantizes to -q. */
export const WEIGHT_RANGE: IntRange = Object.freeze({ type: 'int8', qmin: -127, qmax: 127 });

const f32 = Math.fround;

/** Round half to even, as numpy and ONNX round. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Asymmetric: the range is widened to include 0 (so 0 is exact), scale = (max - min) / (2^b - 1),
 * offset = round(qmin - min / scale) clamped into the type.
 */
export function asymmetricParams(min: number, max: number, bits: 8 | 16): QuantParams {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const { qmin, qmax } = activationRange(bits);
  const scale = guardScale(f32((hi - lo) / (qmax - qmin)));
  const zp = roundHalfEven(qmin - lo / scale);
  return { scale, zeroPoint: Math.min(qmax, Math.max(qmin, zp)) };
}

/**
 * Symmetric: scale = absmax / (2^(b-1) - 1), or / 2^(b-1) when the largest magnitude is negative
 * (then qmin is reachable exactly).
 */
export function symmetricParams(min: number, max: number, bits: 8 | 16): QuantParams {
  const { qmin, qmax } = activationRange(bits);
  const negativeDominates = -min > max;
  const absmax = Math.max(Math.abs(min), Math.abs(max));
  const scale = guardScale(f32(negativeDominates ? absmax / -qmin : absmax / qmax));
  return { scale, zeroPoint: 0 };
}

export function rangeParams(min: number, max: number, bits: 8 | 16, asymmetric: boolean): QuantParams {
  return asymmetric ? asymmetricParams(min, max, bits) : symmetricParams(min, max, bits);
}
