/**
 * Adaptive rounding (rounding.ts) of a model's layers, one layer at a time in graph order, each
 * layer's statistics gathered on the quantized model with every earlier layer's rounding already in
 * place, so that each layer absorbs the error its input really carries. Gathered all at once on the
 * nearest-rounded model instead, each layer also tried to absorb errors that the layers before it
 * were removing themselves: taking every layer's rounding then cut the PP-OCRv4 detector from 0.990
 * to 0.956 cosine to float, and a model-output check that kept 5 to 7 layers' roundings was needed.
 * In sequence every rounding is taken (measured in docs/experiments.md: recognizer per-step agreement 0.9730
 * → 0.9880 on 10240 held-out steps, detector IoU 0.9829 → 0.9838 on 16 held-out pages, with no
 * model-output check).
 *
 * As a guard, when the model's output on the first ROUNDING_BATCHES batches ends no closer to float
 * than with nearest rounding, every layer keeps nearest rounding.
 *
 * Cost: one session holding the float and the fake-quant model side by side (sharing the working
 * model's constants), the rounded layers' weights fed as inputs; per layer, one run per calibration
 * batch up to that layer's input (onnxruntime runs only what the fetched tensors need), then two runs
 * over the first batches for the guard. Fetching the float inputs of many layers at once instead,
 * since no rounding changes them, saved nothing measurable. Memory: the calibration batches' inputs
 * (the feeds), the float output of the first ROUNDING_BATCHES batches, one layer's inputs and
 * statistics, and a float copy of the rounded layers' weights.
 */
import { CalibrationError } from '../../errors.js';
import type { Kernels } from '../../kernels/types.js';
import { cloneModel } from '../../onnx/model.js';
import { DataType, readTensorAsFloat32 } from '../../onnx/tensor.js';
import { onnx, type GraphProto, type ModelProto, type NodeProto } from '../../onnx/types.js';
import { attrInt, getConstant, subgraphsOf, topologicalOrder } from '../../onnx/graph.js';
import { checkSignal } from '../../runtime/deadline.js';
import { createSession, Tensor, type CreateSessionOptions, type InferenceSession, type OrtTensor } from '../../runtime/ort.js';
import { activationData, replayBatches, type BatchSource, type Feeds } from '../calibrate/calibrate.js';
import { writeFakeQuant, type LayerQuantization } from '../export/rewrite.js';
import { dequantizeWeight } from '../export/weights.js';
import { accumulate, inputsPerOutput, MAX_INPUTS, newStats, patchGeometry, roundAdaptively, type PatchGeometry } from './rounding.js';

/** Calibration batches the guard compares the model's output on (the first ones). */
export const ROUNDING_BATCHES = 4;

const clone = cloneModel;

interface Candidate {
  p: LayerQuantization;
  geometry: PatchGeometry;
  transB: boolean;
  d: number;
  groups: number;
}

/**
 * The fake-quant graph of `plan` beside the float one in one model, its tensors prefixed, so that one
 * run yields each layer's float input and the input the quantized model feeds it. The fake-quant
 * weights of the `fed` layers, and the quantized biases of the `biases` ones, are graph inputs rather
 * than initializers: the JavaScript bindings feed only a session's inputs. The working model's
 * initializers and Constant nodes, which the fake-quant rewrite leaves as they are, serve both
 * halves; names inside subgraphs are prefixed too, so a branch of the fake half reads the fake half.
 */
