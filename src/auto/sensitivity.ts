/**
 * Layer sensitivity: each quantized layer runs alone, in float and fake-quantized, on the input
 * activations the calibration batches produce, and its two outputs are compared. The lowest scores
 * are the layers quantization hurts most.
 *
 * Memory: activations are never stored. The batches are replayed through one session per group of
 * layers (see withFakeCopies); per batch only the float and fake-quant outputs of that group are
 * alive, groups being sized by their input bytes against the budget.
 */
import type { Kernels } from '../kernels/types.js';
import { GraphEditor } from '../onnx/editor.js';
import { decodeModel, encodeModel } from '../onnx/model.js';
import { onnx, type ModelProto } from '../onnx/types.js';
import type { CreateSessionOptions } from '../runtime/ort.js';
import { activationData, admitWithinBudget, replayBatches, type BatchSource } from '../quant/calibrate.js';
import type { LayerInfo } from '../quant/registry.js';
import { writeFakeQuant, type LayerQuantization } from '../quant/rewrite.js';

/** Similarity of a layer's fake-quant output to its float output; higher is more similar. */
export type SensitivityFunction = (float: Float32Array, quantized: Float32Array) => number;
export type SensitivityName = 'cosine' | 'mse' | 'sqnr';

export interface LayerScore {
  layer: string;
  score: number;
}

function isAllZero(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) return false;
  return true;
}

/** The built-in measures: AMCT's 0.5 + 0.5·cos (1 when the float output is all zero), −MSE, SQNR in dB. */
export function sensitivityFunction(k: Kernels, s: SensitivityName | SensitivityFunction): SensitivityFunction {
  if (typeof s === 'function') return s;
  switch (s) {
    case 'cosine':
      return (f, q) => (isAllZero(f) ? 1 : isAllZero(q) ? 0 : 0.5 + 0.5 * k.cosine(f, q));
    case 'mse':
      return (f, q) => -k.mse(f, q);
    case 'sqnr':
      return (f, q) => k.sqnr(f, q);
  }
}

/**
 * The calibrated graph with a fake-quantized copy of each given layer beside it, reading the same
 * activation, so one run yields every layer's float output and its fake-quant output on the float
 * input: the activations never leave the session.
 */
function withFakeCopies(work: ModelProto, group: readonly LayerQuantization[]): { model: ModelProto; outputs: Map<string, { float: string; fake: string }> } {
  const model = decodeModel(encodeModel(work));
  const graph = model.graph!;
  const byName = new Map((graph.node ?? []).map((n) => [n.name ?? '', n]));
  const names = new GraphEditor(graph);
  const outputs = new Map<string, { float: string; fake: string }>();
  const copies: LayerQuantization[] = [];
  for (const p of group) {
    const original = byName.get(p.layer.name)!;
    const copy = onnx.NodeProto.decode(onnx.NodeProto.encode(original as onnx.NodeProto).finish());
    copy.name = names.name(`${p.layer.name}::fake_quant`);
    copy.output = [names.name(`${original.output![0]!}::fake_quant`)];
    // Appended after every producer of its inputs, so the node order stays topological.
    graph.node!.push(copy);
    outputs.set(p.layer.name, { float: original.output![0]!, fake: copy.output[0]! });
    copies.push({ ...p, layer: { ...p.layer, name: copy.name } });
  }
  writeFakeQuant(model, copies);
  return { model, outputs };
}

export interface RankingOptions extends CreateSessionOptions {
  batchNum: number;
  /**
   * Bytes of one batch of each activation (from calibration). An activation of unknown size (its
   * factors came from a record) gets a group of its own, so the bound holds without knowing it.
   */
  activationBytes?: ReadonlyMap<string, number>;
  memoryBudgetBytes: number;
  onBatch?: (info: { group: number; groups: number; batch: number }) => void;
}

/**
 * Scores every layer of `plan` (mean over the calibration batches) and returns them sorted
 * ascending: the first is the most sensitive.
 */
export async function rankLayers(
  work: ModelProto,
  plan: readonly LayerQuantization[],
  batches: BatchSource,
  similarity: SensitivityFunction,
  options: RankingOptions,
): Promise<LayerScore[]> {
  const bytesOf = (activation: string) => options.activationBytes?.get(activation) ?? Infinity;
  // Groups share an activation fetch, so plan by activation, then take their layers.
  let pending = [...new Set(plan.map((p) => p.layer.activation))];
  const groups: LayerQuantization[][] = [];
  while (pending.length) {
    const chosen = admitWithinBudget(pending, bytesOf, options.memoryBudgetBytes);
    groups.push(plan.filter((p) => chosen.has(p.layer.activation)));
    pending = pending.filter((a) => !chosen.has(a));
  }

  const totals = new Map<string, { sum: number; n: number }>();
  for (const [g, group] of groups.entries()) {
    const { model, outputs } = withFakeCopies(work, group);
    const fetch = [...outputs.values()].flatMap((o) => [o.float, o.fake]);
    await replayBatches(model, fetch, batches, options, (out, batch) => {
      for (const [layer, o] of outputs) {
        const score = similarity(activationData(out, o.float), activationData(out, o.fake));
        const t = totals.get(layer) ?? { sum: 0, n: 0 };
        t.sum += score;
        t.n++;
        totals.set(layer, t);
      }
      options.onBatch?.({ group: g + 1, groups: groups.length, batch: batch + 1 });
    });
  }
  return plan
    .map((p) => {
      const t = totals.get(p.layer.name)!;
      return { layer: p.layer.name, score: t.sum / t.n };
    })
    .sort((a, b) => a.score - b.score);
}
