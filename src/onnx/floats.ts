/**
 * Bit-pattern conversions for the narrow floating-point element types ONNX stores as integers
 * (float16, bfloat16, the float8 variants, float8e8m0 and float4e2m1).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits to a number (subnormals, ±inf and NaN included). */
export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** A number to IEEE 754 binary16 bits, rounding to nearest even; overflow gives ±inf. */
export function numberToFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  // Rebias from 127 to 15; below the half subnormal range everything rounds to zero.
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal: shift the implicit leading one in, then round the dropped bits to even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r += 1;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r += 1;
  return sign | r;
}

/** bfloat16 bits (the top half of a float32) to a number. */
export function bfloat16BitsToNumber(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

interface MiniFloat {
  exponentBits: number;
  mantissaBits: number;
  bias: number;
  /** 'ieee': all-ones exponent is inf/NaN; 'fn': only all-ones is NaN, no inf;
   * 'fnuz': 0x80 is the only NaN, no inf, no negative zero. */
  special: 'ieee' | 'fn' | 'fnuz' | 'none';
}

function buildTable(format: MiniFloat): Float32Array {
  const width = 1 + format.exponentBits + format.mantissaBits;
  const size = 1 << width;
  const table = new Float32Array(size);
  const expMax = (1 << format.exponentBits) - 1;
  const mantMax = (1 << format.mantissaBits) - 1;
  for (let code = 0; code < size; code++) {
    const negative = (code >> (width - 1)) & 1;
    const exp = (code >> format.mantissaBits) & expMax;
    const mant = code & mantMax;
    let value: number;
    if (format.special === 'fnuz' && code === 1 << (width - 1)) value = NaN;
    else if (format.special === 'fn' && exp === expMax && mant === mantMax) value = NaN;
    else if (format.special === 'ieee' && exp === expMax) value = mant ? NaN : Infinity;
    else if (exp === 0) value = (mant / (1 << format.mantissaBits)) * 2 ** (1 - format.bias);
    else value = (1 + mant / (1 << format.mantissaBits)) * 2 ** (exp - format.bias);
    table[code] = negative ? -value : value;
  }
  return table;
}

const formats = {
  FLOAT8E4M3FN: { exponentBits: 4, mantissaBits: 3, bias: 7, special: 'fn' },
  FLOAT8E4M3FNUZ: { exponentBits: 4, mantissaBits: 3, bias: 8, special: 'fnuz' },
  FLOAT8E5M2: { exponentBits: 5, mantissaBits: 2, bias: 15, special: 'ieee' },
  FLOAT8E5M2FNUZ: { exponentBits: 5, mantissaBits: 2, bias: 16, special: 'fnuz' },
  FLOAT4E2M1: { exponentBits: 2, mantissaBits: 1, bias: 1, special: 'none' },
} satisfies Record<string, MiniFloat>;

export type MiniFloatName = keyof typeof formats | 'FLOAT8E8M0';

const tables = new Map<MiniFloatName, Float32Array>();

/** Lookup table from code to value, built on first use (256 entries at most). */
export function miniFloatTable(name: MiniFloatName): Float32Array {
  let table = tables.get(name);
  if (!table) {
    if (name === 'FLOAT8E8M0') {
      // Scale-only format: 2^(code-127), 0xff is NaN, no sign and no zero.
      table = new Float32Array(256);
      for (let code = 0; code < 256; code++) table[code] = code === 0xff ? NaN : 2 ** (code - 127);
    } else {
      table = buildTable(formats[name]);
    }
    tables.set(name, table);
  }
  return table;
}
