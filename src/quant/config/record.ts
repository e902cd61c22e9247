/**
 * The record file: the quantization factors of every quantized layer, in AMCT's field names
 * (scale_d/offset_d for the activation, scale_w/offset_w per output channel for the weight).
 * Re-using a record skips calibration when only `quant_enable` changed.
 */
import { QuantConfigError } from '../../errors.js';
import { describeValue, quoteName } from '../../text.js';
import { activationRange } from '../calibrate/params.js';

export interface LayerRecord {
  scale_d: number;
  offset_d: number;
  /** Activation bits the factors were computed for. */
  num_bits_d: 8 | 16;
  /** The clip range the activation factors represent. */
  clip_min_d: number;
  clip_max_d: number;
  /**
   * A MatMul of two activations (attention): the second input's factors, at num_bits_d, and the
   * clip range they represent (see registry.ts, LayerInfo.second).
   */
  scale_d2?: number;
  offset_d2?: number;
  clip_min_d2?: number;
  clip_max_d2?: number;
  scale_w?: number[];
  offset_w?: number[];
  /**
   * 8-bit factors of the layer's output (or of the Relu right after it), where the output also
   * feeds float operators and gets quantized so the runtime fuses the layer (see decide/outputs.ts).
   */
  scale_o?: number;
  offset_o?: number;
  clip_min_o?: number;
  clip_max_o?: number;
  /** Whether the quantized output was kept (false: it cost too much fidelity; see selectOutputs). */
  output_quant?: boolean;
  /**
   * Bias correction: per output channel, the mean shift quantization adds to the layer's output on
   * the calibration batches; the quantized layer's bias is the float bias minus this.
   */
  bias_shift?: number[];
  /**
   * Activation equalization: per input channel, the power of two the layer's input was multiplied
   * by (and its filters divided by) before calibration; see activation-equalize.ts.
   */
  equalize_d?: number[];
  /**
   * Channel splitting: per input channel, how many copies of it the layer reads (1: not split), and
   * the dither step of the copies' offsets; see channel-split.ts.
   */
  split_d?: number[];
  split_dither_d?: number;
  /**
   * Adaptive rounding (see rounding.ts): a bitset, base64, of the weights rounded to their other
   * grid neighbour than nearest, in the weight's element order; "" for nearest rounding everywhere.
   */
  round_w?: string;
}

/**
 * A data pass the record's factors came out of, and the config values it ran with, so that a
 * reader of the file knows how its numbers were made. Informational: a reuse of the record reads
 * the layer fields, and its own config decides which passes run.
 */
export interface PassRecord {
  name: string;
  stage: 'before-calibration' | 'after-calibration';
  settings: Record<string, unknown>;
}

/**
 * A weight-only layer's weights as the models hold them: the bits each got (the automatic search's
 * choice under `weightBits: [4, 8]`), the block size where they are in blocks, and the bytes against
 * float. Informational, like `passes` (weight-only factors are data-free, so the config's `num_bits`
 * and `block_size` rebuild them), but for `equalize_w`, which a reuse applies without data.
 */
export interface WeightRecord {
  num_bits_w: 4 | 8;
  /** Values per block (MatMulNBits, GatherBlockQuantized); absent for one scale per row or channel. */
  block_size?: number;
  /** Bytes of the quantized weights with their scales and zero points. */
  bytes: number;
  /** Bytes of the same weights in float32. */
  float_bytes: number;
  /**
   * Factors (powers of two) its input channels were multiplied by, and its weight rows divided by,
   * before quantization (activation-aware weight scaling, decide/weight-scaling.ts).
   */
  equalize_w?: number[];
}

export interface QuantRecord {
  version: 1;
  /** The data passes that ran, in order (absent in records written before passes were recorded). */
  passes?: PassRecord[];
  layers: Record<string, LayerRecord>;
  /** The weight-only layers quantized, by name (absent where there are none). */
  weights?: Record<string, WeightRecord>;
}

export function emptyRecord(): QuantRecord {
  return { version: 1, layers: {} };
}

const FIELDS = new Set([
  'scale_d', 'offset_d', 'num_bits_d', 'clip_min_d', 'clip_max_d', 'scale_d2', 'offset_d2', 'clip_min_d2', 'clip_max_d2', 'scale_w', 'offset_w',
  'scale_o', 'offset_o', 'clip_min_o', 'clip_max_o', 'output_quant', 'bias_shift', 'equalize_d', 'split_d', 'split_dither_d', 'round_w',
]);

/** Finite and, as a float32 (what the models store), still finite and nonzero where `positive`. */
const isFloat32 = (v: unknown, positive: boolean): v is number =>
  typeof v === 'number' && Number.isFinite(Math.fround(v)) && (!positive || Math.fround(v) > 0);

const numbers = (v: unknown, ok: (x: unknown) => boolean): v is number[] => Array.isArray(v) && v.length <= 1 << 24 && v.every(ok);

/**
 * Checks the shape of a record (read from JSON, or passed by the caller) and returns a fresh copy of
 * it holding only the known fields, so nothing of the caller's object is shared or kept; every
 * problem is listed. Scales must be representable as float32, the type the models store.
 */
