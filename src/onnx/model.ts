/**
 * Decoding, loading and encoding whole ONNX models.
 *
 * Ownership: decodeModel copies its input once, so the returned model never shares memory with
 * the caller's buffer (tensor raw_data fields are views into that private copy). Later writes to,
 * or transfers of, the caller's buffer cannot change the model.
 */
import { AutoquantError, OnnxFormatError } from '../errors.js';
import { checkTensorData, isExternal } from './tensor.js';
import { forEachTensor } from './tensors-walk.js';
import { plainDims } from './plain-dims.js';
import { resolveExternalData, type ExternalDataSource } from './external.js';
import { onnx, type ModelProto, type TensorProto } from './types.js';
import { dirnameOf, readFileBytes } from '../runtime/io.js';

/** protobuf messages cannot exceed 2 GiB - 1 bytes (lengths are signed 32-bit). */
export const MAX_MODEL_BYTES = 2 ** 31 - 1;

export interface LoadModelOptions {
  /**
   * Where tensors stored outside the model file (data_location = EXTERNAL) get their bytes:
   * a map from the `location` written in the model to the file's bytes, or a function that
   * returns them. Without it, Node and Deno read the files relative to `baseDir`.
   */
  externalData?: ExternalDataSource;
  /** Directory that external-data locations are relative to; defaults to the model file's. */
  baseDir?: string;
}

function asBytes(bytes: Uint8Array | ArrayBuffer): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  // Tag and isView checks also accept buffers and views from another realm (vm, iframe).
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (Object.prototype.toString.call(bytes) === '[object ArrayBuffer]') return new Uint8Array(bytes);
  throw new OnnxFormatError(`expected the model as a Uint8Array or ArrayBuffer, got ${describeValue(bytes)}`);
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return typeof v;
}

/** A hint when the bytes are obviously something other than a protobuf. */
function sniff(bytes: Uint8Array): string | undefined {
  const head = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, 64)).trimStart();
  if (head.startsWith('version https://git-lfs')) return 'it is a Git LFS pointer file, not the model itself';
  if (head.startsWith('<')) return 'it looks like HTML or XML text';
  if (head.startsWith('{') || head.startsWith('[')) return 'it looks like JSON text';
  if (bytes.length >= 8 && new TextDecoder().decode(bytes.subarray(4, 8)) === 'ORTM') {
    return 'it is an ONNX Runtime .ort model (FlatBuffers), not an .onnx protobuf';
  }
  return undefined;
}

function describeDecodeError(err: unknown, bytes: Uint8Array): string {
  const message = err instanceof Error ? err.message : String(err);
  const hint = sniff(bytes);
  if (hint) return `not an ONNX model: ${hint}`;
  if (/index out of range/i.test(message)) {
    return `truncated or corrupt ONNX model (${bytes.length} bytes): a field runs past the end of the data (${message})`;
  }
  return `not a valid ONNX protobuf (${bytes.length} bytes): ${message}`;
}

/** Decodes bytes this module owns (no copy), then checks the result is a usable model. */
function decodeOwned(bytes: Uint8Array): ModelProto {
  if (bytes.length === 0) throw new OnnxFormatError('not an ONNX model: the data is empty');
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new OnnxFormatError(describeDecodeError(err, bytes), { cause: err });
  }
  if (!model.graph || !Object.prototype.hasOwnProperty.call(model, 'graph')) {
    const hint = sniff(bytes);
    throw new OnnxFormatError(
      hint
        ? `not an ONNX model: ${hint}`
        : `not an ONNX model: the protobuf (${bytes.length} bytes) has no graph` +
            ((model.opsetImport ?? []).length === 0 ? ' and no opset_import' : ''),
    );
  }
  // Decoding is lazy about meaning; catch inconsistent tensors now rather than mid-calibration.
  forEachTensor(model, checkTensorData);
  plainDims(model);
  return model;
}

/**
 * Decodes an ONNX model (synchronous). Tensors stored in external files stay unresolved (use
 * loadModel for those); every other tensor is checked against its dims.
 * @throws OnnxFormatError when the bytes are truncated, not a protobuf, have no graph, or a
 *   tensor's data does not match its shape.
 */
export function decodeModel(bytes: Uint8Array | ArrayBuffer): ModelProto {
  const view = asBytes(bytes);
  // Private copy (also turns a Node Buffer into a plain Uint8Array, so decoding takes the same
  // path in every runtime).
  const copy = new Uint8Array(view.byteLength);
  copy.set(view);
  return decodeOwned(copy);
}

/**
 * A deep copy of `model`'s structure (graphs, nodes, attributes, tensor records) that shares the
 * tensors' element bytes with it. Nothing in the package writes into a tensor's bytes (readTensor
 * copies them out; setTensorData and makeTensor put new arrays in), so a rewrite of the copy never
 * reaches the model, and a copy costs no model bytes at all: a 100 MB model is not copied again for
 * each candidate. For the package's own models only; a user's model is copied whole (decodeModel).
 */
export function cloneModel(model: ModelProto): ModelProto {
  return copyStructure(model) as ModelProto;
}

function copyStructure(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copyStructure);
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) return v;
  // The prototype stays: protobufjs messages read their defaults (empty lists, zero) from it.
  const out = Object.create(Object.getPrototypeOf(v) as object) as Record<string, unknown>;
  for (const k of Object.keys(v)) out[k] = copyStructure((v as Record<string, unknown>)[k]);
  return out;
}

/**
 * loadModel for bytes the caller gives up: the model's tensors are views into them, with no copy, so
 * nothing may write them afterwards. For the package's own buffers (the app's worker owns the file's
 * bytes the page transferred to it); a user's bytes go through loadModel.
 */