function twinModel(
  work: ModelProto,
  plan: readonly LayerQuantization[],
  fed: ReadonlySet<string>,
  biases: ReadonlySet<string>,
): { model: ModelProto; fakeInput: Map<string, string>; fakeOutput: string; inputs: Map<string, { weight: string; bias?: string }> } {
  const fake = clone(work);
  writeFakeQuant(fake, plan);
  const model = clone(work);
  const graph = model.graph!;
  const constantNode = (n: NodeProto) => n.opType === 'Constant' && (n.input ?? []).length === 0;
  const shared = new Set([
    ...(graph.input ?? []).map((v) => v.name ?? ''),
    ...(graph.initializer ?? []).map((t) => t.name ?? ''),
    ...(graph.node ?? []).filter(constantNode).flatMap((n) => n.output ?? []),
  ]);
  const taken = new Set([...(graph.node ?? []).flatMap((n) => [...(n.output ?? []), n.name ?? '']), ...shared]);
  let prefix = 'q::';
  while ([...taken].some((n) => n.startsWith(prefix))) prefix = `q${prefix}`;
  const rename = (n: string) => (n === '' || shared.has(n) ? n : prefix + n);
  const renameSubgraph = (g: GraphProto) => {
    for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) v.name = rename(v.name ?? '');
    for (const t of g.initializer ?? []) t.name = rename(t.name ?? '');
    for (const n of g.node ?? []) {
      n.name = n.name ? prefix + n.name : n.name;
      n.input = (n.input ?? []).map(rename);
      n.output = (n.output ?? []).map(rename);
      for (const sub of subgraphsOf(n)) renameSubgraph(sub);
    }
  };
  const fakeInput = new Map<string, string>();
  const inputs = new Map<string, { weight: string; bias?: string }>();
  const asInput = new Set<string>();
  for (const n of fake.graph!.node ?? []) {
    if (constantNode(n) && (n.output ?? []).every((o) => shared.has(o))) continue;
    const layer = n.name ?? '';
    n.name = prefix + layer;
    n.input = (n.input ?? []).map(rename);
    n.output = (n.output ?? []).map(rename);
    for (const sub of subgraphsOf(n)) renameSubgraph(sub);
    graph.node!.push(n);
    if (!fed.has(layer)) continue;
    fakeInput.set(layer, n.input[0]!);
    const [, weight, bias] = n.input;
    const entry = { weight: weight!, bias: biases.has(layer) && bias ? bias : undefined };
    inputs.set(layer, entry);
    asInput.add(entry.weight);
    if (entry.bias) asInput.add(entry.bias);
  }
  for (const t of fake.graph!.initializer ?? []) {
    if (shared.has(t.name ?? '')) continue;
    t.name = rename(t.name ?? '');
    if (!asInput.has(t.name)) graph.initializer!.push(t);
    else graph.input!.push(onnx.ValueInfoProto.create({ name: t.name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: (t.dims ?? []).map((v) => ({ dimValue: v })) } } } }));
  }
  const fakeOutput = rename(work.graph!.output![0]!.name!);
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const fetch = [fakeOutput, ...fakeInput.values(), ...[...fed].map((l) => plan.find((p) => p.layer.name === l)!.layer.activation)];
  graph.output = [...(graph.output ?? []), ...[...new Set(fetch)].filter((n) => !outputs.has(n)).map((name) => onnx.ValueInfoProto.create({ name }))];
  return { model, fakeInput, fakeOutput, inputs };
}

export interface RoundingOptions extends CreateSessionOptions {
  batchNum: number;
  /** Round each layer with a bias for the error left once its mean is taken off the bias, and take it off (`bias_correction`). */
  biasCorrection?: boolean;
  signal?: AbortSignal;
}

/** A layer's chosen int8 weights, and the bias shift that goes with them under `biasCorrection`. */
export interface KeptRounding {
  q: Int8Array;
  shift?: Float64Array;
}

export interface RoundingChoice {
  /** Layers whose statistics allowed adaptive rounding (the others keep nearest, see patchGeometry). */
  considered: string[];
  /** Per layer changed from nearest (in its weights, or under bias correction only in its bias shift), the choice. */
  kept: Map<string, KeptRounding>;
  /** 1 − cosine of the model's first output to float on the first batches: nearest, then chosen. */
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
  // A weight shared by two layers is fed once; rounded for one, it would change the other.
  const weightUsers = new Map<string, number>();
  for (const p of plan) if (p.layer.weight) weightUsers.set(p.layer.weight.name, (weightUsers.get(p.layer.weight.name) ?? 0) + 1);
  for (const p of plan) {
    if (!p.weight || !consider.has(p.layer.name) || weightUsers.get(p.layer.weight!.name) !== 1) continue;
    const node = nodes.get(p.layer.name)!;
    const geometry = patchGeometry(node, p.layer);
    if (typeof geometry === 'string') continue;
    const transB = p.layer.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    const { d, groups } = inputsPerOutput(p.layer, geometry, transB);
    if (d <= MAX_INPUTS) todo.push({ p, geometry, transB, d, groups });
  }
  // In sequence means upstream first: a graph's node list need not be sorted.
  const position = new Map(topologicalOrder(work.graph!).map((n, i) => [n.name ?? '', i]));
  todo.sort((a, b) => position.get(a.p.layer.name)! - position.get(b.p.layer.name)!);
  const considered = todo.map((t) => t.p.layer.name);
  const none: RoundingChoice = { considered, kept: new Map(), errorBefore: 0, errorAfter: 0 };
  if (todo.length === 0) return none;
  checkSignal(options.signal, 'adaptive rounding');

