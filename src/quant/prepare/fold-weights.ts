/**
 * Recurrent weights computed from constants, folded into constants. PyTorch exports an LSTM's W,
 * R and B as Slice → Concat → Unsqueeze of its parameters (it reorders the gates), so the LSTM
 * reads values computed at run time and no rule could quantize it; onnxruntime folds the same
 * chain when it loads the model, so folding here changes no value. Only the recurrent layers'
 * weight inputs are folded: elsewhere a computed weight keeps its own reasons (a model's shape
 * arithmetic, a weight the user meant to compute).
 */
import { attrInt, findAttribute, getConstant, implicitInputs, producerMap, subgraphsOf } from '../../onnx/graph.js';
import { int64ToNumber } from '../../onnx/int64.js';
import { DataType, makeTensor, readTensor, tensorDims } from '../../onnx/tensor.js';
import { onnx, type GraphProto, type NodeProto, type TensorProto } from '../../onnx/types.js';

interface Value {
  dims: number[];
  data: Float32Array | BigInt64Array;
}

/** Ops the folder evaluates: enough for PyTorch's recurrent exports. */
const FOLDABLE = new Set(['Slice', 'Concat', 'Unsqueeze', 'Squeeze', 'Reshape', 'Identity']);

const strides = (dims: readonly number[]) => {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
};

const ints = (v: Value | undefined) => (v ? Array.from(v.data as BigInt64Array, (x) => Number(x)) : undefined);

function slice(x: Value, starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined): Value {
  const rank = x.dims.length;
  const begin = x.dims.map(() => 0);
  const step = x.dims.map(() => 1);
  const count = [...x.dims];
  starts.forEach((s, i) => {
    const axis = ((axes?.[i] ?? i) + rank) % rank;
    const d = x.dims[axis]!;
    const st = steps?.[i] ?? 1;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
    const b = st > 0 ? clamp(s, 0, d) : clamp(s, -1, d - 1);
    const e = st > 0 ? clamp(ends[i]!, 0, d) : clamp(ends[i]!, -1, d - 1);
    begin[axis] = b;
    step[axis] = st;
    count[axis] = Math.max(0, Math.ceil((e - b) / st));
  });
  const inStrides = strides(x.dims);
  const n = count.reduce((a, b) => a * b, 1);
  const out = new (x.data.constructor as Float32ArrayConstructor)(n) as Float32Array | BigInt64Array;
  const outStrides = strides(count);
  for (let i = 0; i < n; i++) {
    let src = 0;
    for (let a = 0; a < rank; a++) src += (begin[a]! + Math.floor(i / outStrides[a]!) % count[a]! * step[a]!) * inStrides[a]!;
    (out as Float32Array)[i] = (x.data as Float32Array)[src]!;
  }
  return { dims: count, data: out };
}

function concat(parts: Value[], axis: number): Value {
  const rank = parts[0]!.dims.length;
  const ax = (axis + rank) % rank;
  const outer = parts[0]!.dims.slice(0, ax).reduce((a, b) => a * b, 1);
  const dims = [...parts[0]!.dims];
  dims[ax] = parts.reduce((s, p) => s + p.dims[ax]!, 0);
  const out = new (parts[0]!.data.constructor as Float32ArrayConstructor)(dims.reduce((a, b) => a * b, 1)) as Float32Array;
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const inner = p.data.length / outer;
      out.set((p.data as Float32Array).subarray(o * inner, (o + 1) * inner), at);
      at += inner;
    }
  }
  return { dims, data: out };
}