export async function adoptModel(bytes: Uint8Array, options: LoadModelOptions = {}): Promise<ModelProto> {
  const model = decodeOwned(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  await resolveExternalData(model, { source: options.externalData, baseDir: options.baseDir });
  return model;
}

function isLocation(source: unknown): source is string | URL {
  return typeof source === 'string' || source instanceof URL;
}

/**
 * Loads a model from bytes, a file path or a `file:` URL (paths need Node or Deno), and inlines
 * every external-data tensor into raw_data, so the returned model is self-contained and
 * encodeModel writes a single file. External files are read relative to the model's directory
 * (or `options.baseDir`), or taken from `options.externalData`.
 */
export async function loadModel(
  source: Uint8Array | ArrayBuffer | string | URL,
  options: LoadModelOptions = {},
): Promise<ModelProto> {
  let model: ModelProto;
  let baseDir = options.baseDir;
  if (isLocation(source)) {
    const bytes = await readFileBytes(source).catch((err: unknown) => {
      throw wrapReadError(err, `cannot read ONNX model ${String(source)}`);
    });
    try {
      model = decodeOwned(bytes);
    } catch (err) {
      // The bytes' problem, said about the file they came from.
      if (err instanceof OnnxFormatError) throw new OnnxFormatError(`${String(source)}: ${err.message}`, { cause: err });
      throw err;
    }
    baseDir ??= await dirnameOf(source);
  } else {
    model = decodeModel(source);
  }
  await resolveExternalData(model, { source: options.externalData, baseDir });
  return model;
}

export function wrapReadError(err: unknown, what: string): Error {
  // Already typed and naming the file: FileAccessError (missing, a directory, no permission), or a
  // browser's UnsupportedEnvironmentError.
  if (err instanceof AutoquantError) return err;
  return new OnnxFormatError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** Bytes the tensors alone will take; a cheap lower bound checked before encoding anything. */
function tensorBytes(model: ModelProto): number {
  let total = 0;
  forEachTensor(model, (t) => {
    total += t.rawData?.length ?? 0;
    total += (t.floatData?.length ?? 0) * 4 + (t.doubleData?.length ?? 0) * 8;
    total += (t.int32Data?.length ?? 0) + (t.int64Data?.length ?? 0) + (t.uint64Data?.length ?? 0);
  });
  return total;
}

function tooLarge(bytes: number): OnnxFormatError {
  return new OnnxFormatError(
    `the encoded model would take ${bytes} bytes, more than the 2 GiB protobuf limit (${MAX_MODEL_BYTES}); ` +
      'writing tensors to external data files is not supported yet',
  );
}

/**
 * Encodes a model to ONNX protobuf bytes. A model decoded by this package and left unchanged
 * encodes to the same bytes it was read from (external data already inlined by loadModel).
 * @throws OnnxFormatError when the result would exceed the 2 GiB protobuf limit.
 */
export function encodeModel(model: ModelProto): Uint8Array {
  const estimate = tensorBytes(model);
  if (estimate > MAX_MODEL_BYTES) throw tooLarge(estimate);
  // The writer knows the final length before it allocates the output buffer.
  const writer = onnx.ModelProto.encode(model);
  if (writer.len > MAX_MODEL_BYTES) throw tooLarge(writer.len);
  const out = writer.finish();
  // In Node the writer returns a Buffer; small ones sit in a shared pool. Hand back a plain
  // Uint8Array that owns its whole ArrayBuffer, copying only in the (small) pooled case.
  if (out.byteOffset === 0 && out.buffer.byteLength === out.byteLength) {
    return out.constructor === Uint8Array ? out : new Uint8Array(out.buffer, 0, out.byteLength);
  }
  const copy = new Uint8Array(out.byteLength);
  copy.set(out);
  return copy;
}

/** Initializers below this size stay in the encoding: shapes and scales, which a runtime may read while it optimizes. */
export const EXTERNAL_TENSOR_MIN_BYTES = 64 * 1024;

/** A model encoded with its large initializers as in-memory external-data files, one per tensor. */
export interface ExternalEncoding {
  bytes: Uint8Array;
  /** `path` is the tensor's `location`; `data` is the tensor's own raw_data (not a copy). */
  files: { path: string; data: Uint8Array }[];
}

/**
 * Encodes `model` with every top-level initializer of at least `minBytes` of raw_data stored as
 * external data, for a runtime that takes the files from memory (onnxruntime-web's `externalData`):
 * the weights are never copied into an encoding, and the runtime copies each straight into its
 * tensor. `model` is not changed. Paths are `prefix` and a number.
 */
export function encodeModelExternal(model: ModelProto, options: { minBytes?: number; prefix?: string } = {}): ExternalEncoding {
  const minBytes = options.minBytes ?? EXTERNAL_TENSOR_MIN_BYTES;
  const prefix = options.prefix ?? 'tensor';
  const files: ExternalEncoding['files'] = [];
  const graph = model.graph;
  const initializer = (graph?.initializer ?? []).map((t): TensorProto => {
    const raw = t.rawData;
    if (!raw || raw.length < minBytes || isExternal(t)) return t;
    const path = `${prefix}${files.length}`;
    files.push({ path, data: raw });
    return withFields(t, {
      rawData: new Uint8Array(0),
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: path },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(raw.length) },
      ],
    });
  });
  if (files.length === 0) return { bytes: encodeModel(model), files };
  return { bytes: encodeModel(withFields(model, { graph: withFields(graph!, { initializer }) })), files };
}

/** A shallow copy of a message with some fields replaced (the prototype kept, as cloneModel does). */
function withFields<T extends object>(message: T, fields: Partial<T>): T {
  return Object.assign(Object.create(Object.getPrototypeOf(message) as object) as T, message, fields);
}
