/**
 * Layer sensitivity: each quantized layer runs alone, in float and fake-quantized, on the input
 * activations the calibration batches produce, and its two outputs are compared. The lowest scores
 * are the layers quantization hurts most.
 *
 * Memory: activations are never stored. The batches are replayed; per batch only the activations of
 * one group of layers are alive, groups being sized so that their per-batch bytes stay within the
 * budget (as for calibration).
 */
import type { Kernels } from '../kernels/types.js';
import { getConstant } from '../onnx/graph.js';
import { decodeModel, encodeModel } from '../onnx/model.js';
import { DataType } from '../onnx/tensor.js';
import { onnx, type ModelProto, type NodeProto, type TensorProto } from '../onnx/types.js';
import { createSession, type CreateSessionOptions, type OrtTensor } from '../runtime/ort.js';
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

const inputName = (layer: string) => `${layer}::input`;

/**
 * A model holding only the given layers side by side: each reads its own graph input and keeps its
 * weights, so one session run evaluates all of them.
 */
function layersModel(work: ModelProto, layers: readonly LayerInfo[]): ModelProto {
  const graph = work.graph!;
  const byName = new Map((graph.node ?? []).map((n) => [n.name ?? '', n]));
  const initializers = new Map<string, TensorProto>();
  const nodes: NodeProto[] = [];
  for (const l of layers) {
    const original = byName.get(l.name)!;
    const node = onnx.NodeProto.decode(onnx.NodeProto.encode(original as onnx.NodeProto).finish());
    node.input = [inputName(l.name), ...(node.input ?? []).slice(1)];
    node.output = [node.output[0]!];
    nodes.push(node);
    for (const name of node.input.slice(1)) {
      if (name && !initializers.has(name)) initializers.set(name, { ...getConstant(graph, name)!, name });
    }
  }
  const floatType = onnx.TypeProto.create({ tensorType: { elemType: DataType.FLOAT } });
  const model = onnx.ModelProto.create({
    irVersion: work.irVersion,
    opsetImport: work.opsetImport,
    graph: onnx.GraphProto.create({
      name: 'layers',
      node: nodes,
      initializer: [...initializers.values()],
      input: layers.map((l) => onnx.ValueInfoProto.create({ name: inputName(l.name), type: floatType })),
      output: nodes.map((n) => onnx.ValueInfoProto.create({ name: n.output![0]! })),
    }),
  });
  return decodeModel(encodeModel(model));
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
    const layers = group.map((p) => p.layer);
    const floatModel = layersModel(work, layers);
    const floatBytes = encodeModel(floatModel);
    const fakeModel = decodeModel(floatBytes);
    writeFakeQuant(fakeModel, group.map((p) => ({ ...p, layer: { ...p.layer, activation: inputName(p.layer.name) } })));
    const outputOf = new Map(floatModel.graph!.node!.map((n) => [n.name!, n.output![0]!]));
    const floatSession = await createSession(floatBytes, options);
    const fakeSession = await createSession(encodeModel(fakeModel), options);
    try {
      const activations = [...new Set(layers.map((l) => l.activation))];
      await replayBatches(work, activations, batches, options, async (out, batch) => {
        const feeds: Record<string, OrtTensor> = {};
        for (const l of layers) {
          activationData(out, l.activation);
          feeds[inputName(l.name)] = out[l.activation]!;
        }
        const f = await floatSession.run(feeds);
        const q = await fakeSession.run(feeds);
        for (const l of layers) {
          const name = outputOf.get(l.name)!;
          const score = similarity(f[name]!.data as Float32Array, q[name]!.data as Float32Array);
          const t = totals.get(l.name) ?? { sum: 0, n: 0 };
          t.sum += score;
          t.n++;
          totals.set(l.name, t);
        }
        options.onBatch?.({ group: g + 1, groups: groups.length, batch: batch + 1 });
      });
    } finally {
      await floatSession.release();
      await fakeSession.release();
    }
  }
  return plan
    .map((p) => {
      const t = totals.get(p.layer.name)!;
      return { layer: p.layer.name, score: t.sum / t.n };
    })
    .sort((a, b) => a.score - b.score);
}
