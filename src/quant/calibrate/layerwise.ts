/**
 * Every quantized layer run alone, in float and fake-quantized, on the float input activations the
 * calibration batches produce: what both the sensitivity ranking and bias correction compare.
 *
 * Memory: activations are never stored. The batches are replayed through one session per group of
 * layers (see withFakeCopies); per batch only the float and fake-quant outputs of that group are
 * alive, groups being sized by their input bytes against the budget. Each group's session also holds
 * the whole float model and a fake-quant copy of the group's weights, so groups are bounded by those
 * weights too (FAKE_WEIGHTS_SHARE): on a model of large layers one group would double the weights
 * onnxruntime holds.
 */
import { GraphEditor } from '../../onnx/editor.js';
import { cloneModel } from '../../onnx/model.js';
import { graphAt } from '../../onnx/scope.js';
import { onnx, type ModelProto } from '../../onnx/types.js';
import type { CreateSessionOptions } from '../../runtime/ort.js';
import { activationData, admitWithinBudget, replayBatches, type BatchSource } from './calibrate.js';
import { writeFakeQuant, type LayerQuantization } from '../export/rewrite.js';
import { writeFakeQuantWeightOnly, type WeightOnlyQuantization } from '../export/weight-only.js';

/** What runs alone: a layer with its activations quantized, or a weight-only one. */
export type Compared = LayerQuantization | WeightOnlyQuantization;
const isWeightOnly = (c: Compared): c is WeightOnlyQuantization => 'weights' in c;

/**
 * The most fake-quant weight bytes one group's session holds: this share of the compared layers'
 * weights, or FAKE_WEIGHTS_MIN_BYTES where that is more. Each group replays every batch through the
 * whole model, so a smaller share costs time; under the floor (every model in bench/ but the app's
 * 96 MB MLP) there is one group, as before.
 */
export const FAKE_WEIGHTS_SHARE = 0.25;
export const FAKE_WEIGHTS_MIN_BYTES = 32 * 2 ** 20;

/** Bytes of the float32 weights a layer's fake-quant copy adds to a session. */
function fakeWeightBytes(c: Compared): number {
  if (!isWeightOnly(c)) return c.weight?.fq.byteLength ?? 0;
  let bytes = 0;
  for (const { q } of c.weights.values()) bytes += 'blockSize' in q ? q.vectors * q.length * 4 : q.fq.byteLength;
  return bytes;
}

/**
 * The calibrated graph with a fake-quantized copy of each given layer beside it, reading the same
 * activation, so one run yields every layer's float output and its fake-quant output on the float
 * input: the activations never leave the session.
 */
function withFakeCopies(work: ModelProto, group: readonly Compared[]): { model: ModelProto; outputs: Map<string, { float: string; fake: string }> } {
  const model = cloneModel(work);
  const names = new GraphEditor(model.graph!);
  const outputs = new Map<string, { float: string; fake: string }>();
  const copies: LayerQuantization[] = [];
  const weightOnly: WeightOnlyQuantization[] = [];
  for (const p of group) {
    // A layer in an If branch gets its copy in that branch; its outputs are threaded out (see replayBatches).
    const graph = graphAt(model.graph!, p.layer.scope)!;
    const original = graph.node!.find((n) => n.name === p.layer.name)!;
    const copy = onnx.NodeProto.decode(onnx.NodeProto.encode(original as onnx.NodeProto).finish());
    copy.name = names.name(`${p.layer.name}::fake_quant`);
    copy.output = [names.name(`${original.output![0]!}::fake_quant`)];
    // Appended after every producer of its inputs, so the node order stays topological.
    graph.node!.push(copy);
    outputs.set(p.layer.name, { float: original.output![0]!, fake: copy.output[0]! });
    if (isWeightOnly(p)) weightOnly.push({ ...p, layer: { ...p.layer, name: copy.name } });
    else copies.push({ ...p, layer: { ...p.layer, name: copy.name } });
  }
  writeFakeQuant(model, copies);
  writeFakeQuantWeightOnly(model, weightOnly);
  return { model, outputs };
}

export interface LayerwiseOptions extends CreateSessionOptions {
  batchNum: number;
  /**
   * Bytes of one batch of each activation (from calibration). An activation of unknown size (its
   * factors came from a record) gets a group of its own, so the bound holds without knowing it.
   */
  activationBytes?: ReadonlyMap<string, number>;
  memoryBudgetBytes: number;
  /** The most fake-quant weight bytes in one group (default: see FAKE_WEIGHTS_SHARE). */
  fakeWeightBudgetBytes?: number;
  onBatch?: (info: { group: number; groups: number; batch: number }) => void;
  signal?: AbortSignal;
}

/**
 * Calls `onLayer` with each layer's float and fake-quant outputs, for every calibration batch, one
 * group of layers after another (see the module comment).
 */
export async function compareLayers<T extends Compared>(
  work: ModelProto,
  plan: readonly T[],
  batches: BatchSource,
  options: LayerwiseOptions,
  onLayer: (layer: T, float: Float32Array, fake: Float32Array, dims: readonly number[]) => void,
): Promise<void> {
  const size = (tensor: string) => options.activationBytes?.get(tensor) ?? Infinity;
  // Per activation: the bytes its batch holds (a MatMul of two activations also holds its second
  // input) and the fake-quant weights of the layers reading it.
  const need = new Map<string, { bytes: number; weights: number }>();
  let allWeights = 0;
  for (const p of plan) {
    const n = need.get(p.layer.activation) ?? { bytes: size(p.layer.activation), weights: 0 };
    if (p.layer.second && !isWeightOnly(p)) n.bytes += size(p.layer.second);
    n.weights += fakeWeightBytes(p);
    allWeights += fakeWeightBytes(p);
    need.set(p.layer.activation, n);
  }
  const weightBudget = options.fakeWeightBudgetBytes ?? Math.max(FAKE_WEIGHTS_MIN_BYTES, FAKE_WEIGHTS_SHARE * allWeights);
  // Groups share an activation fetch, so plan by activation, then take their layers.
  let pending = [...need.keys()];
  const groups: T[][] = [];
  while (pending.length) {
    const chosen = admitWithinBudget(pending, (a) => need.get(a)!.bytes, options.memoryBudgetBytes, { bytesOf: (a) => need.get(a)!.weights, budget: weightBudget });
    groups.push(plan.filter((p) => chosen.has(p.layer.activation)));
    pending = pending.filter((a) => !chosen.has(a));
  }
  for (const [g, group] of groups.entries()) {
    const { model, outputs } = withFakeCopies(work, group);
    const fetch = [...outputs.values()].flatMap((o) => [o.float, o.fake]);
    await replayBatches(model, fetch, batches, options, (out, batch) => {
      for (const p of group) {
        const o = outputs.get(p.layer.name)!;
        const float = activationData(out, o.float);
        // Empty: the layer is in an If branch this batch did not take.
        if (float.length) onLayer(p, float, activationData(out, o.fake), out[o.float]!.dims);
      }
      options.onBatch?.({ group: g + 1, groups: groups.length, batch: batch + 1 });
    });
  }
}
