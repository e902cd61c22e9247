/**
 * Which nodes can be quantized and how: one rule per operator type, each saying where the
 * activation, weight and bias are and along which axis the weight's output channels lie.
 * Rules only mark layers; writing Q/DQ into the graph is the rewriter's job.
 */
import { attrFloat, attrInt, getConstant, nodeNames, producerMap } from '../../onnx/graph.js';
import { DataType, tensorDims } from '../../onnx/tensor.js';
import { isIf, scopePath, type Scope } from '../../onnx/scope.js';
import type { GraphProto, NodeProto, TensorProto } from '../../onnx/types.js';

export const QUANTIZABLE_TYPES = Object.freeze(['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'AveragePool', 'Gather', 'LSTM', 'GRU', 'RNN'] as const);
/** The types quantized weight-only (see export/weight-only.ts). */
export const WEIGHT_ONLY_TYPES: ReadonlySet<string> = new Set(['Gather', 'LSTM', 'GRU', 'RNN']);
export type QuantizableType = (typeof QUANTIZABLE_TYPES)[number];

export interface WeightSpec {
  /** Name of the constant holding the weight (initializer or Constant node output). */
  name: string;
  dims: number[];
  /** Axis of the weight along which output channels lie, or -1 when only per-tensor is valid. */
  channelAxis: number;
}

export interface LayerInfo {
  /** Stable node name (`{opType}_{index}` for unnamed nodes). */
  name: string;
  opType: QuantizableType;
  /** Position in its graph's node list (the main graph's, or the body's at `scope`). */
  nodeIndex: number;
  /** Position among all layers of the model, bodies included, in node order (a body where its If is). */
  order?: number;
  /** Where the node is when it sits in an If branch (see onnx/scope.ts); absent in the main graph. */
  scope?: Scope;
  /** The float tensor whose activation gets quantized (input 0). */
  activation: string;
  weight?: WeightSpec;
  /** Constant bias name, quantized to int32 with scale = activation scale × weight scale. */
  bias?: string;
  /**
   * A weight-only layer (a Gather from a constant embedding table, an LSTM/GRU/RNN): its weights are
   * quantized per row and `activation` (the indices, the sequence) is not; see export/weight-only.ts.
   */
  weightOnly?: true;
  /**
   * Quantized in blocks along the reduction axis (MatMulNBits, GatherBlockQuantized): the 'webgpu'
   * target's MatMul, Gemm and embedding layers (see prepare/target.ts). Implies weightOnly.
   */
  blocked?: true;
  /** A recurrent layer's recurrence weight R, quantized like its input weight W (`weight`). */
  recurrence?: WeightSpec;
  /**
   * A MatMul's second input when it is an activation too (attention's Q·Kᵀ and A·V): observed and
   * quantized like the first, in place of a weight.
   */
  second?: string;
}

/** Why a node of a quantizable type stays float, in words a warning can count by. */
export type SkipKind = 'activation × activation' | 'weight computed at run time' | 'unsupported form' | 'holds a subgraph' | 'no weight (weight-only target)';

export interface SkippedNode {
  name: string;
  opType: string;
  reason: string;
  kind: SkipKind;
}

export interface LayerScan {
  /** Layers with a quantized activation, in graph order. */
  layers: LayerInfo[];
  /** Weight-only layers (embeddings, recurrent layers), in graph order. */
  weightOnly: LayerInfo[];
  /** Nodes of a quantizable type that cannot be quantized safely, with the reason. */
  skipped: SkippedNode[];
}

type Verdict = { weight?: WeightSpec; bias?: string; second?: string } | string;

interface RuleContext {
  graph: GraphProto;
  constant(name: string): TensorProto | undefined;
  /** Whether `name` is a graph input or a node's output here (an activation of this graph). */
  produced(name: string): boolean;
}

function floatConstant(ctx: RuleContext, name: string | undefined, what: string): { tensor: TensorProto } | string {
  if (!name) return `${what} is missing`;
  const t = ctx.constant(name);
  if (!t) return `${what} '${name}' is computed at run time, not a constant`;
  if (t.dataType !== DataType.FLOAT) return `${what} '${name}' is not float32 (data type ${t.dataType})`;
  return { tensor: t };
}

function weightAndBias(
  node: NodeProto,
  ctx: RuleContext,
  ranks: readonly number[],
  channelAxis: (dims: number[]) => number,
  biasIndex: number | undefined,
): Verdict {
  const w = floatConstant(ctx, node.input?.[1], 'weight');
  if (typeof w === 'string') return w;
  const dims = tensorDims(w.tensor);
  if (!ranks.includes(dims.length)) return `weight has rank ${dims.length}; supported ranks: ${ranks.join(', ')}`;
  const out: { weight: WeightSpec; bias?: string } = { weight: { name: node.input![1]!, dims, channelAxis: channelAxis(dims) } };
  const biasName = biasIndex === undefined ? undefined : node.input?.[biasIndex];
  if (biasName) {
    const b = floatConstant(ctx, biasName, 'bias');
    if (typeof b === 'string') return b;
    out.bias = biasName;
  }
  return out;
}

const RULES: Record<Exclude<QuantizableType, 'Gather' | 'LSTM' | 'GRU' | 'RNN'>, (node: NodeProto, ctx: RuleContext) => Verdict> = {
  Conv: (node, ctx) => weightAndBias(node, ctx, [3, 4, 5], () => 0, 2),
  ConvTranspose: (node, ctx) =>
    // Weight is [C_in, C_out/group, k...]: output channels are axis 1 only when there is one group.
    weightAndBias(node, ctx, [3, 4, 5], () => (attrInt(node, 'group', 1) === 1 ? 1 : -1), 2),
  Gemm: (node, ctx) => {
    if (attrInt(node, 'transA', 0) !== 0) return 'transA=1 is not supported (the activation would be transposed)';
    if (attrFloat(node, 'alpha', 1) !== 1) return `alpha=${attrFloat(node, 'alpha', 1)} is not supported (only 1)`;
    if (node.input?.[2] && attrFloat(node, 'beta', 1) !== 1) return `beta=${attrFloat(node, 'beta', 1)} is not supported (only 1)`;
    const transB = attrInt(node, 'transB', 0) === 1;
    return weightAndBias(node, ctx, [2], () => (transB ? 0 : 1), 2);
  },
  MatMul: (node, ctx) => {
    const b = node.input?.[1];
    if (b && !ctx.constant(b) && ctx.produced(b)) return { second: b };
    return weightAndBias(node, ctx, [2], () => 1, undefined);
  },
  AveragePool: () => ({}),
};

/**
 * A Gather that looks rows up in a constant float table (an embedding): the table is the weight,
 * one scale per row; other Gathers (shape arithmetic, index tensors) are no layer.
 */
function embedding(node: NodeProto, ctx: RuleContext, name: string, nodeIndex: number): LayerInfo | undefined {
  const [table, indices] = node.input ?? [];
  if (!table || !indices) return undefined;
  const t = ctx.constant(table);
  if (!t || t.dataType !== DataType.FLOAT || !ctx.produced(indices) || ctx.constant(indices)) return undefined;
  const dims = tensorDims(t);
  const axis = attrInt(node, 'axis', 0);
  if (dims.length !== 2 || (axis !== 0 && axis !== -2)) return undefined;
  return { name, opType: 'Gather', nodeIndex, activation: indices, weight: { name: table, dims, channelAxis: 0 }, weightOnly: true };
}

/**
 * An LSTM, GRU or RNN with constant float W [directions, gates·hidden, input] and R [directions,
 * gates·hidden, hidden]: both quantized per gate row (axis 1); the bias and the states stay float.
 */
function recurrent(node: NodeProto, ctx: RuleContext, name: string, nodeIndex: number): LayerInfo | string {
  const [x, w, r] = node.input ?? [];
  if (!x || !ctx.produced(x)) return 'its input sequence is not an activation of this graph';
  const spec = (input: string | undefined, what: string): WeightSpec | string => {
    const t = floatConstant(ctx, input, what);
    if (typeof t === 'string') return t;
    const dims = tensorDims(t.tensor);
    return dims.length === 3 ? { name: input!, dims, channelAxis: 1 } : `${what} has rank ${dims.length}, not 3`;
  };
  const weight = spec(w, 'W');
  if (typeof weight === 'string') return weight;
  const recurrence = spec(r, 'R');
  if (typeof recurrence === 'string') return recurrence;
  return { name, opType: node.opType as QuantizableType, nodeIndex, activation: x, weight, recurrence, weightOnly: true };
}

function isQuantizable(opType: string | null | undefined): opType is QuantizableType {
  return (QUANTIZABLE_TYPES as readonly string[]).includes(opType ?? '');
}

/** A rule's refusal, counted: a second input computed at run time is the common case worth naming. */
function skipKind(node: NodeProto, ctx: RuleContext): SkipKind {
  if (node.opType === 'AveragePool') return 'unsupported form';
  const w = node.input?.[1];
  if (w && !ctx.constant(w)) return node.opType === 'MatMul' || node.opType === 'Gemm' ? 'activation × activation' : 'weight computed at run time';
  return 'unsupported form';
}

/**
 * Finds the quantizable layers of the main graph and of the If branches in it, at any depth (a
 * body sees the constants and values of the graphs around it). Nodes holding Loop or Scan bodies
 * are reported as skipped: a body that runs many times per inference has no single activation to
 * calibrate.
 */
export function scanLayers(graph: GraphProto): LayerScan {
  const layers: LayerInfo[] = [];
  const weightOnly: LayerInfo[] = [];
  const skipped: SkippedNode[] = [];
  let order = 0;
  const visit = (g: GraphProto, outer: readonly { producers: Map<string, unknown>; inputs: Set<string> }[], chain: readonly GraphProto[], scope: Scope) => {
    const names = scope.length ? (g.node ?? []).map((n, i) => n.name || `${scopePath(scope)}/${n.opType}_${i}`) : nodeNames(g);
    const producers = producerMap(g);
    const inputs = new Set((g.input ?? []).map((v) => v.name ?? ''));
    const levels = [{ producers, inputs }, ...outer];
    const constants = new Map<string, TensorProto | undefined>();
    const ctx: RuleContext = {
      graph: g,
      constant(name) {
        if (!constants.has(name)) constants.set(name, chain.map((c) => getConstant(c, name)).find((t) => t !== undefined));
        return constants.get(name);
      },
      produced: (name) => levels.some((l) => l.producers.has(name) || l.inputs.has(name)),
    };
    const where = scope.length ? { scope } : {};
    (g.node ?? []).forEach((node, nodeIndex) => {
      const name = names[nodeIndex]!;
      if (node.domain && node.domain !== 'ai.onnx') return;
      const opType = node.opType ?? '';
      if (isIf(node)) {
        for (const a of node.attribute ?? []) if (a.g) visit(a.g as GraphProto, levels, [a.g as GraphProto, ...chain], [...scope, { node: name, attribute: a.name ?? '' }]);
        return;
      }
      if (!isQuantizable(opType)) {
        if (node.attribute?.some((a) => a.g || a.graphs?.length)) {
          skipped.push({ name, opType, reason: `holds a ${opType} body: layers inside Loop and Scan bodies are left in float`, kind: 'holds a subgraph' });
        }
        return;
      }
      const at = { nodeIndex, order: order++, ...where };
      if (opType === 'Gather') {
        const e = embedding(node, ctx, name, nodeIndex);
        if (e) weightOnly.push({ ...e, ...at });
        return;
      }
      if (opType === 'LSTM' || opType === 'GRU' || opType === 'RNN') {
        const verdict = recurrent(node, ctx, name, nodeIndex);
        if (typeof verdict === 'string') skipped.push({ name, opType, reason: verdict, kind: 'unsupported form' });
        else weightOnly.push({ ...verdict, ...at });
        return;
      }
      const activation = node.input?.[0];
      if (!activation) {
        skipped.push({ name, opType, reason: 'has no input 0', kind: 'unsupported form' });
        return;
      }
      const input = levels.some((l) => l.inputs.has(activation));
      if (ctx.constant(activation) && !input) {
        skipped.push({ name, opType, reason: `input '${activation}' is a constant, not an activation`, kind: 'unsupported form' });
        return;
      }
      if (!ctx.produced(activation)) {
        skipped.push({ name, opType, reason: `input '${activation}' is not produced in this graph`, kind: 'unsupported form' });
        return;
      }
      const verdict = RULES[opType](node, ctx);
      if (typeof verdict === 'string') skipped.push({ name, opType, reason: verdict, kind: skipKind(node, ctx) });
      else layers.push({ name, opType, activation, ...verdict, ...at });
    });
  };
  visit(graph, [], [graph], []);
  return { layers, weightOnly, skipped };
}
