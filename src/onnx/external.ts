/**
 * Inlining of tensors stored outside the model file (TensorProto.data_location = EXTERNAL).
 *
 * ONNX describes such a tensor by key/value pairs: `location` (a path relative to the model
 * file's directory), `offset` (default 0) and `length` (default: to the end of the file).
 * After resolution the bytes live in raw_data and the external reference is removed, so the
 * model no longer depends on the files.
 */
import { OnnxFormatError } from '../errors.js';
import { readFileInside } from '../runtime/io.js';
import { checkTensorData, describeTensor, isExternal } from './tensor.js';
import { forEachTensor } from './tensors-walk.js';
import type { ModelProto, TensorProto } from './types.js';

/** External data by `location`: a map of file contents, or a function that fetches them. */
export type ExternalDataSource =
  | Record<string, Uint8Array>
  | ((location: string) => Promise<Uint8Array> | Uint8Array);

interface Reference {
  location: string;
  offset: number;
  length: number | undefined;
}

function parseReference(t: TensorProto): Reference {
  const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  if (!location) throw new OnnxFormatError(`${describeTensor(t)} is marked EXTERNAL but has no 'location' entry`);
  const int = (key: string): number | undefined => {
    const text = entries.get(key);
    if (text === undefined || text === '') return undefined;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new OnnxFormatError(`${describeTensor(t)} has an invalid external-data ${key} '${text}'`);
    }
    return n;
  };
  return { location, offset: int('offset') ?? 0, length: int('length') };
}

/** Models come from untrusted places: never let one read files outside its own directory. */
function checkRelative(t: TensorProto, location: string): void {
  const parts = location.split(/[\\/]+/);
  if (/^([\\/]|[A-Za-z]:)/.test(location) || parts.includes('..')) {
    throw new OnnxFormatError(
      `${describeTensor(t)} points to external file '${location}' outside the model's directory; ` +
        'only relative paths below it are allowed (pass the bytes via options.externalData instead)',
    );
  }
}

export interface ResolveOptions {
  source?: ExternalDataSource | undefined;
  baseDir?: string | undefined;
}

/** Inlines every external tensor of `model` in place. Returns how many were inlined. */
export async function resolveExternalData(model: ModelProto, options: ResolveOptions): Promise<number> {
  const pending: TensorProto[] = [];
  forEachTensor(model, (t) => {
    if (isExternal(t)) pending.push(t);
  });
  if (pending.length === 0) return 0;

  // One read per file, shared by all tensors stored in it.
  const files = new Map<string, Promise<Uint8Array>>();
  const fileFor = (t: TensorProto, location: string): Promise<Uint8Array> => {
    let file = files.get(location);
    if (!file) {
      file = fetchFile(t, location, options);
      files.set(location, file);
    }
    return file;
  };

  for (const t of pending) {
    const ref = parseReference(t);
    const file = await fileFor(t, ref.location);
    const end = ref.length === undefined ? file.length : ref.offset + ref.length;
    if (ref.offset > file.length || end > file.length) {
      throw new OnnxFormatError(
        `${describeTensor(t)} reads bytes ${ref.offset}..${end} of external file '${ref.location}', ` +
          `which has only ${file.length} bytes`,
      );
    }
    // Copy: the file buffer may be large and shared by many tensors; the model keeps only its part.
    const raw = new Uint8Array(end - ref.offset);
    raw.set(file.subarray(ref.offset, end));
    t.rawData = raw;
    t.externalData = [];
    delete t.dataLocation;
    checkTensorData(t);
  }
  return pending.length;
}

async function fetchFile(t: TensorProto, location: string, options: ResolveOptions): Promise<Uint8Array> {
  const { source, baseDir } = options;
  if (typeof source === 'function') {
    const bytes = await source(location);
    if (!(bytes instanceof Uint8Array)) {
      throw new OnnxFormatError(`options.externalData('${location}') did not return a Uint8Array (needed by ${describeTensor(t)})`);
    }
    return bytes;
  }
  if (source) {
    const bytes = Object.prototype.hasOwnProperty.call(source, location) ? source[location] : undefined;
    if (!bytes) {
      const known = Object.keys(source);
      throw new OnnxFormatError(
        `${describeTensor(t)} keeps its data in external file '${location}', which options.externalData does not provide` +
          ` (it has ${known.length ? known.map((k) => `'${k}'`).join(', ') : 'no entries'})`,
      );
    }
    return bytes;
  }
  if (baseDir === undefined) {
    throw new OnnxFormatError(
      `${describeTensor(t)} keeps its data in external file '${location}': the model was given as bytes, ` +
        'so pass options.externalData (or options.baseDir in Node/Deno)',
    );
  }
  checkRelative(t, location);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFileInside(baseDir, location);
  } catch (err) {
    const code = ((err as { cause?: { code?: string } }).cause ?? {}).code;
    const why = code === 'ENOENT' ? 'which does not exist' : `which cannot be read (${(err as Error).message})`;
    const where = (err as { path?: string }).path ?? baseDir;
    throw new OnnxFormatError(`${describeTensor(t)} keeps its data in external file '${location}' (${where}), ${why}`, { cause: err });
  }
  if (!bytes) {
    throw new OnnxFormatError(`${describeTensor(t)} points to external file '${location}', a link to a file outside the model's directory; only files below it are read`);
  }
  return bytes;
}
