/**
 * Raises a model's default-domain opset, rewriting the nodes whose operator changed meaning or
 * moved attributes to inputs on the way. Operators with a breaking change this module cannot
 * express, and operators it does not know, make the upgrade fail with the list of such nodes:
 * a wrong graph is worse than none.
 */
import { OnnxFormatError } from '../errors.js';
import { intAttr, GraphEditor } from './editor.js';
import { findAttribute, nodeNames, opsetVersion, walkGraphs } from './graph.js';
import { int64ToBigInt, int64ToNumber } from './int64.js';
import { DataType, makeTensor } from './tensor.js';
import { onnx, type AttributeProto, type GraphProto, type ModelProto, type NodeProto } from './types.js';

/** Operators whose changes between opset 9 and 21 are all backward compatible for existing graphs. */
const COMPATIBLE = new Set(
  `Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Bernoulli BitShift
  Cast CastLike Ceil Celu Compress Concat ConcatFromSequence Constant ConstantOfShape Conv ConvInteger ConvTranspose
  Cos Cosh CumSum DepthToSpace DequantizeLinear Det Div Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU
  Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
  GroupNormalization HardSigmoid HardSwish Identity If InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization
  LeakyRelu Less LessOrEqual Log Loop LpNormalization LpPool MatMul MatMulInteger Max MaxPool MaxRoiPool MaxUnpool
  Mean MeanVarianceNormalization Min Mish Mod Mul Multinomial Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pow
  QLinearConv QLinearMatMul QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
  Reciprocal Relu Reshape ReverseSequence RoiAlign Round Scan ScatterElements ScatterND Selu SequenceAt
  SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength Shape Shrink Sigmoid Sign Sin Sinh Size
  Softplus Softsign SpaceToDepth Sqrt Sub Sum Tan Tanh ThresholdedRelu Tile Transpose Trilu Unique Where Xor`.split(/\s+/),
);

interface ConvertContext {
  editor: GraphEditor;
  name: string;
  /** The opset the graph is being raised to (nodes a converter adds must be in that opset's form). */
  target: number;
  /** The element type of a value where the graph states it (inputs, value_info, initializers, Constants). */
  elemType(value: string): number | undefined;
  /** The rank of a value where the graph states it (inputs, value_info, outputs, initializers). */
  rank(value: string): number | undefined;
  /** Queues a node to run right after `node` (GraphEditor only inserts before). */
  after(node: NodeProto, next: NodeProto): void;
}
/** Rewrites a node in place; returns a reason when this node cannot be expressed at the new version. */
type Converter = (node: NodeProto, ctx: ConvertContext) => string | void;

function takeAttr(node: NodeProto, name: string): AttributeProto | undefined {
  const a = findAttribute(node, name);
  if (a) node.attribute = (node.attribute ?? []).filter((x) => x !== a);
  return a;
}

function intsInput(ctx: ConvertContext, what: string, values: readonly (number | object)[]): string {
  // Exact int64s: Slice ends are often INT64_MAX, which a double would turn into INT64_MIN.
  const ints = values.map((v) => int64ToBigInt(v as never));
  return ctx.editor.addInitializer(makeTensor(`${ctx.name}.${what}`, DataType.INT64, [ints.length], ints));
}

/** Attribute values become inputs of the data's type: only float32 data is converted here. */
function floatDataOnly(node: NodeProto, ctx: ConvertContext): string | undefined {
  const t = ctx.elemType(node.input?.[0] ?? '');
  return t === undefined || t === DataType.FLOAT ? undefined : `its data is of type ${t}, not float32, so its constants cannot be converted`;
}

/** Sets input `index`, padding skipped optional inputs with ''. */
function setInput(node: NodeProto, index: number, name: string): void {
  const inputs = [...(node.input ?? [])];
  while (inputs.length < index) inputs.push('');
  inputs[index] = name;
  node.input = inputs;
}

const attrsToIntInputs = (list: [attr: string, index: number][]): Converter => (node, ctx) => {
  for (const [attr, index] of list) {
    const a = takeAttr(node, attr);
    if (a) setInput(node, index, intsInput(ctx, attr, a.ints ?? []));
  }
};

/** Opset 7 dropped attributes that only training or old runtimes read. */
const dropAttrs = (...names: string[]): Converter => (node) => {
  for (const n of names) takeAttr(node, n);
};

/**
 * Opset 7 made the arithmetic and comparison ops broadcast like numpy. Before it, `broadcast=1` let B
 * match A's dims from `axis` on (default: A's trailing dims, which numpy's rule gives too); an
 * explicit axis becomes trailing 1s appended to B with Unsqueeze, which needs both ranks.
 */
