/**
 * Which layers get adaptive rounding (rounding.ts): each layer's rounding is chosen from its own
 * statistics, but whether it is kept is judged on the model's output, one layer at a time in graph
 * order, because a smaller error at a layer's output does not always make a smaller error at the
 * model's: on the PP-OCRv4 detector, taking every layer's adaptive rounding cut the cosine to float
 * from 0.990 to 0.956 although each layer's own error fell.
 *
 * Cost: one pass over the calibration batches for the statistics (both models side by side in one
 * session, layers grouped against the calibration memory budget), then one forward pass over the
 * kept batches per candidate layer in a single session where a bool input per layer switches its
 * weight between nearest and adaptive rounding.
 * Memory: the statistics of one group of layers (see rounding.ts), and the feeds and float output of
 * the first ROUNDING_BATCHES batches.
 */
import type { Kernels } from '../kernels/types.js';
import { GraphEditor } from '../onnx/editor.js';
import { decodeModel, encodeModel } from '../onnx/model.js';
import { DataType, makeTensor, readTensorAsFloat32 } from '../onnx/tensor.js';
import { onnx, type ModelProto } from '../onnx/types.js';
import { attrInt, getConstant, opsetVersion } from '../onnx/graph.js';
import { checkSignal } from '../runtime/deadline.js';
import { createSession, Tensor, type CreateSessionOptions } from '../runtime/ort.js';
import { activationData, admitWithinBudget, replayBatches, type BatchSource, type Feeds } from './calibrate.js';
import { writeFakeQuant, type LayerQuantization } from './rewrite.js';
import { accumulate, inputsPerOutput, MAX_INPUTS, newStats, patchGeometry, roundAdaptively, statsBytes, type PatchGeometry, type RoundingStats } from './rounding.js';

/**
 * The relative drop in the mean model-output error a layer's adaptive rounding must bring to be
 * kept, no batch getting worse: gains on the calibration batches' mean alone did not carry over to
 * other data (PP-OCRv4 recognizer on 192-wide lines: 0.9898 → 0.9882 cosine; with this rule 0.9954).
 */
const MIN_GAIN = 0.02;

/** Calibration batches the model-output check runs on (the first ones). */
export const ROUNDING_BATCHES = 4;

const clone = (m: ModelProto) => decodeModel(encodeModel(m));

/**
 * The fake-quant graph of `plan` beside the float one in one model, its tensors prefixed, so that one
 * run yields each layer's float input and the input the quantized model feeds it.
 */
function twinModel(work: ModelProto, plan: readonly LayerQuantization[]): { model: ModelProto; fakeInput: Map<string, string> } {
  const fake = clone(work);
  writeFakeQuant(fake, plan);
  const model = clone(work);
  const graph = model.graph!;
  const inputs = new Set((graph.input ?? []).map((v) => v.name ?? ''));
  const taken = new Set([...(graph.node ?? []).flatMap((n) => [...(n.output ?? []), n.name ?? '']), ...(graph.initializer ?? []).map((t) => t.name ?? '')]);
  let prefix = 'q::';
  while ([...taken].some((n) => n.startsWith(prefix))) prefix = `q${prefix}`;
  const rename = (n: string) => (n === '' || inputs.has(n) ? n : prefix + n);
  for (const t of fake.graph!.initializer ?? []) {
    t.name = rename(t.name ?? '');
    graph.initializer!.push(t);
  }
  const layers = new Set(plan.map((p) => p.layer.name));
  const fakeInput = new Map<string, string>();
  for (const n of fake.graph!.node ?? []) {
    if (layers.has(n.name ?? '')) fakeInput.set(n.name!, rename(n.input![0]!));
    n.name = prefix + (n.name ?? '');
    n.input = (n.input ?? []).map(rename);
    n.output = (n.output ?? []).map(rename);
    graph.node!.push(n);
  }
  return { model, fakeInput };
}

interface Candidate {
  p: LayerQuantization;
  geometry: PatchGeometry;
  transB: boolean;
  d: number;
  groups: number;
}

export interface RoundingOptions extends CreateSessionOptions {
  batchNum: number;
  memoryBudgetBytes: number;
  activationBytes?: ReadonlyMap<string, number>;
  signal?: AbortSignal;
}

export interface RoundingChoice {
  /** Layers whose statistics allowed adaptive rounding (the others keep nearest, see patchGeometry). */
  considered: string[];
  /** The chosen int8 weights of the layers whose adaptive rounding was kept. */
  kept: Map<string, Int8Array>;
  /** 1 − cosine of the model's first output to float on the kept batches: nearest, then chosen. */
  errorBefore: number;
  errorAfter: number;
}

