import { describe, expect, it } from 'vitest';
import { OnnxFormatError } from '../../src/errors.js';
import {
  DataType,
  dataTypeName,
  elementCount,
  float16BitsToNumber,
  makeTensor,
  numberToFloat16Bits,
  onnx,
  readTensor,
  readTensorAsFloat32,
  setTensorData,
  tensorDims,
  type TensorData,
} from '../../src/onnx/index.js';

/** Encode and decode a lone tensor, so fields look exactly as after reading a file. */
function reread(t: onnx.TensorProto.$Properties): onnx.TensorProto {
  return onnx.TensorProto.decode(onnx.TensorProto.encode(t).finish());
}

/** Raw little-endian bytes of `values` placed at an odd offset inside a larger buffer. */
function oddOffsetBytes(values: TensorData): Uint8Array {
  const src = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const backing = new Uint8Array(src.length + 3);
  backing.set(src, 1);
  return backing.subarray(1, 1 + src.length);
}

const cases: { type: keyof typeof DataType; values: TensorData; field: string; entries: unknown[] }[] = [
  { type: 'FLOAT', values: new Float32Array([1.5, -2.25, 3e-8]), field: 'floatData', entries: [1.5, -2.25, Math.fround(3e-8)] },
  { type: 'DOUBLE', values: new Float64Array([Math.PI, -1e300]), field: 'doubleData', entries: [Math.PI, -1e300] },
  { type: 'INT8', values: new Int8Array([-128, 0, 127]), field: 'int32Data', entries: [-128, 0, 127] },
  { type: 'UINT8', values: new Uint8Array([0, 200, 255]), field: 'int32Data', entries: [0, 200, 255] },
  { type: 'INT16', values: new Int16Array([-32768, 5, 32767]), field: 'int32Data', entries: [-32768, 5, 32767] },
  { type: 'UINT16', values: new Uint16Array([0, 40000, 65535]), field: 'int32Data', entries: [0, 40000, 65535] },
  { type: 'INT32', values: new Int32Array([-(2 ** 31), 7, 2 ** 31 - 1]), field: 'int32Data', entries: [-(2 ** 31), 7, 2 ** 31 - 1] },
  { type: 'UINT32', values: new Uint32Array([0, 2 ** 32 - 1]), field: 'uint64Data', entries: [0, 2 ** 32 - 1] },
  {
    type: 'INT64',
    values: new BigInt64Array([-(2n ** 63n), -1n, 2n ** 63n - 1n]),
    field: 'int64Data',
    entries: [-(2n ** 63n), -1n, 2n ** 63n - 1n].map((v) => onnx_long(v, false)),
  },
  {
    type: 'UINT64',
    values: new BigUint64Array([0n, 2n ** 64n - 1n]),
    field: 'uint64Data',
    entries: [0n, 2n ** 64n - 1n].map((v) => onnx_long(v, true)),
  },
  { type: 'BOOL', values: new Uint8Array([1, 0, 1]), field: 'int32Data', entries: [1, 0, 1] },
  { type: 'FLOAT16', values: new Uint16Array([0x3c00, 0xc000, 0x7c00]), field: 'int32Data', entries: [0x3c00, 0xc000, 0x7c00] },
  { type: 'BFLOAT16', values: new Uint16Array([0x3f80, 0xbfc0]), field: 'int32Data', entries: [0x3f80, 0xbfc0] },
];

/** A Long-like value as protobufjs would decode it. */
function onnx_long(v: bigint, unsigned: boolean) {
  const bits = BigInt.asUintN(64, v);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned };
}