function legacyBroadcast(node: NodeProto, ctx: ConvertContext): string | void {
  const broadcast = takeAttr(node, 'broadcast');
  const axisAttr = takeAttr(node, 'axis');
  if (!broadcast || int64ToNumber(broadcast.i ?? 0) === 0 || !axisAttr) return;
  const axis = int64ToNumber(axisAttr.i ?? 0);
  const [a, b] = [node.input?.[0] ?? '', node.input?.[1] ?? ''];
  const [rankA, rankB] = [ctx.rank(a), ctx.rank(b)];
  if (rankA === undefined || rankB === undefined) return `broadcast with axis=${axis} needs the ranks of both inputs, which the graph does not state`;
  const trailing = rankA - (axis < 0 ? axis + rankA : axis) - rankB;
  if (trailing < 0) return `broadcast with axis=${axis} does not fit input ranks ${rankA} and ${rankB}`;
  if (trailing === 0) return;
  const axes = Array.from({ length: trailing }, (_, i) => rankB + i);
  const [expanded] = ctx.target >= 13
    ? ctx.editor.insertBefore(node, { opType: 'Unsqueeze', name: `${ctx.name}/Unsqueeze`, inputs: [b, intsInput(ctx, 'axes', axes)] })
    : ctx.editor.insertBefore(node, { opType: 'Unsqueeze', name: `${ctx.name}/Unsqueeze`, inputs: [b], attributes: [{ name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: axes }] });
  setInput(node, 1, expanded!);
}

/** Versions at which an operator changed incompatibly, with the rewrite to the new form (or null: not convertible). */
const BREAKING: Record<string, [version: number, convert: Converter | null][]> = {
  Slice: [[10, attrsToIntInputs([['starts', 1], ['ends', 2], ['axes', 3]])]],
  TopK: [[10, (node, ctx) => {
    const k = takeAttr(node, 'k');
    setInput(node, 1, intsInput(ctx, 'k', [k?.i ?? 0]));
  }]],
  Upsample: [[10, null]],
  Resize: [[11, null]],
  Scatter: [[11, (node) => {
    node.opType = 'ScatterElements';
  }]],
  Clip: [[11, (node, ctx) => {
    const wrongType = floatDataOnly(node, ctx);
    if (wrongType) return wrongType;
    const min = takeAttr(node, 'min');
    const max = takeAttr(node, 'max');
    if (min) setInput(node, 1, ctx.editor.addInitializer(makeTensor(`${ctx.name}.min`, DataType.FLOAT, [], [min.f ?? 0])));
    if (max) setInput(node, 2, ctx.editor.addInitializer(makeTensor(`${ctx.name}.max`, DataType.FLOAT, [], [max.f ?? 0])));
  }]],
  Pad: [[11, (node, ctx) => {
    const wrongType = findAttribute(node, 'value') ? floatDataOnly(node, ctx) : undefined;
    if (wrongType) return wrongType;
    const pads = takeAttr(node, 'pads');
    const value = takeAttr(node, 'value');
    setInput(node, 1, intsInput(ctx, 'pads', pads?.ints ?? []));
    if (value) setInput(node, 2, ctx.editor.addInitializer(makeTensor(`${ctx.name}.value`, DataType.FLOAT, [], [value.f ?? 0])));
  }]],
  BatchNormalization: [[7, (node) => {
    const isTest = takeAttr(node, 'is_test');
    takeAttr(node, 'consumed_inputs');
    if (isTest && int64ToNumber(isTest.i ?? 0) === 0 && (node.output ?? []).slice(1).some((o) => o)) return 'training mode (is_test=0 with statistics outputs) has no equivalent from opset 7';
  }], [9, (node) => {
    const spatial = takeAttr(node, 'spatial');
    if (spatial && int64ToNumber(spatial.i ?? 1) === 0) return 'spatial=0 (per-element statistics) has no equivalent from opset 9';
  }]],
  Scan: [[9, null]],
  Dropout: [[7, dropAttrs('is_test')], [10, (node) => {
    if (node.output?.[1]) return 'its mask output changes type at opset 10';
  }], [12, (node, ctx) => {
    const ratio = takeAttr(node, 'ratio');
    if (ratio) setInput(node, 1, ctx.editor.addInitializer(makeTensor(`${ctx.name}.ratio`, DataType.FLOAT, [], [ratio.f ?? 0.5])));
  }]],
  Squeeze: [[13, attrsToIntInputs([['axes', 1]])]],
  Unsqueeze: [[13, attrsToIntInputs([['axes', 1]])]],
  Split: [
    [13, attrsToIntInputs([['split', 1]])],
    // From 18 an equal split must say how many outputs it has.
    [18, (node) => {
      if (!node.input?.[1] && !findAttribute(node, 'num_outputs')) {
        node.attribute = [...(node.attribute ?? []), onnx.AttributeProto.create(intAttr('num_outputs', node.output?.length ?? 1))];
      }
    }],
  ],
  ReduceSum: [[13, attrsToIntInputs([['axes', 1]])]],
  Softmax: [[13, coerced2d]],
  LogSoftmax: [[13, coerced2d]],
  Hardmax: [[13, coerced2d]],
  DFT: [[20, null]],
  Gemm: [[7, dropAttrs('broadcast')]],
};
for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less']) BREAKING[op] = [[7, legacyBroadcast]];
for (const op of ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']) {
  BREAKING[op] = [[18, attrsToIntInputs([['axes', 1]])]];
}