  // Under bias correction, the layers whose bias is quantized (see planLayers) take the mean error off it.
  const biased = new Set(options.biasCorrection ? todo.filter((t) => t.p.bias).map((t) => t.p.layer.name) : []);
  const { model, fakeInput, fakeOutput, inputs } = twinModel(work, plan, new Set(considered), biased);
  const outputName = work.graph!.output![0]!.name!;
  const batches = await collectFeeds(work, source, options);
  const session = await createSession(model, options);
  try {
    const fed: Record<string, OrtTensor> = {};
    for (const t of todo) {
      const names = inputs.get(t.p.layer.name)!;
      fed[names.weight] = new Tensor('float32', t.p.weight!.fq, t.p.layer.weight!.dims);
      if (names.bias) fed[names.bias] = new Tensor('float32', t.p.bias!.fq, t.p.bias!.dims);
    }
    const sampled = batches.slice(0, ROUNDING_BATCHES);
    const reference: Float32Array[] = [];
    for (const feeds of sampled) {
      const out = await run(session, { ...feeds, ...fed }, [outputName]);
      // The guard compares the model's first output, as the model-output ranking does.
      if (out[outputName]?.type !== 'float32') throw new CalibrationError(`adaptive rounding compares the model's first output '${outputName}', which is ${out[outputName]?.type ?? 'missing'}; it needs float32 (use weight_rounding 'nearest' for this model)`);
      reference.push(Float32Array.from(activationData(out, outputName)));
    }
    const outputError = async () => {
      let sum = 0;
      for (const [i, feeds] of sampled.entries()) {
        const out = await run(session, { ...feeds, ...fed }, [fakeOutput]);
        sum += 1 - kernels.cosine(reference[i]!, activationData(out, fakeOutput));
      }
      return sum / sampled.length;
    };
    const errorBefore = await outputError();
    const kept = new Map<string, KeptRounding>();
    for (const t of todo) {
      const name = t.p.layer.name;
      checkSignal(options.signal, `adaptive rounding of '${name}'`);
      const stats = newStats(t.d, t.groups);
      for (const feeds of batches) {
        const out = await run(session, { ...feeds, ...fed }, [t.p.layer.activation, fakeInput.get(name)!]);
        accumulate(kernels, stats, t.geometry, activationData(out, t.p.layer.activation), activationData(out, fakeInput.get(name)!), out[t.p.layer.activation]!.dims);
      }
      const names = inputs.get(name)!;
      const w = readTensorAsFloat32(getConstant(work.graph!, t.p.layer.weight!.name)!);
      const r = roundAdaptively(kernels, t.p.layer, t.geometry, t.transB, w, t.p.weight!.q, t.p.weight!.scale, stats, names.bias !== undefined);
      if (r.flipped === 0 && !names.bias) continue;
      fed[names.weight] = new Tensor('float32', dequantizeWeight(kernels, r.q, t.p.weight!.scale, t.p.weight!.axis, t.p.layer.weight!.dims), t.p.layer.weight!.dims);
      if (names.bias) {
        // The shift is the layer's whole mean error, whatever bias the plan had: it replaces any the record held.
        const shift = r.shift;
        const bias = readTensorAsFloat32(getConstant(work.graph!, t.p.layer.bias!)!);
        fed[names.bias] = new Tensor('float32', bias.map((b, i) => b - shift[i % shift.length]!), t.p.bias!.dims);
      }
      kept.set(name, names.bias ? { q: r.q, shift: r.shift } : { q: r.q });
    }
    const errorAfter = await outputError();
    // Under bias correction the nearest-rounded fallback gets its biases corrected afterwards (as in
    // PTQ without adaptive rounding), which this comparison does not see.
    if (errorAfter >= errorBefore) return { ...none, errorBefore, errorAfter: errorBefore };
    return { considered, kept, errorBefore, errorAfter };
  } finally {
    await session.release();
  }
}

async function run(session: InferenceSession, feeds: Record<string, OrtTensor>, fetch: readonly string[]): Promise<Record<string, OrtTensor>> {
  return (await session.run(feeds, fetch as string[])) as Record<string, OrtTensor>;
}

/**
 * The first `batchNum` calibration feeds: an iterable's are kept by reference (as every pass keeps
 * them); a callback's are copied in one pass of the float model, since a callback may refill one
 * buffer batch after batch.
 */
async function collectFeeds(work: ModelProto, source: BatchSource, options: RoundingOptions): Promise<Feeds[]> {
  if (source.feeds) return source.feeds.slice(0, options.batchNum);
  const feeds: Feeds[] = [];
  await replayBatches(work, [], source, options, (_out, _batch, f) => {
    feeds.push(Object.fromEntries(Object.entries(f).map(([name, t]) => [name, new Tensor(t.type, (t.data as Float32Array).slice(), t.dims)])) as Feeds);
  });
  return feeds;
}
