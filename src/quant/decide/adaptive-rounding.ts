/**
 * The adaptive rounding pass, after calibration: which layers keep a rounding other than nearest.
 */
import { type BatchSource } from '../calibrate/calibrate.js';
import { type QuantRecord } from '../config/record.js';
import { planLayers } from '../export/build.js';
import { type LayerQuantization } from '../export/rewrite.js';
import { type LayerInfo } from '../prepare/registry.js';
import { type QuantizationSession, type RoundingPassOptions, type RoundingSummary } from '../types.js';
import { chooseRoundings } from './rounding-search.js';
import { encodeRounding } from './rounding.js';

/**
 * Adaptive rounding (rounding.ts, rounding-search.ts) of the enabled layers whose record has no
 * `round_w` yet; records the choice (a layer that keeps nearest rounding gets ""). Returns the
 * layers kept and the model-output error before and after, on the first calibration batches.
 */
export async function roundWeights(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: RoundingPassOptions,
): Promise<RoundingSummary | undefined> {
  const todo = new Set(layers.filter((l) => l.weight && record.layers[l.name] && record.layers[l.name]!.round_w === undefined).map((l) => l.name));
  if (todo.size === 0) return undefined;
  return chooseInto(q, planLayers(q, layers, record), todo, record, await batches(), options);
}
/**
 * Chooses the rounding of the `todo` layers of `plan` (see rounding-search.ts) and writes it into
 * `record`: `round_w` for each of them ("" where nearest stays, so a reused record needs no data)
 * and, with `bias_correction`, the `bias_shift` that goes with it.
 */
export async function chooseInto(q: QuantizationSession, plan: readonly LayerQuantization[], todo: ReadonlySet<string>, record: QuantRecord, source: BatchSource, options: RoundingPassOptions): Promise<RoundingSummary> {
  const choice = await chooseRoundings(q.work, plan, todo, source, q.kernels, {
    ...options,
    batchNum: q.config.batch_num,
    biasCorrection: q.config.bias_correction === true,
  });
  for (const p of plan) {
    if (!todo.has(p.layer.name) || !p.weight) continue;
    const chosen = choice.kept.get(p.layer.name);
    const rec = record.layers[p.layer.name]!;
    rec.round_w = chosen ? encodeRounding(chosen.q, p.weight.q) : '';
    // The layer's whole mean error with this rounding: it replaces a shift the record may hold.
    if (chosen?.shift) rec.bias_shift = Array.from(chosen.shift);
  }
  // A layer whose chosen rounding is nearest (its bias shifted only) does not count as rounded.
  const layers = [...choice.kept.keys()].filter((n) => record.layers[n]!.round_w !== '');
  return { layers, considered: choice.considered.length, errorBefore: choice.errorBefore, errorAfter: choice.errorAfter };
}