describe('readTensor', () => {
  for (const c of cases) {
    it(`reads ${c.type} from raw_data at an odd byte offset`, () => {
      const t = onnx.TensorProto.create({
        name: 't',
        dataType: DataType[c.type],
        dims: [c.values.length],
        rawData: oddOffsetBytes(c.values),
      });
      const out = readTensor(t);
      expect(out.constructor).toBe(c.values.constructor);
      expect(Array.from(out as ArrayLike<unknown>)).toEqual(Array.from(c.values as ArrayLike<unknown>));
      expect(out.byteOffset % out.BYTES_PER_ELEMENT).toBe(0);
    });

    it(`reads ${c.type} from ${c.field}`, () => {
      const t = reread(
        onnx.TensorProto.create({ name: 't', dataType: DataType[c.type], dims: [c.values.length], [c.field]: c.entries }),
      );
      expect(Array.from(readTensor(t) as ArrayLike<unknown>)).toEqual(Array.from(c.values as ArrayLike<unknown>));
    });

    it(`writes ${c.type} with makeTensor and reads the same values back`, () => {
      const t = reread(makeTensor('m', DataType[c.type], [c.values.length], c.values));
      expect(t.rawData.length).toBe(c.values.byteLength);
      expect(Array.from(readTensor(t) as ArrayLike<unknown>)).toEqual(Array.from(c.values as ArrayLike<unknown>));
    });
  }

  it('reads a scalar (no dims) as one element', () => {
    expect(Array.from(readTensor(makeTensor('s', DataType.FLOAT, [], [4])) as Float32Array)).toEqual([4]);
    expect(elementCount([])).toBe(1);
  });

  it('reads an empty tensor without data', () => {
    expect(readTensor(onnx.TensorProto.create({ dataType: DataType.FLOAT, dims: [0, 3] })).length).toBe(0);
  });

  it('returns copies: writing the result leaves the tensor unchanged', () => {
    const t = makeTensor('w', DataType.FLOAT, [2], [1, 2]);
    (readTensor(t) as Float32Array)[0] = 99;
    expect((readTensor(t) as Float32Array)[0]).toBe(1);
  });

  it('reads COMPLEX64 as interleaved pairs', () => {
    const t = makeTensor('c', DataType.COMPLEX64, [2], new Float32Array([1, 2, 3, 4]));
    expect(Array.from(readTensor(reread(t)) as Float32Array)).toEqual([1, 2, 3, 4]);
    expect(() => readTensorAsFloat32(t)).toThrow(/complex/);
  });

  it('unpacks INT4 (sign-extended) and UINT4, low nibble first', () => {
    const i4 = makeTensor('i4', DataType.INT4, [3], [-8, 7, -1]);
    expect(Array.from(i4.rawData!)).toEqual([0x78, 0x0f]);
    expect(Array.from(readTensor(reread(i4)) as Int8Array)).toEqual([-8, 7, -1]);
    const u4 = reread(onnx.TensorProto.create({ dataType: DataType.UINT4, dims: [3], int32Data: [0xa5, 0x03] }));
    expect(Array.from(readTensor(u4) as Uint8Array)).toEqual([5, 10, 3]);
  });

  it('unpacks INT2 four to a byte', () => {
    const t = makeTensor('i2', DataType.INT2, [5], [-2, -1, 0, 1, 1]);
    expect(t.rawData!.length).toBe(2);
    expect(Array.from(readTensor(t) as Int8Array)).toEqual([-2, -1, 0, 1, 1]);
  });

  it('reads STRING tensors only through stringData', () => {
    const t = makeTensor('s', DataType.STRING, [2], ['a', 'bé']);
    expect(t.stringData!.map((b) => new TextDecoder().decode(b))).toEqual(['a', 'bé']);
    expect(() => readTensor(t)).toThrow(/holds strings/);
  });
});

