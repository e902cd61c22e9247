/**
 * ONNX element types (TensorProto.DataType) and how each one is laid out in a TensorProto.
 */

/** TensorProto.DataType codes. */
export const DataType = Object.freeze({
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const);

export type DataTypeName = keyof typeof DataType;
export type DataTypeCode = (typeof DataType)[DataTypeName];

const names: string[] = [];
for (const [name, code] of Object.entries(DataType)) names[code] = name;

/** `FLOAT`, `INT8`, ... or `UNKNOWN(99)` for a code this package does not know. */
export function dataTypeName(code: number): string {
  return names[code] ?? `UNKNOWN(${code})`;
}

/** Which typed TensorProto field holds the elements when raw_data is not used. */
export type TypedField = 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData';

export interface ElementLayout {
  /** Bits per element in raw_data (complex types count both parts). 0 for STRING. */
  bits: number;
  field: TypedField;
  /** Entries of `field` per element: 2 for complex; fractional for 4- and 2-bit types. */
  entriesPerElement: number;
}

const L = (bits: number, field: TypedField, entriesPerElement = 1): ElementLayout =>
  Object.freeze({ bits, field, entriesPerElement });

// int32_data carries every type narrower than 32 bits (float16/float8 as bit patterns);
// 4-bit types pack two elements per entry and 2-bit types four, as in raw_data.
const layouts: Record<number, ElementLayout> = {
  [DataType.FLOAT]: L(32, 'floatData'),
  [DataType.UINT8]: L(8, 'int32Data'),
  [DataType.INT8]: L(8, 'int32Data'),
  [DataType.UINT16]: L(16, 'int32Data'),
  [DataType.INT16]: L(16, 'int32Data'),
  [DataType.INT32]: L(32, 'int32Data'),
  [DataType.INT64]: L(64, 'int64Data'),
  [DataType.STRING]: L(0, 'stringData'),
  [DataType.BOOL]: L(8, 'int32Data'),
  [DataType.FLOAT16]: L(16, 'int32Data'),
  [DataType.DOUBLE]: L(64, 'doubleData'),
  [DataType.UINT32]: L(32, 'uint64Data'),
  [DataType.UINT64]: L(64, 'uint64Data'),
  [DataType.COMPLEX64]: L(64, 'floatData', 2),
  [DataType.COMPLEX128]: L(128, 'doubleData', 2),
  [DataType.BFLOAT16]: L(16, 'int32Data'),
  [DataType.FLOAT8E4M3FN]: L(8, 'int32Data'),
  [DataType.FLOAT8E4M3FNUZ]: L(8, 'int32Data'),
  [DataType.FLOAT8E5M2]: L(8, 'int32Data'),
  [DataType.FLOAT8E5M2FNUZ]: L(8, 'int32Data'),
  [DataType.UINT4]: L(4, 'int32Data', 1 / 2),
  [DataType.INT4]: L(4, 'int32Data', 1 / 2),
  [DataType.FLOAT4E2M1]: L(4, 'int32Data', 1 / 2),
  [DataType.FLOAT8E8M0]: L(8, 'int32Data'),
  [DataType.UINT2]: L(2, 'int32Data', 1 / 4),
  [DataType.INT2]: L(2, 'int32Data', 1 / 4),
};

/** Storage layout of an element type, or undefined for UNDEFINED and unknown codes. */
export function elementLayout(code: number): ElementLayout | undefined {
  return layouts[code];
}

/** Bytes of raw_data that `count` elements of this type occupy (sub-byte types round up). */
export function rawByteLength(layout: ElementLayout, count: number): number {
  return Math.ceil((count * layout.bits) / 8);
}

/** Entries of the typed field that `count` elements occupy. */
export function typedEntryCount(layout: ElementLayout, count: number): number {
  return Math.ceil(count * layout.entriesPerElement);
}
