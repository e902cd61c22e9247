/**
 * Reading and writing the elements of a TensorProto.
 *
 * Element arrays returned here never alias the model: raw_data is a view into the decoded bytes
 * at any byte offset (often odd), so it is always copied into a fresh, aligned buffer.
 */
import { OnnxFormatError } from '../errors.js';
import {
  DataType,
  dataTypeName,
  elementLayout,
  rawByteLength,
  typedEntryCount,
  type ElementLayout,
} from './datatype.js';
import { bfloat16BitsToNumber, float16BitsToNumber, miniFloatTable, type MiniFloatName } from './floats.js';
import { int64ToBigInt, int64ToNumber } from './int64.js';
import { onnx, type Int64, type TensorProto } from './types.js';

export { DataType, dataTypeName } from './datatype.js';
export type { DataTypeCode, DataTypeName } from './datatype.js';

/** Element arrays as readTensor returns them. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** What makeTensor / setTensorData accept as elements. */
export type TensorInput = TensorData | ArrayLike<number> | ArrayLike<bigint> | readonly boolean[] | readonly string[];

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** How error messages refer to a tensor. */
export function describeTensor(t: TensorProto): string {
  const dims = (t.dims ?? []).map((d) => String(int64ToBigInt(d))).join(',');
  const name = t.name ? `'${t.name}'` : '(unnamed)';
  return `tensor ${name} (${dataTypeName(t.dataType ?? 0)}, dims [${dims}])`;
}

/** Number of elements for a shape; a scalar (no dims) has one. */
export function elementCount(dims: readonly (Int64 | bigint)[]): number {
  let count = 1;
  for (const d of dims) {
    const n = int64ToNumber(d);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new OnnxFormatError(`invalid dimension ${String(int64ToBigInt(d))} in shape [${dims.map(String).join(',')}]`);
    }
    count *= n;
  }
  if (!Number.isSafeInteger(count)) throw new OnnxFormatError(`shape [${dims.map(String).join(',')}] has too many elements`);
  return count;
}

/** Tensor dims as plain numbers. */
export function tensorDims(t: TensorProto): number[] {
  elementCount(t.dims ?? []); // validates every dim
  return (t.dims ?? []).map(int64ToNumber);
}

function layoutOf(t: TensorProto): ElementLayout {
  const layout = elementLayout(t.dataType ?? 0);
  if (!layout) throw new OnnxFormatError(`${describeTensor(t)} has no usable data type (code ${t.dataType ?? 0})`);
  return layout;
}

function externalLocation(t: TensorProto): string {
  return t.externalData?.find((e) => e.key === 'location')?.value ?? '(no location given)';
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
}

function assertInternal(t: TensorProto): void {
  if (isExternal(t)) {
    throw new OnnxFormatError(
      `${describeTensor(t)} keeps its data in external file '${externalLocation(t)}', which was not loaded: ` +
        'load the model with loadModel() from its path, or pass options.externalData',
    );
  }
}

function assertNotSegmented(t: TensorProto): void {
  if (t.segment && Object.prototype.hasOwnProperty.call(t, 'segment')) {
    throw new OnnxFormatError(`${describeTensor(t)} is one segment of a larger tensor; segmented tensors are not supported`);
  }
}

/**
 * Checks that a tensor's stored data matches its dims without copying anything. External tensors
 * are skipped (their data is checked once loaded).
 */
export function checkTensorData(t: TensorProto): void {
  if (isExternal(t)) return;
  const count = elementCount(t.dims ?? []);
  const layout = layoutOf(t);
  if (layout.field === 'stringData') {
    const have = t.stringData?.length ?? 0;
    if (have !== count) throw mismatch(t, `${have} strings`, `${count}`);
    return;
  }
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const want = rawByteLength(layout, count);
    if (raw.length !== want) throw mismatch(t, `${raw.length} bytes of raw_data`, `${want} bytes for ${count} elements`);
    return;
  }
  const have = (t[layout.field] as unknown[] | undefined)?.length ?? 0;
  const want = typedEntryCount(layout, count);
  if (have !== want) {
    throw mismatch(t, have === 0 ? 'no data' : `${have} entries in ${fieldName(layout.field)}`, `${want} for ${count} elements`);
  }
}

