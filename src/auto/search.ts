/**
 * The phases of the automatic search, each a step from one outcome to the next that spends
 * evaluations only through `Evaluations` (and so only within the budget):
 *   1. quantizeAll: every layer in int8, then, when that fails, without the output quantizations;
 *   2. searchFallbacks: the most sensitive layers out of int8, as many as the strategy finds needed;
 *   3. repair: cheaper fixes than float for the layers the search put there (see repairs.ts);
 *   4. refine: each layer still out of int8 tried back in it (options.refine).
 * The orchestrator (auto-calibration.ts) composes them; the words of each outcome are the result's message.
 */
import type { Evaluations } from './evaluation.js';
import { repairFallbacks, type RepairCandidate, type RepairContext, type RepairName } from './repairs.js';
import type { LayerScore } from './sensitivity.js';
import type { SearchSpace } from './space.js';
import { refineGreedily, searchFallbackCount, type StrategyName } from './strategies.js';
import type { AutoPhase, AutoProgressEvent, HistoryEntry } from './types.js';

export type Progress = (phase: AutoPhase, message: string, evaluation?: HistoryEntry, step?: Pick<AutoProgressEvent, 'done' | 'total' | 'layer' | 'score'>) => void;

export interface SearchContext {
  space: SearchSpace;
  evaluations: Evaluations;
  progress: Progress;
  /** The budget in words, for messages. */
  budget: string;
}

/** Where the search stands: the choice it would return, the evaluation that accepted it, and why, in words. */
export interface Outcome {
  /** Layers out of int8; undefined while (or when) nothing passes. */
  fallback?: string[];
  repaired: Map<string, RepairCandidate>;
  refined: string[];
  /** The evaluation of the choice returned. */
  final?: HistoryEntry;
  /** The fully quantized model's last evaluation. */
  full?: HistoryEntry;
  /**
   * Set when quantizeAll turned the output quantizations back to float without evaluating that
   * model: the search's count 0 is then a candidate like any other, and `full` (with them) the
   * state known to fail below it.
   */
  outputsUnprobed?: boolean;
  message: string;
  exhausted: boolean;
}

/** The model with `fallback` out of int8, evaluated (`note` says what else differs). */
async function tryFallback({ space, evaluations, progress }: SearchContext, fallback: readonly string[], note = ''): Promise<HistoryEntry> {
  const entry = await evaluations.score(space.modelFor({ fallback }), [...fallback], `the model with ${fallback.length} layer(s) in ${space.fallbackTo}${note}`);
  progress(fallback.length ? 'search' : 'quantized-evaluation', `${fallback.length} layer(s) in ${space.fallbackTo}${note}: metric ${entry.metric}, loss ${entry.loss}, ${entry.ok ? 'ok' : 'not ok'}`, entry);
  return entry;
}

/** The model without its `outputs` output quantizations, as its evaluation's note says it. */
const outputsNote = (outputs: number) => `, outputs of ${outputs} layers back to float`;

/** The message of a search that ends with all `n` layers quantized, `outputs` of them without their output quantization. */
const allQuantized = (n: number, outputs: number) =>
  `all ${n} layers quantized; the metric drop is within the limit${outputs ? ` once the quantized outputs of ${outputs} layers went back to float` : ''}`;

/**
 * How far above the limit the fully quantized model's loss may be for the model without its output
 * quantizations to be evaluated at once. Further above, giving those up would have to remove most of
 * the loss, which it did not on any model measured (it removed 7% to 66% of it: docs/experiments.md), so
 * that model joins the fallback count's bracket as count 0 and is evaluated only if the search
 * gets there: one evaluation fewer whenever some layer must fall back.
 */
export const OUTPUTS_FIRST_LOSS_RATIO = 2;

/**
 * Every enabled layer in int8. Calibrated output quantizations make layers faster in the deploy
 * model but add rounding; they are the cheapest thing to give up, so a failing model first loses
 * all of them, and the search then falls back whole layers from AMCT's form. `bracketed`: the
 * search that follows narrows a bracket on the count ('interpolated', 'binary'; see OUTPUTS_FIRST_LOSS_RATIO).
 */
