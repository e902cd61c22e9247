/**
 * Which layers get adaptive rounding (rounding.ts): each layer's rounding is chosen from its own
 * statistics, but whether it is kept is judged on the model's output, one layer at a time in graph
 * order, because a smaller error at a layer's output does not always make a smaller error at the
 * model's: on the PP-OCRv4 detector, taking every layer's adaptive rounding cut the cosine to float
 * from 0.990 to 0.956 although each layer's own error fell.
 *
 * Cost: one pass over the calibration batches for the statistics (both models side by side in one
 * session, layers grouped against the calibration memory budget), then one forward pass over the
 * sampled batches per candidate layer in a single session where a bool input per layer switches its
 * weight between nearest and adaptive rounding.
 * Memory: the statistics of one group of layers (see rounding.ts), and the feeds and float output of
 * the first ROUNDING_BATCHES batches.
 */
import { CalibrationError } from '../errors.js';
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
import { dequantizeWeight } from './weights.js';
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
  /** Also try each layer's rounding with the mean error it leaves taken off its bias (`bias_correction`). */
  biasCorrection?: boolean;
  memoryBudgetBytes: number;
  activationBytes?: ReadonlyMap<string, number>;
  signal?: AbortSignal;
}

export interface RoundingChoice {
  /** Layers whose statistics allowed adaptive rounding (the others keep nearest, see patchGeometry). */
  considered: string[];
  /** The chosen int8 weights (and bias shift, where it helped) of the layers whose adaptive rounding was kept. */
  kept: Map<string, KeptRounding>;
  /** 1 − cosine of the model's first output to float on the sampled batches: nearest, then chosen. */
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
  const none: RoundingChoice = { considered: [], kept: new Map(), errorBefore: 0, errorAfter: 0 };
  // The switches are Where nodes (opset 9).
  if ((opsetVersion(work) ?? 1) < 9) return none;
  const nodes = new Map((work.graph!.node ?? []).map((n) => [n.name ?? '', n]));
  const todo: Candidate[] = [];
  for (const p of plan) {
    if (!p.weight || !consider.has(p.layer.name)) continue;
    const node = nodes.get(p.layer.name)!;
    const geometry = patchGeometry(node, p.layer);
    if (typeof geometry === 'string') continue;
    const transB = p.layer.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    const { d, groups } = inputsPerOutput(p.layer, geometry, transB);
    if (d <= MAX_INPUTS) todo.push({ p, geometry, transB, d, groups });
  }
  if (todo.length === 0) return none;
  checkSignal(options.signal, 'adaptive rounding');

  const { model, fakeInput } = twinModel(work, plan);
  const outputName = work.graph!.output![0]!.name!;
  const sampled: { feeds: Feeds; output: Float32Array }[] = [];
  const candidates = new Map<string, RoundingCandidate>();
  const bytesOf = new Map(todo.map((t) => [t.p.layer.name, 2 * (options.activationBytes?.get(t.p.layer.activation) ?? 0) + statsBytes(t.d, t.groups)]));
  let pending = todo;
  while (pending.length) {
    const chosen = admitWithinBudget(pending.map((t) => t.p.layer.name), (n) => bytesOf.get(n)!, options.memoryBudgetBytes);
    const group = pending.filter((t) => chosen.has(t.p.layer.name));
    pending = pending.filter((t) => !chosen.has(t.p.layer.name));
    const stats = new Map<string, RoundingStats>(group.map((t) => [t.p.layer.name, newStats(t.d, t.groups)]));
    const fetch = [...new Set(group.flatMap((t) => [t.p.layer.activation, fakeInput.get(t.p.layer.name)!]))];
    const keep = sampled.length === 0;
    await replayBatches(model, fetch, source, options, (out, batch, feeds) => {
      for (const t of group) {
        const float = activationData(out, t.p.layer.activation);
        accumulate(kernels, stats.get(t.p.layer.name)!, t.geometry, float, activationData(out, fakeInput.get(t.p.layer.name)!), out[t.p.layer.activation]!.dims);
      }
      if (keep && batch < ROUNDING_BATCHES) {
        // The check compares the model's first output, as the model-output ranking does.
        if (out[outputName]?.type !== 'float32') throw new CalibrationError(`adaptive rounding compares the model's first output '${outputName}', which is ${out[outputName]?.type ?? 'missing'}; it needs float32 (use weight_rounding 'nearest' for this model)`);
        sampled.push({ feeds, output: Float32Array.from(activationData(out, outputName)) });
      }
    });
    for (const t of group) {
      const w = readTensorAsFloat32(getConstant(work.graph!, t.p.layer.weight!.name)!);
      const r = roundAdaptively(t.p.layer, t.geometry, t.transB, w, t.p.weight!.q, t.p.weight!.scale, stats.get(t.p.layer.name)!);
      if (r.flipped > 0) candidates.set(t.p.layer.name, { q: r.q, shift: r.shift });
    }
  }
  const considered = todo.map((t) => t.p.layer.name);
  if (candidates.size === 0) return { ...none, considered };
  return { considered, ...(await keepHelpful(work, plan, candidates, sampled, kernels, options)) };
}