function evaluate(node: NodeProto, inputs: (Value | undefined)[], opset: number): Value | undefined {
  const [x] = inputs;
  if (!x) return undefined;
  switch (node.opType) {
    case 'Identity':
      return x;
    case 'Slice': {
      const attr = (name: string) => findAttribute(node, name)?.ints?.map((v) => int64ToNumber(v));
      const starts = opset < 10 ? attr('starts') : ints(inputs[1]);
      const ends = opset < 10 ? attr('ends') : ints(inputs[2]);
      if (!starts || !ends) return undefined;
      return slice(x, starts, ends, opset < 10 ? attr('axes') : ints(inputs[3]), opset < 10 ? undefined : ints(inputs[4]));
    }
    case 'Concat':
      return inputs.every((v) => v && v.data.constructor === x.data.constructor) ? concat(inputs as Value[], attrInt(node, 'axis', 0)) : undefined;
    case 'Unsqueeze':
    case 'Squeeze': {
      const axes = opset < 13 ? findAttribute(node, 'axes')?.ints?.map((v) => int64ToNumber(v)) : ints(inputs[1]);
      if (node.opType === 'Squeeze') {
        const drop = new Set((axes ?? x.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => (a + x.dims.length) % x.dims.length));
        return { dims: x.dims.filter((_, i) => !drop.has(i)), data: x.data };
      }
      if (!axes) return undefined;
      const rank = x.dims.length + axes.length;
      const add = new Set(axes.map((a) => (a + rank) % rank));
      const dims: number[] = [];
      let k = 0;
      for (let i = 0; i < rank; i++) dims.push(add.has(i) ? 1 : x.dims[k++]!);
      return { dims, data: x.data };
    }
    case 'Reshape': {
      const shape = ints(inputs[1]);
      if (!shape || attrInt(node, 'allowzero', 0) !== 0) return undefined;
      const dims = shape.map((d, i) => (d === 0 ? x.dims[i]! : d));
      const known = dims.reduce((a, d) => (d === -1 ? a : a * d), 1);
      return { dims: dims.map((d) => (d === -1 ? x.data.length / known : d)), data: x.data };
    }
  }
  return undefined;
}

function asValue(t: TensorProto | undefined): Value | undefined {
  if (!t || (t.dataType !== DataType.FLOAT && t.dataType !== DataType.INT64)) return undefined;
  return { dims: tensorDims(t), data: readTensor(t) as Float32Array | BigInt64Array };
}

/**
 * Folds the computed W, R and B inputs of every LSTM, GRU and RNN in `root` and in its If bodies
 * (constants of the graphs around a body count), in place: the node producing the weight becomes a
 * Constant of the same name, and the nodes only it read are dropped. Returns the folded values' names.
 */
export function foldRecurrentWeights(root: GraphProto, opset: number): string[] {
  const folded: string[] = [];
  const visit = (graph: GraphProto, outer: readonly GraphProto[]): boolean => {
    const chain = [graph, ...outer];
    const constant = (name: string) => {
      for (const g of chain) {
        const t = getConstant(g, name);
        if (t) return t;
      }
      return undefined;
    };
    const producers = producerMap(graph);
    const memo = new Map<string, Value | undefined>();
    const value = (name: string, depth: number): Value | undefined => {
      if (!name) return undefined;
      if (memo.has(name)) return memo.get(name);
      let v = asValue(constant(name));
      const p = producers.get(name);
      if (!v && p && depth < 64 && FOLDABLE.has(p.node.opType ?? '') && (!p.node.domain || p.node.domain === 'ai.onnx') && p.outputIndex === 0) {
        v = evaluate(p.node, (p.node.input ?? []).map((i) => (i ? value(i, depth + 1) : undefined)), opset);
      }
      memo.set(name, v);
      return v;
    };
    const replaced = new Map<NodeProto, NodeProto>();
    for (const node of graph.node ?? []) {
      if (!['LSTM', 'GRU', 'RNN'].includes(node.opType ?? '') || (node.domain && node.domain !== 'ai.onnx')) continue;
      for (const input of (node.input ?? []).slice(1, 4)) {
        if (!input || constant(input)) continue;
        const p = producers.get(input);
        const v = value(input, 0);
        if (!p || !v || !(v.data instanceof Float32Array)) continue;
        const t = makeTensor(input, DataType.FLOAT, v.dims, v.data);
        replaced.set(p.node, onnx.NodeProto.create({ name: p.node.name, opType: 'Constant', output: [input], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t }] }));
        folded.push(input);
      }
    }
    if (replaced.size) graph.node = (graph.node ?? []).map((n) => replaced.get(n) ?? n);
    let below = false;
    for (const node of graph.node ?? []) for (const sub of subgraphsOf(node)) below = visit(sub, chain) || below;
    // After the bodies: a parameter an inner body sliced may be unread now.
    if (replaced.size || below) dropUnread(graph);
    return replaced.size > 0 || below;
  };
  visit(root, []);
  return folded;
}

/** Drops nodes of the folder's op types (and Constants) whose outputs nothing reads any more. */
function dropUnread(graph: GraphProto): void {
  for (;;) {
    const read = new Set<string>((graph.output ?? []).map((o) => o.name ?? ''));
    for (const n of graph.node ?? []) {
      for (const i of n.input ?? []) read.add(i);
      for (const name of implicitInputs(n)) read.add(name);
    }
    const keep = (graph.node ?? []).filter((n) => !(FOLDABLE.has(n.opType ?? '') || n.opType === 'Constant') || (n.output ?? []).some((o) => read.has(o)));
    if (keep.length === graph.node?.length) return;
    graph.node = keep;
  }
}