export async function quantizeAll(ctx: SearchContext, bracketed = false): Promise<Outcome> {
  const { space, evaluations } = ctx;
  const n = space.size;
  const outcome: Outcome = { repaired: new Map(), refined: [], message: '', exhausted: false };
  if (n === 0) return { ...outcome, message: 'no layer is enabled for quantization, so no quantized model can be produced' };
  let full = await tryFallback(ctx, []);
  const outputs = space.outputs;
  let dropped = false;
  if (!full.ok && outputs > 0 && evaluations.mayEvaluate()) {
    space.dropOutputs();
    const threshold = evaluations.lossThreshold();
    if (bracketed && threshold !== undefined && threshold > 0 && full.loss > OUTPUTS_FIRST_LOSS_RATIO * threshold) {
      ctx.progress('quantized-evaluation', `the loss ${full.loss} is over ${OUTPUTS_FIRST_LOSS_RATIO}× the limit: the quantized outputs of ${outputs} layers go back to float, and that model is evaluated only if the search needs it`);
      return { ...outcome, full, outputsUnprobed: true };
    }
    dropped = true;
    full = await tryFallback(ctx, [], outputsNote(outputs));
  }
  if (full.ok) return { ...outcome, fallback: [], final: full, full, message: allQuantized(n, dropped ? outputs : 0) };
  if (!evaluations.mayEvaluate()) {
    return { ...outcome, full, exhausted: true, message: `the fully quantized model fails the limit and the budget (${ctx.budget}) leaves no evaluation for the search` };
  }
  return { ...outcome, full };
}

/** Falls back the most sensitive layers of `ranking` (AMCT's step 4), as many as `strategy` finds needed. */
export async function searchFallbacks(ctx: SearchContext, from: Outcome, ranking: readonly LayerScore[], strategy: StrategyName): Promise<Outcome> {
  const { space, evaluations } = ctx;
  // The mixed search's first level moves only the layers at 4 bits.
  const order = ranking.map((r) => r.layer).filter((name) => space.movable(name));
  const n = space.fallbackTo === '8-bit' ? order.length : space.size;
  const byCount = new Map<number, HistoryEntry>();
  const found = await searchFallbackCount(
    strategy,
    order.length,
    async (count) => {
      const entry = await tryFallback(ctx, order.slice(0, count), count === 0 ? outputsNote(space.outputs) : '');
      byCount.set(count, entry);
      return entry;
    },
    () => evaluations.mayEvaluate(),
    space.fallbackTo === 'float',
    from.outputsUnprobed ? { lo: -1, loLoss: from.full!.loss } : undefined,
    () => evaluations.lossThreshold(),
  );
  const outcome: Outcome = { ...from, outputsUnprobed: undefined, exhausted: found.exhausted };
  if (found.count === 0) {
    return { ...outcome, fallback: [], final: byCount.get(0), full: byCount.get(0), message: allQuantized(n, space.outputs) };
  }
  if (found.count !== undefined) {
    const fallback = order.slice(0, found.count);
    let message = space.fallbackTo === '8-bit'
      ? `${n - fallback.length} of ${n} block-quantized layers at 4-bit weights; ${fallback.length} moved up to 8 bits: ${fallback.join(', ')}`
      : `${n - fallback.length} of ${n} layers ${space.weightOnly.length ? 'quantized' : 'in int8'}; ${fallback.length} fell back to ${space.fallbackTo}: ${fallback.join(', ')}`;
    if (found.exhausted) message += ' (the budget ended the search early: fewer fallbacks may also pass)';
    return { ...outcome, fallback, final: byCount.get(found.count), message };
  }
  if (found.exhausted) return { ...outcome, message: `no passing configuration was found within the budget (${ctx.budget}); no model is produced` };
  return {
    ...outcome,
    message: space.fallbackTo === 'float'
      ? `no configuration that keeps at least one of the ${n} layers quantized meets the limit: every layer would have to fall back to float, so no quantized model is produced`
      : space.fallbackTo === '8-bit'
        ? `even with every one of the ${n} layers at 8-bit weights the drop exceeds the limit`
        : `even with every one of the ${n} layers at int16 activations the drop exceeds the limit, so no quantized model is produced (try fallback: 'float')`,
  };
}

