/**
 * NumPy inputs, from bytes (the CLI reads a file, the browser app a dropped one): a .npy array feeds the model's single input, a .npz feeds inputs by
 * name. Arrays are split into batches along their batch axis: the first axis the model leaves free
 * (Silero VAD's state [2, N, 128] batches along axis 1), axis 0 where it declares no shape, or the
 * axis `--batch-axis name=k` names. A 0-d array, an array that gives one batch where others give
 * more, and a `--const name=value` input are fed the same in every batch. Elements are converted to
 * the type the model declares (int64 for Silero's `sr`), so an npz written from Python's defaults works.
 */
import { parseNpy, parseNpz, toFloat32, type NpyArray } from '../data/npy.js';
import { describeDeclared, type DeclaredInput } from '../onnx/inputs.js';
import type { Feeds } from '../quant/calibrate/calibrate.js';
import { Tensor, type OrtTensor } from '../runtime/ort.js';
import { quoteName } from '../text.js';
import { UsageError } from '../errors.js';

export type { DeclaredInput } from '../onnx/inputs.js';

export interface FeedOptions {
  /** Rows per batch along each input's batch axis (default: the whole array is one batch). */
  batchSize?: number;
  /** Batch axis per input name (default: the first free axis the model declares, else 0). */
  batchAxes?: Record<string, number>;
  /** Inputs held constant across batches: every element is this number. */
  constants?: Record<string, number>;
}

type Elements = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

const ARRAYS: Record<string, new (n: number) => Elements> = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array,
};

/** The elements of `a` as the type the model declares (float32 where it does not say). */
function toElements(what: string, a: NpyArray, type: string | undefined): Elements {
  return convert(what, a.dtype === 'float16' || type === undefined || type === 'float32' ? toFloat32(a) : (a.data as ArrayLike<number | bigint>), type ?? 'float32', a.dtype.startsWith('float'));
}

/** `values` as elements of `type`; fractions where the model wants integers are an error, not truncated. */
function convert(what: string, values: ArrayLike<number | bigint>, type: string, fromFloat: boolean): Elements {
  const Ctor = ARRAYS[type];
  if (!Ctor) throw new UsageError(`${what}: the model declares element type ${type}, which the CLI cannot feed from NumPy data`);
  if (values instanceof Ctor) return values;
  const out = new Ctor(values.length);
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  const integral = !type.startsWith('float');
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i]!);
    if (fromFloat && integral && !Number.isInteger(v)) throw new UsageError(`${what}: element ${i} is ${v}, but the model declares ${type}: give whole numbers`);
    out[i] = (big ? BigInt(v) : v) as never;
  }
  return out;
}

function tensor(type: string | undefined, data: Elements, dims: number[]): OrtTensor {
  return new Tensor((type ?? 'float32') as 'float32', data as Float32Array, dims);
}

/** The batch axis of `input`: as asked, else the first axis the model leaves free, else 0. */
function batchAxisOf(input: DeclaredInput, options: FeedOptions): number {
  const asked = options.batchAxes?.[input.name];
  if (asked !== undefined) return asked;
  const free = input.dims?.findIndex((d) => !(typeof d === 'number' && d > 0));
  return free !== undefined && free >= 0 ? free : 0;
}

/** Splits `all` (shaped `shape`) along `axis` into batches of `size` rows (the whole axis when undefined). */
function split(all: Elements, shape: readonly number[], axis: number, size: number | undefined, type: string | undefined): OrtTensor[] {
  const rows = shape[axis]!;
  const outer = shape.slice(0, axis).reduce((x, y) => x * y, 1);
  const inner = shape.slice(axis + 1).reduce((x, y) => x * y, 1);
  const Ctor = all.constructor as new (n: number) => Elements;
  const step = size ?? rows;
  const out: OrtTensor[] = [];
  for (let start = 0; start < rows; start += step) {
    const n = Math.min(step, rows - start);
    const picked = new Ctor(outer * n * inner);
    for (let o = 0; o < outer; o++) {
      const from = (o * rows + start) * inner;
      (picked as Float32Array).set((all as Float32Array).subarray(from, from + n * inner), o * n * inner);
    }
    const dims = [...shape];
    dims[axis] = n;
    out.push(tensor(type, picked, dims));
  }
  return out;
}

/** Fails before any session exists when a batch cannot fit the input the model declares, saying why. */
function checkBatch(file: string, input: DeclaredInput, dims: readonly number[], axis: number): void {
  if (!input.dims) return;
  const want = describeDeclared(input);
  if (input.dims.length !== dims.length) {
    throw new UsageError(`${file}: input ${quoteName(input.name)} has ${dims.length} axes ([${dims.join(', ')}]), but the model declares ${want}`);
  }
  input.dims.forEach((d, i) => {
    if (!(typeof d === 'number' && d > 0) || d === dims[i]) return;
    const why = i === axis
      ? `it was split along axis ${axis}, which the model fixes at ${d}: name its batch axis with --batch-axis ${input.name}=K, or hold it constant with --const`
      : `axis ${i} must be ${d}`;
    throw new UsageError(`${file}: a batch of input ${quoteName(input.name)} has shape [${dims.join(', ')}], but the model declares ${want}: ${why}`);
  });
}