/**
 * Before opset 13 Softmax-like ops flatten the input to 2-D at `axis` (default 1); from 13 they act
 * on one axis. Flatten → op(axis=-1) → Reshape back reproduces the old meaning for any rank; a node
 * that already works on the last axis (axis=-1) needs no change.
 */
function coerced2d(node: NodeProto, ctx: ConvertContext): void {
  const axisAttr = takeAttr(node, 'axis');
  const axis = axisAttr?.i !== undefined && axisAttr.i !== null ? int64ToNumber(axisAttr.i) : 1;
  node.attribute = [...(node.attribute ?? []), onnx.AttributeProto.create(intAttr('axis', -1))];
  if (axis === -1) return;
  const x = node.input![0]!;
  const [flat] = ctx.editor.insertBefore(node, { opType: 'Flatten', name: `${ctx.name}/Flatten`, inputs: [x], attributes: [intAttr('axis', axis)] });
  const [shape] = ctx.editor.insertBefore(node, { opType: 'Shape', name: `${ctx.name}/Shape`, inputs: [x] });
  const out = node.output![0]!;
  const flatOut = ctx.editor.name(`${out}_2d`);
  node.input = [flat!];
  node.output = [flatOut];
  ctx.after(node, onnx.NodeProto.create({ name: ctx.editor.name(`${ctx.name}/Reshape`), opType: 'Reshape', input: [flatOut, shape!], output: [out] }));
}

/** Ops whose output has the rank of their first input. */
const SAME_RANK = new Set(
  `Abs BatchNormalization Cast Ceil Clip Conv ConvTranspose Dropout Elu Exp Floor GlobalAveragePool GlobalLpPool
  GlobalMaxPool HardSigmoid HardSwish Identity InstanceNormalization LRN LeakyRelu Log LpNormalization LpPool MaxPool
  AveragePool Neg PRelu Pad Reciprocal Relu Selu Sigmoid Softmax LogSoftmax Softplus Softsign Sqrt Tanh Upsample
  Transpose Concat Sign Not`.split(/\s+/),
);
const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less', 'Max', 'Min', 'Sum', 'Mean']);

/**
 * Fills in the ranks of values the graph computes, in node order, for the common operators (enough
 * for the opset-7 broadcasting conversion of old exports, which rarely state intermediate shapes).
 */
function inferRanks(graph: GraphProto, ranks: Map<string, number>): void {
  for (const n of graph.node ?? []) {
    const out = n.output?.[0];
    if (!out || ranks.has(out)) continue;
    const inputs = (n.input ?? []).filter(Boolean).map((i) => ranks.get(i));
    const first = inputs[0];
    const op = n.opType ?? '';
    let r: number | undefined;
    if (SAME_RANK.has(op)) r = first;
    else if (ELEMENTWISE.has(op)) {
      // Legacy broadcast (broadcast=1) keeps A's rank; numpy's rule takes the largest.
      const legacy = findAttribute(n, 'broadcast');
      r = legacy && int64ToNumber(legacy.i ?? 0) === 1 ? first : inputs.every((x) => x !== undefined) ? Math.max(...(inputs as number[])) : undefined;
    } else if (op === 'Flatten' || op === 'Gemm') r = 2;
    else if (op === 'MatMul' && inputs[0] !== undefined && inputs[1] !== undefined) r = Math.max(inputs[0], inputs[1]);
    else if (op === 'Shape') r = 1;
    else if (op === 'Reshape') r = ranks.get(`\0shape:${n.input?.[1]}`);
    else if ((op === 'Unsqueeze' || op === 'Squeeze') && first !== undefined) {
      const axes = findAttribute(n, 'axes')?.ints?.length;
      if (axes !== undefined) r = first + (op === 'Unsqueeze' ? axes : -axes);
    }
    if (r !== undefined) ranks.set(out, r);
  }
}