describe('tensor data checks', () => {
  it('names the tensor and both sizes when raw_data is too short', () => {
    const t = onnx.TensorProto.create({ name: 'conv.w', dataType: DataType.FLOAT, dims: [2, 2], rawData: new Uint8Array(12) });
    expect(() => readTensor(t)).toThrow(OnnxFormatError);
    expect(() => readTensor(t)).toThrow("tensor 'conv.w' (FLOAT, dims [2,2]) has 12 bytes of raw_data, expected 16 bytes for 4 elements");
  });

  it('names the typed field when it has the wrong number of entries', () => {
    const t = onnx.TensorProto.create({ name: 'shape', dataType: DataType.INT64, dims: [3], int64Data: [1, 2] });
    expect(() => readTensor(t)).toThrow("tensor 'shape' (INT64, dims [3]) has 2 entries in int64_data, expected 3 for 3 elements");
  });

  it('says when a non-empty tensor has no data at all', () => {
    const t = onnx.TensorProto.create({ name: 'b', dataType: DataType.FLOAT, dims: [5] });
    expect(() => readTensor(t)).toThrow(/has no data, expected 5/);
  });

  it('refuses makeTensor data whose length does not match dims', () => {
    expect(() => makeTensor('x', DataType.FLOAT, [2, 3], new Float32Array(5))).toThrow(
      "tensor 'x' (FLOAT, dims [2,3]) has 5 values given, expected 6",
    );
  });

  it('names the external file when external data was never loaded', () => {
    const t = onnx.TensorProto.create({
      name: 'big',
      dataType: DataType.FLOAT,
      dims: [4],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [{ key: 'location', value: 'weights.bin' }],
    });
    expect(() => readTensor(t)).toThrow(OnnxFormatError);
    expect(() => readTensor(t)).toThrow(/tensor 'big'.*external file 'weights\.bin'/);
  });

  it('rejects unknown data types and negative dims', () => {
    expect(() => readTensor(onnx.TensorProto.create({ name: 'u', dataType: 99, dims: [1], rawData: new Uint8Array(1) }))).toThrow(
      /UNKNOWN\(99\)/,
    );
    expect(() => elementCount([2, -1])).toThrow(/invalid dimension -1/);
  });
});

describe('setTensorData', () => {
  it('replaces typed-field data with raw_data and clears the old fields', () => {
    const t = reread(onnx.TensorProto.create({ name: 'w', dataType: DataType.FLOAT, dims: [2], floatData: [1, 2] }));
    setTensorData(t, new Float32Array([3, 4]));
    const back = reread(t);
    expect(back.floatData).toEqual([]);
    expect(Array.from(readTensor(back) as Float32Array)).toEqual([3, 4]);
  });

  it('copies the input so later edits of it do not reach the tensor', () => {
    const data = new Float32Array([1, 2]);
    const t = makeTensor('w', DataType.FLOAT, [2], data);
    data[0] = 7;
    expect((readTensor(t) as Float32Array)[0]).toBe(1);
  });

  it('converts numbers to the element type (int64 from plain numbers, bool from truthiness)', () => {
    expect(Array.from(readTensor(makeTensor('i', DataType.INT64, [2], [3, -4])) as BigInt64Array)).toEqual([3n, -4n]);
    expect(Array.from(readTensor(makeTensor("b", DataType.BOOL, [3], [true, false, true])) as Uint8Array)).toEqual([1, 0, 1]);
  });

  it('reports dims as numbers', () => {
    expect(tensorDims(reread(makeTensor('w', DataType.FLOAT, [2, 1, 3], new Float32Array(6))))).toEqual([2, 1, 3]);
  });
});