export function validateRecord(value: unknown, source = 'record'): QuantRecord {
  const problems: string[] = [];
  const r = value as QuantRecord;
  if (typeof value !== 'object' || value === null || r.version !== 1 || typeof r.layers !== 'object' || r.layers === null || Array.isArray(r.layers)) {
    throw new QuantConfigError(['a record must be an object { "version": 1, "layers": { ... } }'], source);
  }
  const out = emptyRecord();
  if (r.passes !== undefined) {
    const ok = Array.isArray(r.passes) && r.passes.every((p) =>
      typeof p === 'object' && p !== null && typeof p.name === 'string' && (p.stage === 'before-calibration' || p.stage === 'after-calibration') &&
      typeof p.settings === 'object' && p.settings !== null && !Array.isArray(p.settings));
    if (!ok) problems.push('passes must be an array of { "name": string, "stage": "before-calibration" | "after-calibration", "settings": { ... } }');
    else out.passes = r.passes.map((p) => ({ name: p.name, stage: p.stage, settings: JSON.parse(JSON.stringify(p.settings)) as Record<string, unknown> }));
  }
  if (r.weights !== undefined) {
    const weights = validateWeights(r.weights, problems);
    if (weights) out.weights = weights;
  }
  for (const [name, l] of Object.entries(r.layers)) {
    const where = `layer ${quoteName(name)}`;
    if (typeof l !== 'object' || l === null || Array.isArray(l)) {
      problems.push(`${where} must be an object`);
      continue;
    }
    for (const k of Object.keys(l)) if (!FIELDS.has(k)) problems.push(`${where}.${describeValue(k).slice(1, -1)} is not a known field`);
    if (!isFloat32(l.scale_d, true)) problems.push(`${where}.scale_d must be a number > 0 that float32 can hold, got ${describeValue(l.scale_d)}`);
    if (l.num_bits_d !== 8 && l.num_bits_d !== 16) problems.push(`${where}.num_bits_d must be 8 or 16`);
    else {
      const { qmin, qmax } = activationRange(l.num_bits_d);
      if (!(Number.isInteger(l.offset_d) && l.offset_d >= qmin && l.offset_d <= qmax)) {
        problems.push(`${where}.offset_d must be an integer in [${qmin}, ${qmax}] for ${l.num_bits_d} bits, got ${describeValue(l.offset_d)}`);
      }
    }
    for (const k of ['clip_min_d', 'clip_max_d'] as const) {
      if (!isFloat32(l[k], false)) problems.push(`${where}.${k} must be a finite number, got ${describeValue(l[k])}`);
    }
    if (l.scale_o !== undefined || l.offset_o !== undefined) {
      if (!isFloat32(l.scale_o, true)) problems.push(`${where}.scale_o must be a number > 0 that float32 can hold, got ${describeValue(l.scale_o)}`);
      if (!(Number.isInteger(l.offset_o) && l.offset_o! >= -128 && l.offset_o! <= 127)) problems.push(`${where}.offset_o must be an integer in [-128, 127], got ${describeValue(l.offset_o)}`);
    }
    for (const k of ['clip_min_o', 'clip_max_o'] as const) {
      if (l[k] !== undefined && !isFloat32(l[k], false)) problems.push(`${where}.${k} must be a finite number, got ${describeValue(l[k])}`);
    }
    const second = ['scale_d2', 'offset_d2', 'clip_min_d2', 'clip_max_d2'] as const;
    if (second.some((k) => l[k] !== undefined)) {
      if (!isFloat32(l.scale_d2, true)) problems.push(`${where}.scale_d2 must be a number > 0 that float32 can hold, got ${describeValue(l.scale_d2)}`);
      if (l.num_bits_d === 8 || l.num_bits_d === 16) {
        const { qmin, qmax } = activationRange(l.num_bits_d);
        if (!(Number.isInteger(l.offset_d2) && l.offset_d2! >= qmin && l.offset_d2! <= qmax)) {
          problems.push(`${where}.offset_d2 must be an integer in [${qmin}, ${qmax}] for ${l.num_bits_d} bits, got ${describeValue(l.offset_d2)}`);
        }
      }
      for (const k of ['clip_min_d2', 'clip_max_d2'] as const) {
        if (!isFloat32(l[k], false)) problems.push(`${where}.${k} must be a finite number, got ${describeValue(l[k])}`);
      }
    }
    if (l.output_quant !== undefined && typeof l.output_quant !== 'boolean') problems.push(`${where}.output_quant must be a boolean`);
    if (l.bias_shift !== undefined && !numbers(l.bias_shift, (v) => isFloat32(v, false))) {
      problems.push(`${where}.bias_shift must be an array of finite numbers`);
    }
    if (l.round_w !== undefined && (typeof l.round_w !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(l.round_w))) {
      problems.push(`${where}.round_w must be a base64 string`);
    }
    if (l.equalize_d !== undefined && !numbers(l.equalize_d, (v) => typeof v === 'number' && v > 0 && 2 ** Math.round(Math.log2(v)) === v && Math.abs(Math.log2(v)) <= 64)) {
      problems.push(`${where}.equalize_d must be an array of powers of two`);
    }
    if (l.split_d !== undefined && !numbers(l.split_d, (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1 << 16)) {
      problems.push(`${where}.split_d must be an array of whole copy counts ≥ 1`);
    }
    if (l.split_dither_d !== undefined && !(isFloat32(l.split_dither_d, false) && l.split_dither_d >= 0)) {
      problems.push(`${where}.split_dither_d must be a finite number ≥ 0, got ${describeValue(l.split_dither_d)}`);
    }
    if ((l.split_d === undefined) !== (l.split_dither_d === undefined)) problems.push(`${where} needs split_d and split_dither_d together`);
    if (l.scale_w !== undefined && !numbers(l.scale_w, (v) => isFloat32(v, true))) {
      problems.push(`${where}.scale_w must be an array of numbers > 0 that float32 can hold`);
    }
    if (l.offset_w !== undefined && !numbers(l.offset_w, (v) => Number.isInteger(v))) problems.push(`${where}.offset_w must be an array of integers`);
    const copy: LayerRecord = { scale_d: l.scale_d, offset_d: l.offset_d, num_bits_d: l.num_bits_d, clip_min_d: l.clip_min_d, clip_max_d: l.clip_max_d };
    for (const k of ['scale_d2', 'offset_d2', 'clip_min_d2', 'clip_max_d2', 'scale_o', 'offset_o', 'clip_min_o', 'clip_max_o', 'output_quant', 'round_w', 'split_dither_d'] as const) if (l[k] !== undefined) (copy as unknown as Record<string, unknown>)[k] = l[k];
    for (const k of ['scale_w', 'offset_w', 'bias_shift', 'equalize_d', 'split_d'] as const) if (Array.isArray(l[k])) copy[k] = [...l[k]!];
    setLayer(out, name, copy);
  }
  if (problems.length) throw new QuantConfigError(problems, source);
  return out;
}

const WEIGHT_FIELDS = new Set(['num_bits_w', 'block_size', 'bytes', 'float_bytes', 'equalize_w']);
const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function validateWeights(value: unknown, problems: string[]): Record<string, WeightRecord> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push('weights must be an object { "<layer>": { "num_bits_w": 4 | 8, "bytes": n, "float_bytes": n }, ... }');
    return undefined;
  }
  const out: Record<string, WeightRecord> = {};
  for (const [name, w] of Object.entries(value as Record<string, WeightRecord>)) {
    const where = `weights ${quoteName(name)}`;
    if (typeof w !== 'object' || w === null || Array.isArray(w)) {
      problems.push(`${where} must be an object`);
      continue;
    }
    for (const k of Object.keys(w)) if (!WEIGHT_FIELDS.has(k)) problems.push(`${where}.${describeValue(k).slice(1, -1)} is not a known field`);
    if (w.num_bits_w !== 4 && w.num_bits_w !== 8) problems.push(`${where}.num_bits_w must be 4 or 8, got ${describeValue(w.num_bits_w)}`);
    if (w.block_size !== undefined && !(count(w.block_size) && w.block_size > 0)) problems.push(`${where}.block_size must be a whole number > 0, got ${describeValue(w.block_size)}`);
    for (const k of ['bytes', 'float_bytes'] as const) if (!count(w[k])) problems.push(`${where}.${k} must be a whole number ≥ 0, got ${describeValue(w[k])}`);
    const e = w.equalize_w;
    if (e !== undefined && !(Array.isArray(e) && e.length > 0 && e.every((v) => typeof v === 'number' && v > 0 && 2 ** Math.round(Math.log2(v)) === v))) {
      problems.push(`${where}.equalize_w must be a non-empty array of powers of two, got ${describeValue(e)}`);
    }
    const copy: WeightRecord = {
      num_bits_w: w.num_bits_w, ...(w.block_size !== undefined ? { block_size: w.block_size } : {}), bytes: w.bytes, float_bytes: w.float_bytes,
      ...(Array.isArray(e) ? { equalize_w: [...e] } : {}),
    };
    setOwn(out, name, copy);
  }
  return out;
}

/** `record` with `weights` in place of any it had (none where `weights` is empty), listed after the layers. */
export function withWeights(record: QuantRecord, weights: Record<string, WeightRecord>): QuantRecord {
  const { weights: _old, ...rest } = record;
  return Object.keys(weights).length ? { ...rest, weights } : rest;
}

/** `record` with `passes` in place of any it had, listed before the layers as files show them. */
export function withPasses(record: QuantRecord, passes: readonly PassRecord[]): QuantRecord {
  return { version: record.version, passes: passes.map((p) => ({ ...p, settings: { ...p.settings } })), layers: record.layers, ...(record.weights ? { weights: record.weights } : {}) };
}

/** Sets `table[name]`; any name works, `__proto__` included (an own property, not the prototype). */
export function setOwn<T>(table: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(table, name, { value, enumerable: true, writable: true, configurable: true });
}

/** Sets a layer's entry (see setOwn). */
export function setLayer(record: QuantRecord, name: string, entry: LayerRecord): void {
  setOwn(record.layers, name, entry);
}
