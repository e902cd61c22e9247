/**
 * Reading and writing NumPy `.npy` arrays and `.npz` archives, on plain bytes.
 *
 * Works the same in Node, Deno and browsers: input is a Uint8Array (read it however the runtime
 * allows), and deflated `.npz` entries go through the standard `DecompressionStream('deflate-raw')`.
 * Format reference: numpy/lib/format.py (versions 1.0, 2.0 and 3.0 of the header) and the PKZIP
 * APPNOTE for the archive (stored and deflated entries, zip64 sizes and offsets).
 */
import { AutoquantError } from '../errors.js';
import { describeValue } from '../text.js';
import { float16BitsToNumber } from '../onnx/floats.js';
import type { TensorData } from '../onnx/tensor.js';

/** The bytes are not a usable `.npy` array or `.npz` archive; the message names the file or entry. */
export class NpyFormatError extends AutoquantError {
  constructor(message: string) {
    super('NPY_FORMAT', message);
  }
}

/** Element types this reader supports (NumPy names). */
export type NpyDType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool';

/** Element storage: float16 is kept as its raw bits (Uint16Array), bool as 0/1 bytes (Uint8Array). */
export type NpyData = TensorData;

/** A decoded array: elements always in C (row-major) order, in a fresh buffer that aliases nothing. */
export interface NpyArray {
  dtype: NpyDType;
  /** `[]` for a 0-d array (one element). */
  shape: number[];
  data: NpyData;
  /** Always false: Fortran-ordered files are transposed to C order while reading. */
  fortranOrder: false;
}

/** What encodeNpy / encodeNpz accept as elements. */
export type NpyEncodable = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array | BigInt64Array;

interface DTypeInfo {
  dtype: NpyDType;
  size: number;
  make: (buffer: ArrayBuffer, length: number) => NpyData;
}

/** NumPy type code (descr without its byte-order character) → element type. */
const dtypes: Readonly<Record<string, DTypeInfo>> = {
  f2: { dtype: 'float16', size: 2, make: (b, n) => new Uint16Array(b, 0, n) },
  f4: { dtype: 'float32', size: 4, make: (b, n) => new Float32Array(b, 0, n) },
  f8: { dtype: 'float64', size: 8, make: (b, n) => new Float64Array(b, 0, n) },
  i1: { dtype: 'int8', size: 1, make: (b, n) => new Int8Array(b, 0, n) },
  u1: { dtype: 'uint8', size: 1, make: (b, n) => new Uint8Array(b, 0, n) },
  i2: { dtype: 'int16', size: 2, make: (b, n) => new Int16Array(b, 0, n) },
  u2: { dtype: 'uint16', size: 2, make: (b, n) => new Uint16Array(b, 0, n) },
  i4: { dtype: 'int32', size: 4, make: (b, n) => new Int32Array(b, 0, n) },
  u4: { dtype: 'uint32', size: 4, make: (b, n) => new Uint32Array(b, 0, n) },
  i8: { dtype: 'int64', size: 8, make: (b, n) => new BigInt64Array(b, 0, n) },
  u8: { dtype: 'uint64', size: 8, make: (b, n) => new BigUint64Array(b, 0, n) },
  b1: { dtype: 'bool', size: 1, make: (b, n) => new Uint8Array(b, 0, n) },
};