describe('float conversions', () => {
  it('decodes float16 normals, subnormals, zeros, infinities and NaN', () => {
    expect(float16BitsToNumber(0x3c00)).toBe(1);
    expect(float16BitsToNumber(0xc000)).toBe(-2);
    expect(float16BitsToNumber(0x7bff)).toBe(65504);
    expect(float16BitsToNumber(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(float16BitsToNumber(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(float16BitsToNumber(0x0400)).toBe(2 ** -14); // smallest normal
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
    expect(float16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(float16BitsToNumber(0xfc00)).toBe(-Infinity);
    expect(float16BitsToNumber(0x7e00)).toBeNaN();
  });

  it('encodes float16 with round-to-nearest-even and overflow to infinity', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const v = float16BitsToNumber(bits);
      if (!Number.isNaN(v) && numberToFloat16Bits(v) !== bits) throw new Error(`0x${bits.toString(16)} does not round trip`);
    }
    expect(numberToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(numberToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(numberToFloat16Bits(2 ** -25)).toBe(0); // tie below the smallest subnormal → 0
    expect(numberToFloat16Bits(65520)).toBe(0x7c00);
    expect(numberToFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
  });

  it('converts FLOAT16 tensors to float32 including special values', () => {
    const bits = new Uint16Array([0x3c00, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x8000]);
    const out = readTensorAsFloat32(makeTensor('h', DataType.FLOAT16, [bits.length], bits));
    expect(Array.from(out.subarray(0, 4))).toEqual([1, Math.fround(2 ** -24), Infinity, -Infinity]);
    expect(out[4]).toBeNaN();
    expect(Object.is(out[5], -0)).toBe(true);
  });

  it('converts BFLOAT16, float8 and float4 tensors to float32', () => {
    expect(Array.from(readTensorAsFloat32(makeTensor('b', DataType.BFLOAT16, [2], new Uint16Array([0x3f80, 0xc0a0]))))).toEqual([1, -5]);
    expect(Array.from(readTensorAsFloat32(makeTensor('e4', DataType.FLOAT8E4M3FN, [3], new Uint8Array([0x38, 0x7e, 0x01]))))).toEqual([
      1,
      448,
      2 ** -9,
    ]);
    expect(readTensorAsFloat32(makeTensor('e4n', DataType.FLOAT8E4M3FN, [1], new Uint8Array([0x7f])))[0]).toBeNaN();
    expect(Array.from(readTensorAsFloat32(makeTensor('e5', DataType.FLOAT8E5M2, [2], new Uint8Array([0x3c, 0x7c]))))).toEqual([1, Infinity]);
    expect(Array.from(readTensorAsFloat32(makeTensor('uz', DataType.FLOAT8E4M3FNUZ, [1], new Uint8Array([0x7f]))))).toEqual([240]);
    expect(Array.from(readTensorAsFloat32(makeTensor('f4', DataType.FLOAT4E2M1, [4], [0x1, 0x7, 0x9, 0xf])))).toEqual([0.5, 6, -0.5, -6]);
    expect(Array.from(readTensorAsFloat32(makeTensor('m0', DataType.FLOAT8E8M0, [2], new Uint8Array([127, 130]))))).toEqual([1, 8]);
  });

  it('converts integer, bool and double tensors to float32 by value', () => {
    expect(Array.from(readTensorAsFloat32(makeTensor('i', DataType.INT8, [2], new Int8Array([-3, 4]))))).toEqual([-3, 4]);
    expect(Array.from(readTensorAsFloat32(makeTensor('l', DataType.INT64, [1], [-(2n ** 40n)])))).toEqual([-(2 ** 40)]);
    expect(Array.from(readTensorAsFloat32(makeTensor('d', DataType.DOUBLE, [1], [0.1])))).toEqual([Math.fround(0.1)]);
    expect(Array.from(readTensorAsFloat32(makeTensor('b', DataType.BOOL, [2], [1, 0])))).toEqual([1, 0]);
  });
});

describe('DataType', () => {
  it('has every ONNX element type code with its name', () => {
    expect(DataType.BFLOAT16).toBe(16);
    expect(DataType.FLOAT8E4M3FN).toBe(17);
    expect(DataType.FLOAT8E5M2FNUZ).toBe(20);
    expect(DataType.UINT4).toBe(21);
    expect(DataType.INT4).toBe(22);
    expect(DataType.FLOAT4E2M1).toBe(23);
    for (let code = 0; code <= 26; code++) expect(dataTypeName(code)).not.toMatch(/UNKNOWN/);
    expect(dataTypeName(1)).toBe('FLOAT');
    expect(dataTypeName(200)).toBe('UNKNOWN(200)');
    // Same codes as the generated schema enum.
    for (const [name, code] of Object.entries(DataType)) {
      expect((onnx.TensorProto.DataType as unknown as Record<string, number>)[name]).toBe(code);
    }
  });
});
