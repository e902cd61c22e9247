/**
 * Ready-made evaluators: top-1 accuracy against labels, and label-free fidelity to the float model.
 */
import { EvaluationError } from '../errors.js';
import { getKernels } from '../kernels/wasm.js';
import type { CalibrationSession, Feeds } from '../quant/calibrate.js';
import type { InferenceSession, OrtTensor } from '../runtime/ort.js';
import { AutoCalibrationEvaluator, type MetricLimit } from './evaluator.js';

export interface DataEvaluatorOptions extends MetricLimit {
  /** Batches for calibration (default: the evaluation batches); the first `batchNum` are used. */
  calibrationInputs?: Feeds[];
  /** Calibration batches to run (default 1, AMCT's batch_num). */
  batchNum?: number;
  /** Output to score (default: the session's first output). */
  outputName?: string;
}

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

export interface FidelityEvaluatorOptions extends DataEvaluatorOptions {
  /** 'top1': agreement of the row-wise argmax; 'cosine': mean cosine of the outputs; 'auto' (default): top1 for [N, C>1] outputs. */
  mode?: 'auto' | 'top1' | 'cosine';
}

/**
 * Label-free: how closely a model reproduces the float model's outputs on the given inputs. The
 * first model evaluated after `reset()` is the reference (accuracy-based calibration resets, then
 * evaluates the float model first), so the float model scores 1.
 */
export class FidelityEvaluator extends AutoCalibrationEvaluator {
  private reference: OrtTensor[] | undefined;

  constructor(private readonly inputs: Feeds[], private readonly options: FidelityEvaluatorOptions = {}) {
    super(options);
    if (inputs.length === 0) throw new EvaluationError('FidelityEvaluator needs at least one batch of inputs');
  }

  override reset(): void {
    this.reference = undefined;
  }

  calibration(session: CalibrationSession): Promise<void> {
    return runCalibration(session, this.options.calibrationInputs ?? this.inputs, this.options.batchNum ?? 1);
  }

  async evaluate(session: InferenceSession): Promise<number> {
    const outs: OrtTensor[] = [];
    for (const feeds of this.inputs) outs.push(output(await session.run(feeds), session, this.options.outputName));
    if (!this.reference) {
      this.reference = outs;
      return 1;
    }
    const mode = this.options.mode ?? 'auto';
    const classifier = mode === 'top1' || (mode === 'auto' && outs[0]!.dims.length === 2 && (outs[0]!.dims[1] ?? 1) > 1);
    if (classifier) {
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
    const k = await getKernels();
    let sum = 0;
    outs.forEach((t, i) => (sum += k.cosine(this.reference![i]!.data as Float32Array, t.data as Float32Array)));
    return sum / outs.length;
  }
}
