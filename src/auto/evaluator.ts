/**
 * The evaluator contract of accuracy-based automatic calibration (AMCT's AutoCalibrationEvaluator):
 * the user says how to calibrate, how to score a model, and when a drop is acceptable.
 */
import { AutoquantError } from '../errors.js';
import type { CalibrationSession } from '../quant/calibrate.js';
import type { InferenceSession } from '../runtime/ort.js';

export interface MetricLimit {
  /** Largest acceptable absolute drop (original − quantized). */
  maxDrop?: number;
  /** Largest acceptable drop relative to the original metric ((original − quantized) / |original|). */
  maxRelativeDrop?: number;
}

export abstract class AutoCalibrationEvaluator {
  readonly limit: MetricLimit;

  /** `limit` may be a larger options object; only maxDrop and maxRelativeDrop are read (default maxDrop 0.01). */
  constructor(limit: MetricLimit = {}) {
    const { maxDrop, maxRelativeDrop } = limit;
    for (const [k, v] of [['maxDrop', maxDrop], ['maxRelativeDrop', maxRelativeDrop]] as const) {
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && Number.isFinite(v))) {
        throw new AutoquantError('EVALUATOR_OPTIONS', `${k} must be a finite number >= 0, got ${String(v).slice(0, 40)}`);
      }
    }
    this.limit = Object.freeze(maxDrop === undefined && maxRelativeDrop === undefined ? { maxDrop: 0.01 } : { maxDrop, maxRelativeDrop });
  }

  /** Runs `batch_num` forward passes through `session` (calibration data). */
  abstract calibration(session: CalibrationSession): Promise<void>;

  /** Scores a model; higher is better. */
  abstract evaluate(session: InferenceSession): Promise<number>;

  /**
   * Called when an automatic calibration starts, before the float model is evaluated: evaluators
   * that cache anything per run (such as reference outputs) drop it here.
   */
  reset(): void {}

  /**
   * Whether `quantized` is acceptable next to `original`, and the loss. The default compares the drop
   * with `maxDrop` (absolute) or `maxRelativeDrop`; when both are given both must hold.
   */
  metricEval(original: number, quantized: number): [ok: boolean, loss: number] {
    const loss = original - quantized;
    const relative = original === 0 ? (loss === 0 ? 0 : Infinity) : loss / Math.abs(original);
    let ok = true;
    if (this.limit.maxDrop !== undefined) ok &&= loss <= this.limit.maxDrop + 1e-12;
    if (this.limit.maxRelativeDrop !== undefined) ok &&= relative <= this.limit.maxRelativeDrop + 1e-12;
    return [ok, this.limit.maxDrop === undefined ? relative : loss];
  }
}