/** The schema's own spelling, which is what users see in other ONNX tools. */
function fieldName(field: string): string {
  return field.replace(/Data$/, '_data');
}

function mismatch(t: TensorProto, have: string, want: string): OnnxFormatError {
  return new OnnxFormatError(`${describeTensor(t)} has ${have}, expected ${want}`);
}

type TypedArrayCtor = {
  new (length: number): TensorData;
  new (buffer: ArrayBuffer): TensorData;
  readonly BYTES_PER_ELEMENT: number;
};

// Output array type for each element type stored at 8 bits or more.
const arrayTypes: Record<number, TypedArrayCtor> = {
  [DataType.FLOAT]: Float32Array,
  [DataType.UINT8]: Uint8Array,
  [DataType.INT8]: Int8Array,
  [DataType.UINT16]: Uint16Array,
  [DataType.INT16]: Int16Array,
  [DataType.INT32]: Int32Array,
  [DataType.INT64]: BigInt64Array,
  [DataType.BOOL]: Uint8Array,
  [DataType.FLOAT16]: Uint16Array,
  [DataType.DOUBLE]: Float64Array,
  [DataType.UINT32]: Uint32Array,
  [DataType.UINT64]: BigUint64Array,
  [DataType.COMPLEX64]: Float32Array,
  [DataType.COMPLEX128]: Float64Array,
  [DataType.BFLOAT16]: Uint16Array,
  [DataType.FLOAT8E4M3FN]: Uint8Array,
  [DataType.FLOAT8E4M3FNUZ]: Uint8Array,
  [DataType.FLOAT8E5M2]: Uint8Array,
  [DataType.FLOAT8E5M2FNUZ]: Uint8Array,
  [DataType.FLOAT8E8M0]: Uint8Array,
};

function swapBytes(bytes: Uint8Array, width: number): void {
  if (width <= 1) return;
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

function isSigned(dataType: number): boolean {
  return dataType === DataType.INT4 || dataType === DataType.INT2;
}

/** Sub-byte elements (4- and 2-bit), one per output entry; signed types are sign-extended. */
function unpackBits(packed: ArrayLike<number>, count: number, bits: number, dataType: number): Int8Array | Uint8Array {
  const out = isSigned(dataType) ? new Int8Array(count) : new Uint8Array(count);
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const shift = 32 - bits;
  for (let i = 0; i < count; i++) {
    const v = (packed[Math.floor(i / perByte)]! >> ((i % perByte) * bits)) & mask;
    out[i] = isSigned(dataType) ? (v << shift) >> shift : v;
  }
  return out;
}

function packBits(values: ArrayLike<number>, bits: number): Uint8Array {
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil(values.length / perByte));
  for (let i = 0; i < values.length; i++) {
    out[Math.floor(i / perByte)]! |= (Number(values[i]) & mask) << ((i % perByte) * bits);
  }
  return out;
}

/**
 * The tensor's elements as a fresh typed array (little-endian storage decoded on any host).
 *
 * FLOAT → Float32Array; DOUBLE → Float64Array; INT8/INT16/INT32 → Int8/16/32Array;
 * UINT8/UINT16/UINT32 → Uint8/16/32Array; INT64 → BigInt64Array; UINT64 → BigUint64Array;
 * BOOL → Uint8Array of 0/1; FLOAT16 and BFLOAT16 → Uint16Array of bit patterns; float8 types →
 * Uint8Array of codes; INT4/INT2 → Int8Array and UINT4/UINT2/FLOAT4E2M1 → Uint8Array, one element
 * per entry (unpacked); COMPLEX64/128 → Float32/64Array of interleaved (re, im) pairs.
 * STRING tensors have no numeric form: read `t.stringData`.
 */
