/**
 * The record file: the quantization factors of every quantized layer, in AMCT's field names
 * (scale_d/offset_d for the activation, scale_w/offset_w per output channel for the weight).
 * Re-using a record skips calibration when only `quant_enable` changed.
 */
import { QuantConfigError } from '../errors.js';
import { activationRange } from './params.js';

export interface LayerRecord {
  scale_d: number;
  offset_d: number;
  /** Activation bits the factors were computed for. */
  num_bits_d: 8 | 16;
  /** The clip range the activation factors represent. */
  clip_min_d: number;
  clip_max_d: number;
  scale_w?: number[];
  offset_w?: number[];
  /**
   * 8-bit factors of the layer's output (or of the Relu right after it), where the output also
   * feeds float operators and gets quantized so the runtime fuses the layer (see outputs.ts).
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
}

export interface QuantRecord {
  version: 1;
  layers: Record<string, LayerRecord>;
}

export function emptyRecord(): QuantRecord {
  return { version: 1, layers: {} };
}

/** Checks the shape of a record read from JSON; every problem is listed. */
export function validateRecord(value: unknown, source = 'record'): QuantRecord {
  const problems: string[] = [];
  const r = value as QuantRecord;
  if (typeof value !== 'object' || value === null || r.version !== 1 || typeof r.layers !== 'object' || r.layers === null) {
    throw new QuantConfigError(['a record must be an object { "version": 1, "layers": { ... } }'], source);
  }
  for (const [name, l] of Object.entries(r.layers)) {
    const where = `layer '${name}'`;
    if (typeof l !== 'object' || l === null) {
      problems.push(`${where} must be an object`);
      continue;
    }
    if (!(typeof l.scale_d === 'number' && l.scale_d > 0 && Number.isFinite(l.scale_d))) problems.push(`${where}.scale_d must be a finite number > 0`);
    if (l.num_bits_d !== 8 && l.num_bits_d !== 16) problems.push(`${where}.num_bits_d must be 8 or 16`);
    else {
      const { qmin, qmax } = activationRange(l.num_bits_d);
      if (!(Number.isInteger(l.offset_d) && l.offset_d >= qmin && l.offset_d <= qmax)) {
        problems.push(`${where}.offset_d must be an integer in [${qmin}, ${qmax}] for ${l.num_bits_d} bits, got ${JSON.stringify(l.offset_d)}`);
      }
    }
    for (const k of ['clip_min_d', 'clip_max_d'] as const) {
      if (!(typeof l[k] === 'number' && Number.isFinite(l[k]))) problems.push(`${where}.${k} must be a finite number`);
    }
    if (l.scale_o !== undefined || l.offset_o !== undefined) {
      if (!(typeof l.scale_o === 'number' && l.scale_o > 0 && Number.isFinite(l.scale_o))) problems.push(`${where}.scale_o must be a finite number > 0`);
      if (!(Number.isInteger(l.offset_o) && l.offset_o! >= -128 && l.offset_o! <= 127)) problems.push(`${where}.offset_o must be an integer in [-128, 127], got ${JSON.stringify(l.offset_o)}`);
    }
    if (l.output_quant !== undefined && typeof l.output_quant !== 'boolean') problems.push(`${where}.output_quant must be a boolean`);
    if (l.bias_shift !== undefined && !(Array.isArray(l.bias_shift) && l.bias_shift.every((v) => typeof v === 'number' && Number.isFinite(v)))) {
      problems.push(`${where}.bias_shift must be an array of finite numbers`);
    }
    if (l.scale_w !== undefined && !(Array.isArray(l.scale_w) && l.scale_w.every((s) => typeof s === 'number' && s > 0))) {
      problems.push(`${where}.scale_w must be an array of numbers > 0`);
    }
  }
  if (problems.length) throw new QuantConfigError(problems, source);
  return r;
}