/** Why a type code is refused, for the ones NumPy commonly writes. */
const unsupportedKinds: Readonly<Record<string, string>> = {
  O: 'object arrays (pickled Python objects)',
  U: 'unicode string arrays',
  S: 'byte string arrays',
  a: 'byte string arrays',
  V: 'void/structured arrays',
  c: 'complex arrays',
  M: 'datetime64 arrays',
  m: 'timedelta64 arrays',
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const supportedList = Object.keys(dtypes)
  .map((code) => `${dtypes[code]!.dtype} ('${code}')`)
  .join(', ');

// ---------------------------------------------------------------------------------------------
// .npy reading

/**
 * Decode one `.npy` file. `name` only labels error messages (a file name or an `.npz` entry).
 * Bytes after the last element are ignored, as NumPy does.
 */
export function parseNpy(bytes: Uint8Array, name = 'array'): NpyArray {
  const fail = (problem: string): never => {
    throw new NpyFormatError(`${name}: ${problem}`);
  };
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    const head = Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(' ');
    fail(`not a .npy file (expected magic bytes 93 4e 55 4d 50 59 "\\x93NUMPY", found ${head || 'nothing'})`);
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3 || minor !== 0) {
    fail(`unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) fail('truncated header length field');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = 8 + lengthBytes;
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) {
    fail(`truncated header: it declares ${headerLength} bytes but only ${bytes.length - headerStart} follow`);
  }
  // Version 1 and 2 headers are latin1 (in practice ASCII); version 3 is UTF-8.
  const headerBytes = bytes.subarray(headerStart, dataStart);
  let headerText = '';
  if (major === 3) headerText = new TextDecoder('utf-8').decode(headerBytes);
  else for (const b of headerBytes) headerText += String.fromCharCode(b);
  const header = parseHeader(headerText, fail);

  const descr = header.descr;
  if (typeof descr !== 'string') {
    fail(`unsupported dtype ${describeValue(descr)}: structured arrays are not supported (supported: ${supportedList})`);
  }
  const descrText = descr as string;
  const order = /^[<>|=]/.test(descrText) ? descrText[0]! : '|';
  const code = /^[<>|=]/.test(descrText) ? descrText.slice(1) : descrText;
  const info = dtypes[code === '?' ? 'b1' : code];
  if (!info) {
    const why = unsupportedKinds[code[0] ?? ''];
    fail(`unsupported dtype '${descrText}'${why ? ` (${why})` : ''}; supported: ${supportedList}`);
  }
  const dt = info!;
  if (typeof header.fortran_order !== 'boolean') {
    fail(`bad header: 'fortran_order' must be True or False in ${headerText.trim()}`);
  }
  const shape = header.shape;
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    fail(`bad header: 'shape' must be a tuple of non-negative integers in ${headerText.trim()}`);
  }
  const dims = shape as number[];
  let count = 1;
  for (const d of dims) count *= d;
  const byteLength = count * dt.size;
  if (!Number.isSafeInteger(byteLength)) fail(`shape (${dims.join(', ')}) is too large`);
  const available = bytes.length - dataStart;
  if (available < byteLength) {
    fail(
      `truncated data: ${dt.dtype} (${dims.join(', ')}) needs ${byteLength} bytes after the ${dataStart}-byte header, ` +
        `found ${available}`,
    );
  }

  // Copy into a fresh buffer: the input may sit at any byte offset, and the result must not alias it.
  const buffer = new ArrayBuffer(byteLength);
  const raw = new Uint8Array(buffer);
  raw.set(bytes.subarray(dataStart, dataStart + byteLength));
  const fileIsLittleEndian = order !== '>' && !(order === '=' && !hostIsLittleEndian);
  if (dt.size > 1 && fileIsLittleEndian !== hostIsLittleEndian) swapBytes(raw, dt.size);
  let data = dt.make(buffer, count);
  if (header.fortran_order === true && dims.length > 1 && count > 0) data = fortranToC(data, dims);
  return { dtype: dt.dtype, shape: [...dims], data, fortranOrder: false };
}

function swapBytes(raw: Uint8Array, size: number): void {
  for (let i = 0; i < raw.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = raw[a]!;
      raw[a] = raw[b]!;
      raw[b] = t;
    }
  }
}

/** Reorder column-major elements of an array with shape `dims` into row-major order. */
function fortranToC<T extends NpyData>(src: T, dims: readonly number[]): T {
  const dst = new (src.constructor as new (n: number) => T)(src.length);
  const rank = dims.length;
  // C strides, walked in the Fortran order in which the source is laid out (first index fastest).
  const cStride = new Array<number>(rank);
  let s = 1;
  for (let k = rank - 1; k >= 0; k--) {
    cStride[k] = s;
    s *= dims[k]!;
  }
  const index = new Array<number>(rank).fill(0);
  let c = 0;
  for (let f = 0; f < src.length; f++) {
    (dst as { [i: number]: number | bigint })[c] = src[f]!;
    for (let k = 0; k < rank; k++) {
      index[k]!++;
      c += cStride[k]!;
      if (index[k]! < dims[k]!) break;
      c -= cStride[k]! * dims[k]!;
      index[k] = 0;
    }
  }
  return dst;
}

// ---------------------------------------------------------------------------------------------
// The header: a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

const MAX_HEADER_DEPTH = 8;

function parseHeader(text: string, fail: (problem: string) => never): { [key: string]: PyValue } {
  let pos = 0;
  const bad = (what: string): never => fail(`bad header: ${what} at character ${pos} of ${describeValue(text.trim())}`);
  const skip = () => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
  };
  // Real headers nest two levels ({…: (…)}); a bound keeps a hostile one from exhausting the stack.
  let depth = 0;
  const value = (): PyValue => {
    skip();
    const ch = text[pos];
    if ((ch === '{' || ch === '(' || ch === '[') && ++depth > MAX_HEADER_DEPTH) bad(`nested deeper than ${MAX_HEADER_DEPTH} levels`);
    try {
      return literal(ch);
    } finally {
      if (ch === '{' || ch === '(' || ch === '[') depth--;
    }
  };
  const literal = (ch: string | undefined): PyValue => {
    if (ch === '{') {
      pos++;
      const out: { [key: string]: PyValue } = {};
      for (;;) {
        skip();
        if (text[pos] === '}') return pos++, out;
        const key = value();
        if (typeof key !== 'string') bad('expected a string key');
        skip();
        if (text[pos] !== ':') bad("expected ':'");
        pos++;
        out[key as string] = value();
        skip();
        if (text[pos] === ',') pos++;
        else if (text[pos] !== '}') bad("expected ',' or '}'");
      }
    }
    if (ch === '(' || ch === '[') {
      const close = ch === '(' ? ')' : ']';
      pos++;
      const out: PyValue[] = [];
      for (;;) {
        skip();
        if (text[pos] === close) return pos++, out;
        out.push(value());
        skip();
        if (text[pos] === ',') pos++;
        else if (text[pos] !== close) bad(`expected ',' or '${close}'`);
      }
    }
    if (ch === "'" || ch === '"') {
      pos++;
      let s = '';
      while (pos < text.length && text[pos] !== ch) {
        if (text[pos] === '\\') pos++;
        s += text[pos++] ?? '';
      }
      if (pos >= text.length) bad('unterminated string');
      pos++;
      return s;
    }
    const word = /^(-?\d+)L?|^[A-Za-z_]\w*/.exec(text.slice(pos));
    if (!word) return bad('unexpected character');
    pos += word[0].length;
    if (word[1] !== undefined) return Number(word[1]);
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    return bad(`unexpected name '${word[0]}'`);
  };
  const header = value();
  skip();
  if (pos !== text.length) bad('unexpected text after the dictionary');
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return bad('expected a dictionary');
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!(key in header)) fail(`bad header: missing key '${key}' in ${text.trim()}`);
  }
  return header;
}

// ---------------------------------------------------------------------------------------------
// .npz reading

/**
 * Decode every `.npy` entry of an `.npz` archive, keyed by entry name without `.npy`, in the order of
 * the archive's central directory. Entries not ending in `.npy` (and directories) are skipped.
 * `name` only labels error messages.
 */
export async function parseNpz(bytes: Uint8Array, name = 'archive'): Promise<Map<string, NpyArray>> {
  const fail = (problem: string): never => {
    throw new NpyFormatError(`${name}: bad zip: ${problem}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Every offset comes from the file: each read is bounds-checked so a lying one is a format error.
  const inside = (at: number, n: number) => {
    if (!(at >= 0 && at + n <= bytes.length)) fail(`a field at offset ${at} lies past the end of the ${bytes.length}-byte file`);
  };
  const u16 = (at: number) => (inside(at, 2), view.getUint16(at, true));
  const u32 = (at: number) => (inside(at, 4), view.getUint32(at, true));
  const u64 = (at: number) => {
    inside(at, 8);
    const v = view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`64-bit field ${v} at offset ${at} is too large`);
    return Number(v);
  };

  // End of central directory: 22 bytes plus a comment of up to 65535 bytes, at the very end.
  let eocd = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (u32(at) === 0x06054b50) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) {
    fail(`no end-of-central-directory record in ${bytes.length} bytes (not a zip file, or truncated)`);
  }
  if (u16(eocd + 4) !== 0 || u16(eocd + 6) !== 0) fail('multi-disk archives are not supported');
  let entryCount = u16(eocd + 10);
  let dirSize = u32(eocd + 12);
  let dirOffset = u32(eocd + 16);
  if (entryCount === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || u32(locator) !== 0x07064b50) fail('zip64 end-of-central-directory locator is missing');
    const record = u64(locator + 8);
    if (record + 56 > bytes.length || u32(record) !== 0x06064b50) fail('zip64 end-of-central-directory record is missing');
    entryCount = u64(record + 32);
    dirSize = u64(record + 40);
    dirOffset = u64(record + 48);
  }
  if (dirOffset + dirSize > bytes.length) {
    fail(`central directory (${dirSize} bytes at offset ${dirOffset}) lies past the end of the ${bytes.length}-byte file`);
  }

  const decoder = new TextDecoder('utf-8');
  const out = new Map<string, NpyArray>();
  let at = dirOffset;
  for (let i = 0; i < entryCount; i++) {
    if (at + 46 > dirOffset + dirSize || u32(at) !== 0x02014b50) fail(`central directory entry ${i} is corrupt`);
    const flags = u16(at + 8);
    const method = u16(at + 10);
    const crc = u32(at + 16);
    let compressedSize = u32(at + 20);
    let size = u32(at + 24);
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    let localOffset = u32(at + 42);
    const entryName = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    // Zip64: each field saturated at 0xffffffff is in the 0x0001 extra field, in this order.
    if (size === 0xffffffff || compressedSize === 0xffffffff || localOffset === 0xffffffff) {
      let e = at + 46 + nameLength;
      const end = e + extraLength;
      let found = false;
      while (e + 4 <= end) {
        const id = u16(e);
        const len = u16(e + 2);
        if (id === 0x0001) {
          let p = e + 4;
          if (size === 0xffffffff) (size = u64(p)), (p += 8);
          if (compressedSize === 0xffffffff) (compressedSize = u64(p)), (p += 8);
          if (localOffset === 0xffffffff) localOffset = u64(p);
          found = true;
          break;
        }
        e += 4 + len;
      }
      if (!found) fail(`entry '${entryName}' needs zip64 sizes but has no zip64 extra field`);
    }
    at += 46 + nameLength + extraLength + commentLength;

    if (entryName.endsWith('/') || !entryName.endsWith('.npy')) continue;
    if (flags & 1) fail(`entry '${entryName}' is encrypted`);
    if (localOffset + 30 > bytes.length || u32(localOffset) !== 0x04034b50) {
      fail(`local header of entry '${entryName}' at offset ${localOffset} is missing`);
    }
    const dataStart = localOffset + 30 + u16(localOffset + 26) + u16(localOffset + 28);
    if (dataStart + compressedSize > bytes.length) {
      fail(
        `entry '${entryName}' is truncated: expected ${compressedSize} bytes at offset ${dataStart}, ` +
          `found ${Math.max(0, bytes.length - dataStart)}`,
      );
    }
    const stored = bytes.subarray(dataStart, dataStart + compressedSize);
    let content: Uint8Array;
    if (method === 0) content = stored;
    else if (method === 8) content = await inflateRaw(stored, size, (problem) => fail(`entry '${entryName}' ${problem}`));
    else return fail(`entry '${entryName}' uses compression method ${method} (supported: 0 stored, 8 deflate)`);
    if (content.length !== size) {
      fail(`entry '${entryName}' inflates to ${content.length > size ? 'more than ' + size : content.length} bytes, its header says ${size}`);
    }
    if (crc32(content) !== crc) fail(`entry '${entryName}' fails its CRC-32 check (corrupt data)`);

    const key = entryName.slice(0, -'.npy'.length);
    if (out.has(key)) fail(`entry '${entryName}' appears twice`);
    out.set(key, parseNpy(content, `${name}/${entryName}`));
  }
  return out;
}