export function readTensor(t: TensorProto): TensorData {
  assertInternal(t);
  assertNotSegmented(t);
  checkTensorData(t);
  const dataType = t.dataType ?? 0;
  const layout = layoutOf(t);
  if (layout.field === 'stringData') {
    throw new OnnxFormatError(`${describeTensor(t)} holds strings, not numbers: read its stringData`);
  }
  const count = elementCount(t.dims ?? []);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;

  if (layout.bits < 8) {
    return unpackBits(raw ?? (t.int32Data as number[]), count, layout.bits, dataType);
  }
  const Ctor = arrayTypes[dataType]!;
  const lanes = layout.field === 'floatData' || layout.field === 'doubleData' ? layout.entriesPerElement : 1;
  if (raw) {
    const out = new Ctor(count * lanes);
    const bytes = new Uint8Array(out.buffer);
    bytes.set(raw);
    if (!hostIsLittleEndian) swapBytes(bytes, Ctor.BYTES_PER_ELEMENT);
    return out;
  }
  const out = new Ctor(count * lanes);
  const source = t[layout.field] as ArrayLike<number | Int64>;
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let i = 0; i < out.length; i++) out[i] = int64ToBigInt(source[i] as Int64);
  } else {
    // Typed arrays wrap int32_data entries to their own width, which is the ONNX rule.
    for (let i = 0; i < out.length; i++) out[i] = int64ToNumber(source[i] as Int64);
  }
  return out;
}

let float16Table: Float32Array | undefined;

const miniFloats: Partial<Record<number, MiniFloatName>> = {
  [DataType.FLOAT8E4M3FN]: 'FLOAT8E4M3FN',
  [DataType.FLOAT8E4M3FNUZ]: 'FLOAT8E4M3FNUZ',
  [DataType.FLOAT8E5M2]: 'FLOAT8E5M2',
  [DataType.FLOAT8E5M2FNUZ]: 'FLOAT8E5M2FNUZ',
  [DataType.FLOAT8E8M0]: 'FLOAT8E8M0',
  [DataType.FLOAT4E2M1]: 'FLOAT4E2M1',
};

/**
 * The tensor's elements converted to float32: float16/bfloat16/float8/float4 decoded, integers
 * and booleans converted by value (int64 beyond 2^24 rounds), double narrowed.
 */
export function readTensorAsFloat32(t: TensorProto): Float32Array {
  const dataType = t.dataType ?? 0;
  if (dataType === DataType.COMPLEX64 || dataType === DataType.COMPLEX128) {
    throw new OnnxFormatError(`${describeTensor(t)} is complex; it has no float32 form`);
  }
  const data = readTensor(t);
  if (dataType === DataType.FLOAT) return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dataType === DataType.FLOAT16) {
    // A 64K-entry table (256 KB) pays for itself on the first large tensor.
    if (!float16Table) {
      float16Table = new Float32Array(65536);
      for (let b = 0; b < 65536; b++) float16Table[b] = float16BitsToNumber(b);
    }
    const table = float16Table;
    for (let i = 0; i < data.length; i++) out[i] = table[data[i] as number]!;
    return out;
  }
  if (dataType === DataType.BFLOAT16) {
    for (let i = 0; i < data.length; i++) out[i] = bfloat16BitsToNumber(data[i] as number);
    return out;
  }
  const mini = miniFloats[dataType];
  if (mini) {
    const table = miniFloatTable(mini);
    for (let i = 0; i < data.length; i++) out[i] = table[data[i] as number]!;
    return out;
  }
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}

function encodeStrings(t: TensorProto, data: TensorInput, count: number): Uint8Array[] {
  if (data.length !== count) throw mismatch(t, `${data.length} strings given`, `${count}`);
  const encoder = new TextEncoder();
  return Array.from(data as ArrayLike<unknown>, (s) => {
    if (typeof s !== 'string') throw new OnnxFormatError(`${describeTensor(t)} is a STRING tensor: pass strings`);
    return encoder.encode(s);
  });
}