/** The same tensor in every batch, from `--const name=value`: the model must fix its shape. */
function constantFeed(input: DeclaredInput, value: number): OrtTensor {
  const dims = input.dims ?? [];
  if (!dims.every((d) => typeof d === 'number' && d > 0)) {
    throw new UsageError(`--const ${input.name}: the model declares ${describeDeclared(input)}; a constant needs a fixed shape (give the input as an array instead)`);
  }
  const n = (dims as number[]).reduce((a, b) => a * b, 1);
  return tensor(input.type, convert(`--const ${input.name}`, new Array<number>(n).fill(value), input.type ?? 'float32', true), dims as number[]);
}

/** Batches of feeds for a model with `inputs`, from the bytes of a .npy or .npz file (`file` names it in errors and says which). */
export async function feedsFromBytes(file: string, bytes: Uint8Array, inputs: readonly (string | DeclaredInput)[], options: FeedOptions = {}): Promise<Feeds[]> {
  const declared = inputs.map((i) => (typeof i === 'string' ? { name: i } : i));
  const names = declared.map((i) => i.name);
  for (const n of [...Object.keys(options.constants ?? {}), ...Object.keys(options.batchAxes ?? {})]) {
    if (!names.includes(n)) throw new UsageError(`'${n}' is not an input of the model (inputs: ${names.join(', ')})`);
  }
  const constant = new Set(Object.keys(options.constants ?? {}));
  const fed = declared.filter((i) => !constant.has(i.name));
  let arrays: Map<string, NpyArray>;
  if (file.toLowerCase().endsWith('.npz')) {
    arrays = await parseNpz(bytes, file);
    const missing = fed.filter((i) => !arrays.has(i.name)).map((i) => i.name);
    if (missing.length) {
      throw new UsageError(`${file}: no array for model input(s) ${missing.join(', ')} (arrays: ${[...arrays.keys()].join(', ') || 'none'}); name each array after a model input, or hold an input constant with --const name=value`);
    }
  } else {
    if (fed.length !== 1) {
      throw new UsageError(`${file}: the model has ${names.length} inputs (${names.join(', ')}); give a .npz with one array per input, or hold the others constant with --const name=value`);
    }
    arrays = new Map([[fed[0]!.name, parseNpy(bytes, file)]]);
  }
  // Per input: its batches, or one tensor fed to every batch.
  const perInput = new Map<string, OrtTensor[]>();
  const every = new Map<string, OrtTensor>();
  for (const input of declared) {
    if (constant.has(input.name)) {
      every.set(input.name, constantFeed(input, options.constants![input.name]!));
      continue;
    }
    const a = arrays.get(input.name)!;
    const what = `${file}:${input.name}`;
    if (a.shape.length === 0) {
      // A 0-d array is a scalar input (Silero's sample rate): the same value in every batch.
      every.set(input.name, tensor(input.type, toElements(what, a, input.type), []));
      continue;
    }
    const axis = batchAxisOf(input, options);
    if (axis >= a.shape.length) {
      throw new UsageError(`${file}: input ${quoteName(input.name)} cannot be batched along axis ${axis}: the array has shape [${a.shape.join(', ')}]`);
    }
    const batches = split(toElements(what, a, input.type), a.shape, axis, options.batchSize, input.type);
    checkBatch(file, input, batches[0]?.dims ?? [], axis);
    perInput.set(input.name, batches);
  }
  const counts = [...perInput.values()].map((b) => b.length);
  const batches = counts.length ? Math.max(...counts) : 1;
  if (counts.some((n) => n === 0)) throw new UsageError(`${file}: the arrays hold no rows`);
  for (const [name, list] of perInput) {
    // An array that gives one batch while others give more (an initial recurrent state) is fed to each.
    if (list.length === 1 && batches > 1) {
      every.set(name, list[0]!);
      perInput.delete(name);
    } else if (list.length !== batches) {
      const shown = [...perInput].map(([n, l]) => `${n}: ${l.length}`).join(', ');
      throw new UsageError(`${file}: the inputs give different numbers of batches (${shown}); each array must give the same number along its batch axis, or just one`);
    }
  }
  return Array.from({ length: batches }, (_, i) =>
    Object.fromEntries(names.map((n) => [n, every.get(n) ?? perInput.get(n)![i]!])),
  );
}
