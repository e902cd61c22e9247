/**
 * Conversions for int64 protobuf fields, which protobufjs decodes as `Long` objects.
 */
import { OnnxFormatError } from '../errors.js';
import type { Int64 } from './types.js';

/** Exact value as a bigint (signed); works for every int64 including INT64_MAX. */
export function int64ToBigInt(value: Int64 | bigint): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(Math.trunc(value));
  const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  return value.unsigned ? bits : BigInt.asIntN(64, bits);
}

/**
 * Value as a number. Values beyond ±2^53 lose precision (INT64_MAX becomes 2^63), which is
 * what callers comparing against limits such as Slice ends usually want.
 */
export function int64ToNumber(value: Int64 | bigint): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return value.toNumber();
}

/** Value as a number, refusing values a double cannot represent exactly. */
export function int64ToSafeNumber(value: Int64 | bigint, what: string): number {
  const n = int64ToNumber(value);
  if (!Number.isSafeInteger(n)) {
    throw new OnnxFormatError(`${what} is ${int64ToBigInt(value)}, beyond the exactly representable range ±2^53`);
  }
  return n;
}