/** See the module comment. `plan` holds the layers with nearest-rounded weights. */
export async function chooseRoundings(
  work: ModelProto,
  plan: readonly LayerQuantization[],
  consider: ReadonlySet<string>,
  source: BatchSource,
  kernels: Kernels,
  options: RoundingOptions,
): Promise<RoundingChoice> {
  const nodes = new Map((work.graph!.node ?? []).map((n) => [n.name ?? '', n]));
  const todo: Candidate[] = [];
  // The switches are Where nodes (opset 9).
  if ((opsetVersion(work) ?? 1) < 9) return { considered: [], kept: new Map(), errorBefore: 0, errorAfter: 0 };
  for (const p of plan) {
    if (!p.weight || !consider.has(p.layer.name)) continue;
    const node = nodes.get(p.layer.name)!;
    const geometry = patchGeometry(node, p.layer);
    if (typeof geometry === 'string') continue;
    const transB = p.layer.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    const { d, groups } = inputsPerOutput(p.layer, geometry, transB);
    if (d <= MAX_INPUTS) todo.push({ p, geometry, transB, d, groups });
  }
  const none: RoundingChoice = { considered: [], kept: new Map(), errorBefore: 0, errorAfter: 0 };
  if (todo.length === 0) return none;
  checkSignal(options.signal, 'adaptive rounding');

  const { model, fakeInput } = twinModel(work, plan);
  const outputName = work.graph!.output![0]!.name!;
  const kept: { feeds: Feeds; output: Float32Array }[] = [];
  const candidates = new Map<string, Int8Array>();
  const bytesOf = new Map(todo.map((t) => [t.p.layer.name, 2 * (options.activationBytes?.get(t.p.layer.activation) ?? 0) + statsBytes(t.d, t.groups)]));
  let pending = todo;
  while (pending.length) {
    const chosen = admitWithinBudget(pending.map((t) => t.p.layer.name), (n) => bytesOf.get(n)!, options.memoryBudgetBytes);
    const group = pending.filter((t) => chosen.has(t.p.layer.name));
    pending = pending.filter((t) => !chosen.has(t.p.layer.name));
    const stats = new Map<string, RoundingStats>(group.map((t) => [t.p.layer.name, newStats(t.d, t.groups)]));
    const fetch = [...new Set(group.flatMap((t) => [t.p.layer.activation, fakeInput.get(t.p.layer.name)!]))];
    const keep = kept.length === 0;
    await replayBatches(model, fetch, source, options, (out, batch, feeds) => {
      for (const t of group) {
        const float = activationData(out, t.p.layer.activation);
        accumulate(kernels, stats.get(t.p.layer.name)!, t.geometry, float, activationData(out, fakeInput.get(t.p.layer.name)!), out[t.p.layer.activation]!.dims);
      }
      if (keep && batch < ROUNDING_BATCHES) kept.push({ feeds, output: Float32Array.from(activationData(out, outputName)) });
    });
    for (const t of group) {
      const w = readTensorAsFloat32(getConstant(work.graph!, t.p.layer.weight!.name)!);
      const r = roundAdaptively(t.p.layer, t.geometry, t.transB, w, t.p.weight!.q, t.p.weight!.scale, stats.get(t.p.layer.name)!);
      if (r.flipped > 0) candidates.set(t.p.layer.name, r.q);
    }
  }
  const considered = todo.map((t) => t.p.layer.name);
  if (candidates.size === 0) return { ...none, considered };
  return { considered, ...(await keepHelpful(work, plan, candidates, kept, kernels, options)) };
}

/**
 * Greedy, in graph order: a layer's adaptive rounding is kept when the model's output on the kept
 * batches gets closer to float with it (on top of those kept before it), on every batch.
 */
async function keepHelpful(
  work: ModelProto,
  plan: readonly LayerQuantization[],
  candidates: ReadonlyMap<string, Int8Array>,
  batches: readonly { feeds: Feeds; output: Float32Array }[],
  kernels: Kernels,
  options: RoundingOptions,
): Promise<{ kept: Map<string, Int8Array>; errorBefore: number; errorAfter: number }> {
  const fake = clone(work);
  writeFakeQuant(fake, plan);
  const graph = fake.graph!;
  const editor = new GraphEditor(graph);
  const byName = new Map((graph.node ?? []).map((n) => [n.name ?? '', n]));
  const flags = new Map<string, string>();
  for (const p of plan) {
    const q = candidates.get(p.layer.name);
    if (!q) continue;
    const node = byName.get(p.layer.name)!;
    const w = p.weight!;
    const fq = kernels.dequantize(q, w.axis < 0 ? w.scale[0]! : w.scale, 0, w.axis < 0 ? {} : { axis: w.axis, shape: p.layer.weight!.dims });
    const alt = editor.addInitializer(makeTensor(`${p.layer.name}.weight_adaptive`, DataType.FLOAT, p.layer.weight!.dims, fq));
    const flag = editor.name(`${p.layer.name}.adaptive_rounding`);
    graph.input = [...(graph.input ?? []), onnx.ValueInfoProto.create({ name: flag, type: { tensorType: { elemType: DataType.BOOL, shape: { dim: [] } } } })];
    const [chosen] = editor.insertBefore(node, { opType: 'Where', name: `${p.layer.name}/AdaptiveRounding`, inputs: [flag, alt, node.input![1]!] });
    node.input![1] = chosen!;
    flags.set(p.layer.name, flag);
  }
  editor.commit();
  const session = await createSession(encodeModel(fake), options);
  const on = new Set<string>();
  const errors = async () => {
    const extra = Object.fromEntries([...flags].map(([layer, flag]) => [flag, new Tensor('bool', [on.has(layer)], [])]));
    const each: number[] = [];
    for (const b of batches) {
      const out = await session.run({ ...b.feeds, ...extra });
      each.push(1 - kernels.cosine(b.output, out[session.outputNames[0]!]!.data as Float32Array));
    }
    return each;
  };
  const mean = (e: number[]) => e.reduce((a, b) => a + b, 0) / e.length;
  try {
    let bestEach = await errors();
    const errorBefore = mean(bestEach);
    let best = errorBefore;
    for (const layer of flags.keys()) {
      checkSignal(options.signal, `adaptive rounding of '${layer}'`);
      on.add(layer);
      const each = await errors();
      const e = mean(each);
      if (e < best * (1 - MIN_GAIN) && each.every((v, i) => v <= bestEach[i]!)) {
        best = e;
        bestEach = each;
      } else on.delete(layer);
    }
    return { kept: new Map([...on].map((l) => [l, candidates.get(l)!])), errorBefore, errorAfter: best };
  } finally {
    await session.release();
  }
}
