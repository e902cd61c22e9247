/**
 * NumPy inputs for the CLI: a .npy array feeds the model's single input, a .npz feeds inputs by
 * name; arrays are split along axis 0 into batches.
 */
import { parseNpy, parseNpz, toFloat32, type NpyArray } from '../data/npy.js';
import type { Feeds } from '../quant/calibrate.js';
import { readFileBytes } from '../runtime/io.js';
import { Tensor } from '../runtime/ort.js';
import { UsageError } from './args.js';

function split(name: string, a: NpyArray, batchSize: number | undefined): { data: Float32Array; dims: number[] }[] {
  const data = toFloat32(a);
  if (a.shape.length === 0) throw new UsageError(`${name}: a 0-d array cannot be split into batches`);
  const rows = a.shape[0]!;
  const size = batchSize ?? rows;
  const per = rows === 0 ? 0 : data.length / rows;
  const out = [];
  for (let start = 0; start < rows; start += size) {
    const n = Math.min(size, rows - start);
    out.push({ data: data.slice(start * per, (start + n) * per), dims: [n, ...a.shape.slice(1)] });
  }
  return out;
}

/** A model input as the graph declares it: name and dims (a string or undefined for a free dimension). */
export interface DeclaredInput {
  name: string;
  dims?: (number | string | undefined)[];
}

/** Fails before any session exists when an array cannot fit the input the model declares. */
function checkShape(file: string, input: DeclaredInput, dims: readonly number[]): void {
  if (!input.dims) return;
  const want = input.dims.map((d) => (typeof d === 'number' && d > 0 ? String(d) : '?')).join(', ');
  const fits = input.dims.length === dims.length && input.dims.every((d, i) => !(typeof d === 'number' && d > 0) || d === dims[i] || i === 0);
  if (!fits) throw new UsageError(`${file}: a batch of input '${input.name}' has shape [${dims.join(', ')}], but the model expects [${want}] (axis 0 is the batch; use --batch-size to split)`);
}

/** Batches of feeds for a model with `inputs`, from a .npy or .npz file. */
export async function readFeeds(file: string, inputs: readonly (string | DeclaredInput)[], batchSize?: number): Promise<Feeds[]> {
  const declared = inputs.map((i) => (typeof i === 'string' ? { name: i } : i));
  const inputNames = declared.map((i) => i.name);
  const bytes = await readFileBytes(file);
  let arrays: Map<string, NpyArray>;
  if (file.toLowerCase().endsWith('.npz')) {
    arrays = await parseNpz(bytes, file);
    const missing = inputNames.filter((n) => !arrays.has(n));
    if (missing.length) {
      throw new UsageError(`${file}: no array for model input(s) ${missing.join(', ')} (arrays: ${[...arrays.keys()].join(', ') || 'none'}); name each array after a model input`);
    }
  } else {
    if (inputNames.length !== 1) {
      throw new UsageError(`${file}: the model has ${inputNames.length} inputs (${inputNames.join(', ')}); give a .npz with one array per input`);
    }
    arrays = new Map([[inputNames[0]!, parseNpy(bytes, file)]]);
  }
  const perInput = inputNames.map((n) => split(`${file}:${n}`, arrays.get(n)!, batchSize));
  declared.forEach((input, j) => perInput[j]![0] && checkShape(file, input, perInput[j]![0]!.dims));
  const batches = perInput[0]!.length;
  if (perInput.some((b) => b.length !== batches)) throw new UsageError(`${file}: the arrays have different numbers of rows along axis 0`);
  if (batches === 0) throw new UsageError(`${file}: the arrays hold no rows`);
  return Array.from({ length: batches }, (_, i) =>
    Object.fromEntries(inputNames.map((n, j) => [n, new Tensor('float32', perInput[j]![i]!.data, perInput[j]![i]!.dims)])),
  );
}
