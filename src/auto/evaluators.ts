/**
 * Ready-made evaluators: top-1 accuracy against labels, and label-free fidelity to the float model.
 */
import { EvaluationError } from '../errors.js';
import { checkOptionKeys, optionKeys } from '../options.js';
import { OutputComparison } from '../quant/export/fidelity.js';
import type { CalibrationSession, Feeds } from '../quant/calibrate/calibrate.js';
import { Tensor, type InferenceSession, type OrtTensor } from '../runtime/ort.js';
import { AutoCalibrationEvaluator, type MetricLimit } from './evaluator.js';

export interface DataEvaluatorOptions extends MetricLimit {
  /** Batches for calibration (default: the evaluation batches); the first `batchNum` are used. */
  calibrationInputs?: Feeds[];
  /** Calibration batches to run (default 1, AMCT's batch_num). */
  batchNum?: number;
  /** Output to score (default: the session's first output). */
  outputName?: string;
}

const DATA_OPTION_KEYS = optionKeys<DataEvaluatorOptions>({ maxDrop: true, maxRelativeDrop: true, calibrationInputs: true, batchNum: true, outputName: true });

async function runCalibration(session: CalibrationSession, batches: Feeds[], n: number): Promise<void> {
  for (const feeds of batches.slice(0, n)) await session.run(feeds);
}

function output(out: Record<string, OrtTensor>, session: InferenceSession, name: string | undefined): OrtTensor {
  const key = name ?? session.outputNames[0]!;
  const t = out[key];
  if (!t) throw new EvaluationError(`the model has no output '${key}' (outputs: ${session.outputNames.join(', ')})`);
  if (t.type !== 'float32') throw new EvaluationError(`output '${key}' is ${t.type}; a float32 output is needed`);
  return t;
}

/** Row-wise argmax of a [..., C] tensor. */
function argmaxRows(t: OrtTensor): Int32Array {
  const data = t.data as Float32Array;
  const c = t.dims[t.dims.length - 1] ?? 1;
  const rows = Math.floor(data.length / Math.max(1, c));
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (data[r * c + j]! > data[r * c + best]!) best = j;
    out[r] = best;
  }
  return out;
}

export interface LabelledBatch {
  feeds: Feeds;
  /** One class index per row of the scored output. */
  labels: ArrayLike<number>;
}

/** Top-1 accuracy (0..1) over labelled batches. */
export class ClassificationEvaluator extends AutoCalibrationEvaluator {
  constructor(private readonly data: LabelledBatch[], private readonly options: DataEvaluatorOptions = {}) {
    checkOptionKeys(options, DATA_OPTION_KEYS, 'ClassificationEvaluator');
    super(options);
    if (data.length === 0) throw new EvaluationError('ClassificationEvaluator needs at least one labelled batch');
  }

  calibration(session: CalibrationSession): Promise<void> {
    return runCalibration(session, this.options.calibrationInputs ?? this.data.map((d) => d.feeds), this.options.batchNum ?? 1);
  }

  async evaluate(session: InferenceSession): Promise<number> {
    let correct = 0;
    let total = 0;
    for (const [i, batch] of this.data.entries()) {
      const top = argmaxRows(output(await session.run(batch.feeds), session, this.options.outputName));
      if (top.length !== batch.labels.length) {
        throw new EvaluationError(`batch ${i}: the model gave ${top.length} predictions but ${batch.labels.length} labels were given`);
      }
      for (let r = 0; r < top.length; r++) if (top[r] === batch.labels[r]) correct++;
      total += top.length;
    }
    return correct / total;
  }
}

export type FidelityMode = 'auto' | 'top1' | 'cosine' | 'relative';

export interface FidelityEvaluatorOptions extends DataEvaluatorOptions {
  /**
   * How the output is compared with the float model's, over all batches together:
   * - 'top1': agreement of the row-wise argmax;
   * - 'cosine': cosine of all the output's values (blind to a change of scale);
   * - 'relative': 1 − ‖quantized − float‖ / ‖float‖, which is 1 only when the numbers are equal;
   * - 'auto' (default): top1 for [N, C>1] outputs, relative for outputs of one value per sample
   *   (a probability, a score: their cosine is 1 whatever the numbers), cosine otherwise.
   */
  mode?: FidelityMode;
}

const FIDELITY_OPTION_KEYS = optionKeys<FidelityEvaluatorOptions>({ maxDrop: true, maxRelativeDrop: true, calibrationInputs: true, batchNum: true, outputName: true, mode: true });

/** Which comparison 'auto' means for an output of these dims. */
export function fidelityModeFor(dims: readonly number[]): Exclude<FidelityMode, 'auto'> {
  if (dims.length === 2 && (dims[1] ?? 1) > 1) return 'top1';
  const perSample = dims.slice(1).reduce((a, b) => a * b, 1);
  return perSample <= 1 ? 'relative' : 'cosine';
}

/**
 * Label-free: how closely a model reproduces the float model's outputs on the given inputs. The
 * first model evaluated after `reset()` is the reference (accuracy-based calibration resets, then
 * evaluates the float model first), so the float model scores 1.
 */
export class FidelityEvaluator extends AutoCalibrationEvaluator {
  private reference: OrtTensor[] | undefined;

  constructor(private readonly inputs: Feeds[], private readonly options: FidelityEvaluatorOptions = {}) {
    checkOptionKeys(options, FIDELITY_OPTION_KEYS, 'FidelityEvaluator');
    super(options);
    if (inputs.length === 0) throw new EvaluationError('FidelityEvaluator needs at least one batch of inputs');
    const modes: readonly (FidelityMode | undefined)[] = ['auto', 'top1', 'cosine', 'relative', undefined];
    if (!modes.includes(options.mode)) throw new EvaluationError(`FidelityEvaluator mode must be one of auto, top1, cosine, relative, got ${String(options.mode)}`);
  }

  override reset(): void {
    this.reference = undefined;
  }

  calibration(session: CalibrationSession): Promise<void> {
    return runCalibration(session, this.options.calibrationInputs ?? this.inputs, this.options.batchNum ?? 1);
  }

  async evaluate(session: InferenceSession): Promise<number> {
    const outs: OrtTensor[] = [];
    for (const feeds of this.inputs) {
      const t = output(await session.run(feeds), session, this.options.outputName);
      // Copied: a session may reuse its output buffers, and the reference outlives its session.
      outs.push(this.reference ? t : new Tensor('float32', (t.data as Float32Array).slice(), t.dims));
    }
    if (!this.reference) {
      this.reference = outs;
      return 1;
    }
    const requested = this.options.mode ?? 'auto';
    const mode = requested === 'auto' ? fidelityModeFor(outs[0]!.dims) : requested;
    if (mode === 'top1') {
      let same = 0;
      let total = 0;
      outs.forEach((t, i) => {
        const a = argmaxRows(this.reference![i]!);
        const b = argmaxRows(t);
        for (let r = 0; r < a.length; r++) if (a[r] === b[r]) same++;
        total += a.length;
      });
      return same / total;
    }
    // Over every batch at once: per-batch scores of one-value outputs would each be trivially 1.
    const sums = new OutputComparison();
    outs.forEach((t, i) => {
      const a = this.reference![i]!.data as Float32Array;
      const b = t.data as Float32Array;
      if (a.length !== b.length) throw new EvaluationError(`batch ${i}: the output has ${b.length} values, the float model's ${a.length}`);
      sums.add(a, b);
    });
    return mode === 'relative' ? sums.relative() : sums.cosine();
  }
}
