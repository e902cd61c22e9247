/**
 * The evaluator contract of accuracy-based automatic calibration (AMCT's AutoCalibrationEvaluator):
 * the user says how to calibrate, how to score a model, and when a drop is acceptable.
 */
import { OptionsError } from '../errors.js';
import type { CalibrationSession } from '../quant/calibrate/calibrate.js';
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
        throw new OptionsError(`${k} must be a finite number >= 0, got ${String(v).slice(0, 40)}`, 'EVALUATOR_OPTIONS');
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

/**
 * What accuracyBasedAutoCalibration accepts: a subclass instance, or a plain object with
 * `calibration` and `evaluate` (and optionally `metricEval`, `reset`, and `maxDrop` or
 * `maxRelativeDrop` for the default metricEval, whose default limit is maxDrop 0.01).
 */
export interface EvaluatorLike extends MetricLimit {
  calibration(session: CalibrationSession): Promise<void> | void;
  evaluate(session: InferenceSession): Promise<number> | number;
  metricEval?(original: number, quantized: number): [ok: boolean, loss: number];
  reset?(): void;
  /** An instance's limit (AutoCalibrationEvaluator has one). */
  readonly limit?: MetricLimit;
}

/**
 * `e` as an AutoCalibrationEvaluator, or undefined when it lacks calibration or evaluate. `limit`
 * (the CLI's --max-drop) replaces a plain object's own; an instance keeps the one it was built with.
 */
export function asEvaluator(e: unknown, limit?: MetricLimit): AutoCalibrationEvaluator | undefined {
  if (e instanceof AutoCalibrationEvaluator) return e;
  const o = e as Partial<EvaluatorLike> | null;
  if (typeof o !== 'object' || o === null || typeof o.calibration !== 'function' || typeof o.evaluate !== 'function') return undefined;
  const own: MetricLimit = o.limit ?? { maxDrop: o.maxDrop, maxRelativeDrop: o.maxRelativeDrop };
  const chosen = limit && (limit.maxDrop !== undefined || limit.maxRelativeDrop !== undefined) ? limit : own;
  const plain = o as EvaluatorLike;
  // The object's own methods, called on the object (so `this` inside them is the user's object).
  return new (class extends AutoCalibrationEvaluator {
    calibration(session: CalibrationSession): Promise<void> {
      return Promise.resolve(plain.calibration(session));
    }
    evaluate(session: InferenceSession): Promise<number> {
      return Promise.resolve(plain.evaluate(session));
    }
    override reset(): void {
      plain.reset?.();
    }
    override metricEval(original: number, quantized: number): [ok: boolean, loss: number] {
      return plain.metricEval ? plain.metricEval(original, quantized) : super.metricEval(original, quantized);
    }
  })(chosen);
}