/** Repairs before float, on the layers the search put there. */
export async function repair(ctx: SearchContext, from: Outcome, repairs: readonly RepairName[], repairContext: RepairContext): Promise<Outcome> {
  const { space, evaluations, progress } = ctx;
  const inFloat = from.fallback;
  if (!inFloat || inFloat.length === 0 || repairs.length === 0 || !evaluations.mayEvaluate()) return from;
  let final = from.final;
  // The repairs change activation quantization; weight-only layers have none to change.
  const repairable = inFloat.filter((name) => space.hasActivations(name));
  if (repairable.length === 0) return from;
  const repaired = await repairFallbacks(
    repairContext,
    repairable,
    repairs,
    async (trial) => {
      const still = inFloat.filter((name) => !trial.has(name));
      const what = `the model with ${still.length} layer(s) in float and ${trial.size} repaired`;
      const entry = await evaluations.score(space.modelFor({ fallback: still, repaired: trial }), still, what);
      entry.repaired = [...trial.values()].map((c) => c.repair);
      progress('repair', `${still.length} layer(s) in float, ${trial.size} repaired: metric ${entry.metric}, loss ${entry.loss}, ${entry.ok ? 'ok' : 'not ok'}`, entry);
      if (entry.ok && (final?.fallbackLayers?.length ?? Infinity) >= still.length) final = entry;
      return entry;
    },
    () => evaluations.mayEvaluate(),
    final?.loss,
    () => evaluations.lossThreshold(),
  );
  if (repaired.size === 0) return { ...from, final };
  const n = space.size;
  const fallback = inFloat.filter((name) => !repaired.has(name));
  const list = [...repaired.values()].map((c) => `${c.repair.layer} (${c.repair.detail})`).join(', ');
  let message = `${n - fallback.length} of ${n} layers quantized; ${repaired.size} of the ${inFloat.length} the search put in float were repaired instead: ${list}`;
  message += fallback.length ? `; ${fallback.length} fell back to float: ${fallback.join(', ')}` : '; none is left in float';
  return { ...from, fallback, repaired, final, message };
}

/**
 * Refinement: each layer still out of int8 (in float, or repaired with 16-bit activations, which
 * onnxruntime runs as float behind Q/DQ) tried back in plain int8, least sensitive first.
 */
export async function refine(ctx: SearchContext, from: Outcome, ranking: readonly LayerScore[]): Promise<Outcome> {
  const { space, evaluations, progress } = ctx;
  const inFloat = from.fallback;
  const wideRepairs = (m: ReadonlyMap<string, RepairCandidate>) => [...m.values()].filter((c) => c.repair.repair === 'int16').map((c) => c.repair.layer);
  if (!inFloat || inFloat.length + wideRepairs(from.repaired).length === 0 || !evaluations.mayEvaluate()) return from;
  const rank = new Map(ranking.map((r, i) => [r.layer, i]));
  const candidates = [...inFloat, ...wideRepairs(from.repaired)].sort((a, b) => (rank.get(b) ?? 0) - (rank.get(a) ?? 0));
  const without = (back: ReadonlySet<string>) => ({
    float: inFloat.filter((name) => !back.has(name)),
    repaired: new Map([...from.repaired].filter(([name]) => !back.has(name))),
  });
  let final = from.final;
  const found = await refineGreedily(candidates, async (back, layer) => {
    const trial = without(back);
    const was = inFloat.includes(layer) ? space.fallbackTo : '16-bit activations';
    const entry = await evaluations.score(space.modelFor({ fallback: trial.float, repaired: trial.repaired }), trial.float, `the model with ${layer} back in int8 from ${was}`);
    if (trial.repaired.size) entry.repaired = [...trial.repaired.values()].map((c) => c.repair);
    progress('refine', `${layer} back in int8 from ${was}: metric ${entry.metric}, loss ${entry.loss}, ${entry.ok ? 'ok, kept' : 'not ok'}`, entry, { layer });
    if (entry.ok) final = entry;
    return entry.ok;
  }, () => evaluations.mayEvaluate());
  const refined = found.kept;
  const { float: fallback, repaired } = without(new Set(refined));
  const n = space.size;
  const early = found.exhausted ? ' (the budget ended it early)' : '';
  let message: string;
  if (refined.length) {
    const wide = wideRepairs(repaired);
    message = `${n - fallback.length} of ${n} layers quantized; the refinement brought ${refined.length} of the ${candidates.length} layer(s) not in int8 back in int8${early}: ${refined.join(', ')}`
      + (fallback.length ? `; ${fallback.length} stay in ${space.fallbackTo}: ${fallback.join(', ')}` : `; none is left in ${space.fallbackTo}`)
      + (wide.length ? `; ${wide.length} keep 16-bit activations: ${wide.join(', ')}` : '')
      + `. Before the refinement: ${from.message}`;
  } else {
    message = `${from.message}; the refinement brought none of the ${candidates.length} layer(s) not in int8 back in int8${early}`;
  }
  return { ...from, fallback, repaired, refined, final, message };
}