/** Inflate one entry, stopping as soon as it grows past the size the directory declares. */
async function inflateRaw(data: Uint8Array, size: number, fail: (problem: string) => never): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined') {
    fail("is deflated, and this runtime lacks DecompressionStream('deflate-raw')");
  }
  const stream = new DecompressionStream('deflate-raw');
  const writer = stream.writable.getWriter();
  // Write and read concurrently; a write error shows up again on the reading side.
  writer.write(data as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (total > size) {
        reader.cancel().catch(() => {});
        break;
      }
    }
  } catch (cause) {
    fail(`has corrupt deflated data (${cause instanceof Error ? cause.message : String(cause)})`);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

let crcTable: Uint32Array | undefined;

function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Conversion

/** The elements as a fresh Float32Array (float16 bits decoded, integers and bools converted, rounding to nearest). */
export function toFloat32(a: NpyArray): Float32Array {
  const src = a.data;
  const out = new Float32Array(src.length);
  if (a.dtype === 'float16') {
    for (let i = 0; i < src.length; i++) out[i] = float16BitsToNumber(src[i] as number);
  } else if (src instanceof BigInt64Array || src instanceof BigUint64Array) {
    for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
  } else {
    out.set(src);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

function descrOf(data: NpyEncodable): string {
  if (data instanceof Float32Array) return '<f4';
  if (data instanceof Float64Array) return '<f8';
  if (data instanceof Int32Array) return '<i4';
  if (data instanceof Int8Array) return '|i1';
  if (data instanceof Uint8Array) return '|u1';
  if (data instanceof BigInt64Array) return '<i8';
  throw new NpyFormatError(
    `encodeNpy: cannot encode ${(data as object)?.constructor?.name ?? typeof data} ` +
      '(supported: Float32Array, Float64Array, Int32Array, Int8Array, Uint8Array, BigInt64Array)',
  );
}

/** One `.npy` file (format 1.0, little-endian, C order, header padded so the data starts at a multiple of 64). */
export function encodeNpy(data: NpyEncodable, shape: number[]): Uint8Array {
  const descr = descrOf(data);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new NpyFormatError(`encodeNpy: shape [${shape.join(', ')}] must hold non-negative integers`);
  }
  const count = shape.reduce((n, d) => n * d, 1);
  if (count !== data.length) {
    throw new NpyFormatError(`encodeNpy: shape [${shape.join(', ')}] has ${count} elements but data has ${data.length}`);
  }
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  // Pad with spaces and end with '\n' so that magic + version + length + header is a multiple of 64.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  if (header.length > 0xffff) throw new NpyFormatError(`encodeNpy: header for shape [${shape.join(', ')}] is too long`);
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const raw = out.subarray(10 + header.length);
  raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (!hostIsLittleEndian && data.BYTES_PER_ELEMENT > 1) swapBytes(raw, data.BYTES_PER_ELEMENT);
  return out;
}

/** An `.npz` archive with one stored (uncompressed) `<key>.npy` entry per array, as `np.savez` writes. */
export function encodeNpz(arrays: Record<string, { data: NpyEncodable; shape: number[] }>): Uint8Array {
  const encoder = new TextEncoder();
  const entries = Object.entries(arrays).map(([key, a]) => {
    const name = encoder.encode(`${key}.npy`);
    const content = encodeNpy(a.data, a.shape);
    return { name, content, crc: crc32(content), utf8: /[^\x20-\x7e]/.test(key) };
  });
  const localSize = entries.reduce((n, e) => n + 30 + e.name.length + e.content.length, 0);
  const dirSize = entries.reduce((n, e) => n + 46 + e.name.length, 0);
  if (localSize + dirSize + 22 > 0xffffffff || entries.length > 0xffff) {
    throw new NpyFormatError('encodeNpz: archive would need zip64 (over 4 GiB or 65535 entries), which this writer does not produce');
  }
  const out = new Uint8Array(localSize + dirSize + 22);
  const view = new DataView(out.buffer);
  const offsets: number[] = [];
  let at = 0;
  // Fixed DOS timestamp (1980-01-01 00:00) so the same arrays always give the same bytes.
  const common = (p: number, e: (typeof entries)[number]) => {
    view.setUint16(p, 20, true); // version needed: 2.0
    view.setUint16(p + 2, e.utf8 ? 0x0800 : 0, true); // flags: bit 11 = UTF-8 name
    view.setUint16(p + 4, 0, true); // method: stored
    view.setUint16(p + 6, 0, true); // time
    view.setUint16(p + 8, 0x21, true); // date
    view.setUint32(p + 10, e.crc, true);
    view.setUint32(p + 14, e.content.length, true);
    view.setUint32(p + 18, e.content.length, true);
    view.setUint16(p + 22, e.name.length, true);
    view.setUint16(p + 24, 0, true); // extra length
  };
  for (const e of entries) {
    offsets.push(at);
    view.setUint32(at, 0x04034b50, true);
    common(at + 4, e);
    out.set(e.name, at + 30);
    out.set(e.content, at + 30 + e.name.length);
    at += 30 + e.name.length + e.content.length;
  }
  const dirOffset = at;
  entries.forEach((e, i) => {
    view.setUint32(at, 0x02014b50, true);
    view.setUint16(at + 4, 20, true); // version made by
    common(at + 6, e);
    // comment length, disk, internal and external attributes stay 0
    view.setUint32(at + 42, offsets[i]!, true);
    out.set(e.name, at + 46);
    at += 46 + e.name.length;
  });
  view.setUint32(at, 0x06054b50, true);
  view.setUint16(at + 8, entries.length, true);
  view.setUint16(at + 10, entries.length, true);
  view.setUint32(at + 12, dirSize, true);
  view.setUint32(at + 16, dirOffset, true);
  return out;
}