/** A layer's adaptive rounding and the mean output error left with it (see roundAdaptively). */
export interface RoundingCandidate {
  q: Int8Array;
  shift: Float64Array;
}

/** What keepHelpful kept for a layer: the rounding, and the bias shift when it also helped. */
export interface KeptRounding {
  q: Int8Array;
  shift?: Float64Array;
}

/**
 * Greedy, in graph order: a layer's adaptive rounding is kept when the model's output on the sampled
 * batches gets closer to float with it (on top of those kept before it), on every batch. With
 * `biasCorrection`, a layer with a bias also tries the rounding with the mean error it leaves taken off
 * the bias (empirical bias correction on the quantized model's input), and keeps whichever of the two
 * does better.
 */
async function keepHelpful(
  work: ModelProto,
  plan: readonly LayerQuantization[],
  candidates: ReadonlyMap<string, RoundingCandidate>,
  batches: readonly { feeds: Feeds; output: Float32Array }[],
  kernels: Kernels,
  options: RoundingOptions,
): Promise<{ kept: Map<string, KeptRounding>; errorBefore: number; errorAfter: number }> {
  const fake = clone(work);
  writeFakeQuant(fake, plan);
  const graph = fake.graph!;
  const editor = new GraphEditor(graph);
  const byName = new Map((graph.node ?? []).map((n) => [n.name ?? '', n]));
  const switches = new Map<string, { weight: string; bias?: string }>();
  const flagInput = (name: string) => {
    const flag = editor.name(name);
    graph.input = [...(graph.input ?? []), onnx.ValueInfoProto.create({ name: flag, type: { tensorType: { elemType: DataType.BOOL, shape: { dim: [] } } } })];
    return flag;
  };
  for (const p of plan) {
    const c = candidates.get(p.layer.name);
    if (!c) continue;
    const node = byName.get(p.layer.name)!;
    const fq = dequantizeWeight(kernels, c.q, p.weight!.scale, p.weight!.axis, p.layer.weight!.dims);
    const alt = editor.addInitializer(makeTensor(`${p.layer.name}.weight_adaptive`, DataType.FLOAT, p.layer.weight!.dims, fq));
    const weight = flagInput(`${p.layer.name}.adaptive_rounding`);
    node.input![1] = editor.insertBefore(node, { opType: 'Where', name: `${p.layer.name}/AdaptiveRounding`, inputs: [weight, alt, node.input![1]!] })[0]!;
    let bias: string | undefined;
    if (options.biasCorrection && p.bias && node.input![2]) {
      const shifted = p.bias.fq.map((b, i) => b - c.shift[i % c.shift.length]!);
      const altBias = editor.addInitializer(makeTensor(`${p.layer.name}.bias_adaptive`, DataType.FLOAT, p.bias.dims, shifted));
      bias = flagInput(`${p.layer.name}.adaptive_bias`);
      node.input![2] = editor.insertBefore(node, { opType: 'Where', name: `${p.layer.name}/AdaptiveBias`, inputs: [bias, altBias, node.input![2]!] })[0]!;
    }
    switches.set(p.layer.name, { weight, bias });
  }
  editor.commit();
  const session = await createSession(encodeModel(fake), options);
  const on = new Set<string>();
  // Per batch; undefined as soon as one exceeds `bound` (no batch may get worse, so the rest need not run).
  const errors = async (bound?: readonly number[]) => {
    const extra: Feeds = {};
    for (const f of switches.values()) for (const flag of [f.weight, f.bias]) if (flag) extra[flag] = new Tensor('bool', [on.has(flag)], []);
    const each: number[] = [];
    for (const [i, b] of batches.entries()) {
      const out = await session.run({ ...b.feeds, ...extra });
      each.push(1 - kernels.cosine(b.output, out[session.outputNames[0]!]!.data as Float32Array));
      if (bound && each[i]! > bound[i]!) return undefined;
    }
    return each;
  };
  const mean = (e: number[]) => e.reduce((a, b) => a + b, 0) / e.length;
  try {
    let bestEach = (await errors())!;
    const errorBefore = mean(bestEach);
    let best = errorBefore;
    const kept = new Map<string, KeptRounding>();
    for (const [layer, f] of switches) {
      checkSignal(options.signal, `adaptive rounding of '${layer}'`);
      const trials = f.bias ? [[f.weight, f.bias], [f.weight]] : [[f.weight]];
      let chosen: { flags: string[]; each: number[]; e: number } | undefined;
      for (const flags of trials) {
        for (const x of flags) on.add(x);
        const each = await errors(bestEach);
        for (const x of flags) on.delete(x);
        if (!each) continue;
        const e = mean(each);
        if (e < best * (1 - MIN_GAIN) && (!chosen || e < chosen.e)) chosen = { flags, each, e };
      }
      if (!chosen) continue;
      for (const x of chosen.flags) on.add(x);
      best = chosen.e;
      bestEach = chosen.each;
      const c = candidates.get(layer)!;
      kept.set(layer, chosen.flags.length > 1 ? { q: c.q, shift: c.shift } : { q: c.q });
    }
    return { kept, errorBefore, errorAfter: best };
  } finally {
    await session.release();
  }
}