/** Little-endian raw_data bytes for `data` as elements of the tensor's type. */
function encodeRaw(t: TensorProto, layout: ElementLayout, data: TensorInput, count: number, adopt = false): Uint8Array {
  const dataType = t.dataType ?? 0;
  if (layout.bits < 8) {
    if (data.length !== count) throw mismatch(t, `${data.length} values given`, `${count}`);
    return packBits(data as ArrayLike<number>, layout.bits);
  }
  const Ctor = arrayTypes[dataType]!;
  const lanes = layout.field === 'floatData' || layout.field === 'doubleData' ? layout.entriesPerElement : 1;
  const want = count * lanes;
  if (data.length !== want) {
    throw mismatch(t, `${data.length} values given`, lanes === 1 ? `${count}` : `${want} (${count} complex elements)`);
  }
  let typed: TensorData;
  if (data instanceof Ctor) {
    typed = data as TensorData;
  } else {
    typed = new Ctor(want);
    const source = data as ArrayLike<number | bigint | boolean>;
    if (typed instanceof BigInt64Array || typed instanceof BigUint64Array) {
      for (let i = 0; i < want; i++) {
        const v = source[i]!;
        typed[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)));
      }
    } else if (dataType === DataType.BOOL) {
      for (let i = 0; i < want; i++) typed[i] = source[i] ? 1 : 0;
    } else {
      for (let i = 0; i < want; i++) typed[i] = Number(source[i]);
    }
  }
  const view = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  if (adopt && typed === data && hostIsLittleEndian) return view;
  // Copy so the tensor owns its bytes and later edits of `data` cannot reach the model.
  const bytes = new Uint8Array(typed.byteLength);
  bytes.set(view);
  if (!hostIsLittleEndian) swapBytes(bytes, Ctor.BYTES_PER_ELEMENT);
  return bytes;
}

/**
 * Replaces a tensor's elements in place, storing them in raw_data (string_data for STRING) and
 * clearing every other data field and any external-data reference. Returns the tensor.
 * Element types are as readTensor returns them (FLOAT16 as bit patterns); other arrays are
 * converted by value.
 */
export function setTensorData(t: TensorProto, data: TensorInput): TensorProto {
  return writeTensorData(t, data, false);
}

/** setTensorData; `adopt`: raw_data may be `data`'s own memory (see adoptTensor). */
function writeTensorData(t: TensorProto, data: TensorInput, adopt: boolean): TensorProto {
  const layout = layoutOf(t);
  const count = elementCount(t.dims ?? []);
  t.floatData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.doubleData = [];
  t.uint64Data = [];
  t.stringData = [];
  t.externalData = [];
  delete (t as Partial<TensorProto>).dataLocation;
  if (layout.field === 'stringData') {
    t.stringData = encodeStrings(t, data, count);
    delete (t as Partial<TensorProto>).rawData;
  } else {
    t.rawData = encodeRaw(t, layout, data, count, adopt);
  }
  return t;
}

/**
 * makeTensor for an array the caller gives up: raw_data is a view of `data`'s own memory, with no
 * copy, where the host is little-endian and `data` is the type's own array (else it is copied as
 * makeTensor does). For the package's fresh and never-written arrays (a quantized weight, an
 * equalized one): on a model of large layers each copy is another model's worth of bytes.
 */
export function adoptTensor(name: string, dataType: number, dims: readonly (number | Int64)[], data: TensorInput): TensorProto {
  return writeTensorData(onnx.TensorProto.create({ name, dataType, dims: [...dims] }), data, true);
}

/** A new tensor with the given elements in raw_data (see setTensorData for accepted data). */
export function makeTensor(
  name: string,
  dataType: number,
  dims: readonly (number | Int64)[],
  data: TensorInput,
): TensorProto {
  const t = onnx.TensorProto.create({ name, dataType, dims: [...dims] });
  return setTensorData(t, data);
}
