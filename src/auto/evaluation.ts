/**
 * The search's one costly step: a model scored by the user's evaluator. Every evaluation goes
 * through here, so the history, the budget (maxEvaluations, maxSeconds), cancellation and the checks
 * on what the evaluator returns live in one place, and the search's phases only ask for verdicts.
 */
import { EvaluationError } from '../errors.js';
import { checkSignal, withDeadline } from '../runtime/deadline.js';
import { createSession, type CreateSessionOptions, type SessionModel } from '../runtime/ort.js';
import { describeError, describeValue } from '../text.js';
import type { AutoCalibrationEvaluator } from './evaluator.js';
import type { HistoryEntry } from './types.js';

const now = () => performance.now() / 1000;

export interface EvaluationLimits {
  signal?: AbortSignal;
  /** Seconds one evaluate() call may take. */
  timeoutSeconds?: number;
  maxEvaluations: number;
  maxSeconds: number;
  /** When the run started (seconds, performance clock): maxSeconds counts from here. */
  start: number;
}

export class Evaluations {
  readonly history: HistoryEntry[] = [];
  /** The float model's metric, once `reference` has run: every later verdict is against it. */
  original?: number;

  constructor(
    private readonly evaluator: AutoCalibrationEvaluator,
    private readonly sessionOptions: CreateSessionOptions,
    private readonly limits: EvaluationLimits,
  ) {}

  /** Whether the budget allows one more evaluation. */
  mayEvaluate(): boolean {
    return this.history.length < this.limits.maxEvaluations && now() - this.limits.start < this.limits.maxSeconds;
  }

  /**
   * The loss at which the evaluator's verdict turns, as far as its verdicts so far tell: its limit
   * (maxDrop, else maxRelativeDrop: the loss the default metricEval returns) where every verdict
   * agrees with it, else halfway between the largest passing and the smallest failing loss;
   * undefined before a failure, or when passing and failing losses overlap (a metricEval whose loss
   * does not order its verdicts).
   */
  lossThreshold(): number | undefined {
    let pass = -Infinity;
    let fail = Infinity;
    for (const e of this.history) {
      if (e.ok) pass = Math.max(pass, e.loss);
      else fail = Math.min(fail, e.loss);
    }
    // The float model's pass is always in the history, so `pass` is finite once `fail` is.
    if (!(pass < fail) || !Number.isFinite(fail)) return undefined;
    const limit = this.evaluator.limit?.maxDrop ?? this.evaluator.limit?.maxRelativeDrop;
    return limit !== undefined && pass <= limit && limit < fail ? limit : (pass + fail) / 2;
  }

  /** The float model's evaluation: it sets `original` and must pass against itself. */
  async reference(model: SessionModel, what: string): Promise<HistoryEntry> {
    const entry = await this.score(model, null, what);
    this.original = entry.metric;
    if (!entry.ok) {
      throw new EvaluationError(`metricEval(original, original) is not ok for original = ${entry.metric}: the evaluator's limit can never be met`);
    }
    return entry;
  }

  /** Scores `model` and judges it against the float metric; the entry is added to the history. */
  score(model: SessionModel, fallbackLayers: string[] | null, what: string): Promise<HistoryEntry> {
    return this.run(model, fallbackLayers, what, this.original);
  }

  private async run(model: SessionModel, fallbackLayers: string[] | null, what: string, original?: number): Promise<HistoryEntry> {
    const { signal, timeoutSeconds } = this.limits;
    checkSignal(signal, what);
    const start = now();
    const session = await createSession(model, this.sessionOptions);
    let metric: unknown;
    try {
      metric = await withDeadline(
        () => this.evaluator.evaluate(session),
        (cause) => new EvaluationError(`evaluator.evaluate failed on ${what}: ${describeError(cause)}`, { cause }),
        { signal, seconds: timeoutSeconds, what: `evaluator.evaluate on ${what}` },
      );
    } finally {
      // The evaluator may have released it already; a second release is not the user's error.
      await session.release().catch(() => {});
    }
    if (typeof metric !== 'number' || !Number.isFinite(metric)) {
      throw new EvaluationError(`evaluator.evaluate returned ${describeValue(metric)} for ${what}; it must return a finite number (higher is better)`);
    }
    let verdict: unknown;
    try {
      verdict = this.evaluator.metricEval(original ?? metric, metric);
    } catch (cause) {
      throw new EvaluationError(`evaluator.metricEval failed on ${what}: ${describeError(cause)}`, { cause });
    }
    if (!(Array.isArray(verdict) && typeof verdict[0] === 'boolean' && typeof verdict[1] === 'number' && !Number.isNaN(verdict[1]))) {
      throw new EvaluationError(`evaluator.metricEval returned ${describeValue(verdict)} for ${what}; it must return [ok: boolean, loss: number]`);
    }
    const [ok, loss] = verdict as [boolean, number];
    const entry: HistoryEntry = { fallbackLayers, metric, loss, ok, seconds: now() - start };
    this.history.push(entry);
    return entry;
  }
}