function upgradeGraph(graph: GraphProto, from: number, to: number, problems: string[]): void {
  const names = nodeNames(graph);
  const editor = new GraphEditor(graph);
  const types = new Map<string, number>();
  for (const v of [...(graph.input ?? []), ...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    const t = v.type?.tensorType?.elemType;
    if (v.name && t) types.set(v.name, t);
  }
  for (const t of graph.initializer ?? []) if (t.name && t.dataType) types.set(t.name, t.dataType);
  for (const n of graph.node ?? []) {
    if (n.opType === 'Constant' && n.attribute?.[0]?.t?.dataType) types.set(n.output?.[0] ?? '', n.attribute[0].t.dataType);
  }
  const elemType = (value: string) => types.get(value);
  const ranks = new Map<string, number>();
  for (const v of [...(graph.input ?? []), ...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    const shape = v.type?.tensorType?.shape;
    if (v.name && shape) ranks.set(v.name, shape.dim?.length ?? 0);
  }
  for (const t of graph.initializer ?? []) {
    if (!t.name) continue;
    ranks.set(t.name, t.dims?.length ?? 0);
    // A 1-D constant can be a Reshape target: its length is the result's rank.
    if (t.dims?.length === 1) ranks.set(`\0shape:${t.name}`, int64ToNumber(t.dims[0]!));
  }
  for (const n of graph.node ?? []) {
    if (n.opType === 'Constant' && n.attribute?.[0]?.t) ranks.set(n.output?.[0] ?? '', n.attribute[0].t.dims?.length ?? 0);
  }
  inferRanks(graph, ranks);
  const rank = (value: string) => ranks.get(value);
  const following = new Map<NodeProto, NodeProto>();
  const after = (node: NodeProto, next: NodeProto) => following.set(node, next);
  (graph.node ?? []).forEach((node, i) => {
    if (node.domain && node.domain !== 'ai.onnx') return;
    const op = node.opType ?? '';
    const changes = (BREAKING[op] ?? []).filter(([v]) => v > from && v <= to);
    if (!BREAKING[op] && !COMPATIBLE.has(op)) {
      problems.push(`${names[i]} (${op}): operator not known to this upgrader`);
      return;
    }
    for (const [v, convert] of changes) {
      if (!convert) {
        problems.push(`${names[i]} (${op}): changed incompatibly at opset ${v} and cannot be converted`);
        return;
      }
      const problem = convert(node, { editor, name: names[i]!, target: to, elemType, rank, after });
      if (problem) {
        problems.push(`${names[i]} (${op}): ${problem}`);
        return;
      }
    }
  });
  editor.commit();
  if (following.size) graph.node = (graph.node ?? []).flatMap((n) => (following.has(n) ? [n, following.get(n)!] : [n]));
}

/**
 * Raises the default-domain opset of `model` (in place) to `target`, converting nodes of the main
 * graph and of every subgraph. Does nothing when the model already imports `target` or later.
 * @throws OnnxFormatError listing every node that cannot be expressed at `target`; the model is
 * left unchanged in that case.
 */
export function upgradeOpset(model: ModelProto, target: number): void {
  const from = opsetVersion(model) ?? 1;
  if (from >= target) return;
  if (from < 6) throw new OnnxFormatError(`opset ${from} is older than this upgrader supports (6 or later)`);
  const graph = model.graph;
  if (!graph) throw new OnnxFormatError('the model has no graph');
  // Check first on a copy so a failure leaves the model untouched.
  const problems: string[] = [];
  const trial = onnx.ModelProto.decode(onnx.ModelProto.encode(model as onnx.ModelProto).finish());
  walkGraphs(trial.graph as GraphProto, (g) => upgradeGraph(g, from, target, problems));
  if (problems.length) {
    throw new OnnxFormatError(`cannot raise the model from opset ${from} to ${target}:\n  - ${problems.join('\n  - ')}`);
  }
  model.graph = trial.graph;
  // Each opset needs a minimum IR version (10 → 5, 13 → 7, 21 → 10); never lower it.
  const ir = target >= 21 ? 10 : target >= 13 ? 7 : target >= 10 ? 5 : 3;
  if (int64ToNumber(model.irVersion ?? 0) < ir) model.irVersion = ir;
  model.opsetImport = (model.opsetImport ?? []).map((o) =>
    !o.domain || o.domain === 'ai.onnx' ? onnx.OperatorSetIdProto.create({ domain: o.domain ?? '', version: target }) : o,
  );
}
