/**
 * Cross-layer equalization (Nagel et al., "Data-Free Quantization Through Weight Equalization and
 * Bias Correction", 2019): for two weighted layers A → B joined only through positively homogeneous
 * ops (f(x/s) = f(x)/s for s > 0: Relu, LeakyRelu, PRelu, Identity, MaxPool), dividing A's output
 * channel c (weights and bias) by s_c and multiplying B's weights for input channel c by s_c leaves
 * the float function unchanged. Choosing s_c = √(r1_c / r2_c), with r1_c and r2_c the largest
 * |weight| of channel c in A and in B, gives the channel the same range on both sides, so one
 * outlier channel no longer sets the int8 range of the activation between them, nor of B's weights
 * across input channels. s_c is rounded to a power of two: the ranges then balance within a factor 2, and
 * every rescaled weight, bias and activation is exact in float, so the model computes bit for bit
 * what it did (barring subnormals), not merely to rounding.
 *
 * Only outlier channels are equalized, and only downwards: channels of A whose weight range is at
 * least OUTLIER times the median channel's shrink by s_c (capped so that B's column for the channel
 * stays within B's widest column). With per-channel weights, the full two-sided balance of the paper
 * only moves activation ranges around, and it blew up channels whose weights are near zero but
 * whose bias is not: measured on PP-OCRv4, it lowered the detector's deploy cosine to float from
 * 0.9918 to 0.9896 and the classifier's from 0.9905 to 0.9900. The outlier rule leaves such models
 * as they were and still removes outliers planted 1000× (see test/helpers/planted-mlp.ts).
 *
 * Exactness is structural: a pair is taken only when every tensor from A's output to B's input has
 * that single reader and is no graph output, so nothing else sees the rescaled channels. Chains of
 * more than two layers are swept until the scales settle, as in the paper.
 */
import { GraphEditor } from '../../onnx/editor.js';
import { attrFloat, attrInt, consumerMap, getConstant, nodeNames } from '../../onnx/graph.js';
import { DataType, adoptTensor, readTensorAsFloat32, tensorDims } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';

export interface EqualizedPair {
  /** The layer whose output channels were divided. */
  first: string;
  /** The layer whose input channels were multiplied. */
  second: string;
  /** The ops between them. */
  through: string[];
  channels: number;
  /** Channels rescaled (the outliers). */
  scaledChannels: number;
  /** Largest total factor a channel of `first` was divided by. */
  maxScale: number;
}

/** Ops between the two layers that commute with a positive per-channel scale. */
const HOMOGENEOUS = new Set(['Relu', 'LeakyRelu', 'PRelu', 'Identity', 'MaxPool', 'Dropout']);
/** MaxPool pools over spatial axes, so only Conv chains (channels on axis 1) may cross it. */
const CONV_ONLY = new Set(['MaxPool']);
const MAX_SWEEPS = 30;
/** A channel of A is an outlier when its weight range is this many times the median channel's. */
const OUTLIER = 32;

/** A weighted layer as equalization sees it: its weight as float values and how channels map onto it. */
interface Side {
  node: NodeProto;
  name: string;
  dims: number[];
  w: Float32Array;
  bias?: { dims: number[]; b: Float32Array };
  /** The bias input is not a float constant: the layer can still be the second of a pair. */
  opaqueBias?: boolean;
  /** Conv chains keep channels on axis 1, dense chains (Gemm, MatMul) on the last axis. */
  kind: 'conv' | 'dense';
}

interface Pair {
  a: Side;
  b: Side;
  outs: ChannelLayout;
  ins: ChannelLayout;
  through: string[];
  channels: number;
  total: Float64Array;
}

const isDefault = (n: NodeProto) => !n.domain || n.domain === 'ai.onnx';

/**
 * How a weight's elements map onto channels: the output channels of A, or the input channels of B.
 * Visited in place, because index lists per channel would cost several times the weight itself.
 */
interface ChannelLayout {
  channels: number;
  /** Calls visit(c, i) for every element i of the weight, with its channel c. */
  each(visit: (c: number, i: number) => void): void;
}

function channelLayout(side: Side, role: 'out' | 'in'): ChannelLayout {
  const { node, dims } = side;
  const op = node.opType;
  const total = dims.reduce((x, y) => x * y, 1);
  if (op === 'Conv') {
    const [o, iPerGroup] = [dims[0]!, dims[1]!];
    const inner = total / (o * iPerGroup);
    if (role === 'out') return blocks(o, iPerGroup * inner);
    const group = attrInt(node, 'group', 1);
    const oPerGroup = o / group;
    return {
      channels: iPerGroup * group,
      each(visit) {
        for (let oo = 0, i = 0; oo < o; oo++) {
          const first = Math.floor(oo / oPerGroup) * iPerGroup;
          for (let ci = 0; ci < iPerGroup; ci++) for (let k = 0; k < inner; k++) visit(first + ci, i++);
        }
      },
    };
  }
  // Gemm / MatMul weight [rows, cols]; output channels are its columns, or its rows for Gemm transB.
  const [rows, cols] = [dims[0]!, dims[1]!];
  const transB = op === 'Gemm' && attrInt(node, 'transB', 0) === 1;
  const alongRows = role === 'out' ? transB : !transB;
  if (alongRows) return blocks(rows, cols);
  return {
    channels: cols,
    each(visit) {
      for (let r = 0, i = 0; r < rows; r++) for (let c = 0; c < cols; c++) visit(c, i++);
    },
  };
}

/** Channel c is the c-th run of `size` consecutive elements. */
function blocks(channels: number, size: number): ChannelLayout {
  return {
    channels,
    each(visit) {
      for (let c = 0, i = 0; c < channels; c++) for (let k = 0; k < size; k++) visit(c, i++);
    },
  };
}

/** The layer as a side of a pair, or undefined when its weight is not a plain float constant of a supported form. */
function sideOf(graph: GraphProto, node: NodeProto, name: string): Side | undefined {
  if (!isDefault(node)) return undefined;
  const op = node.opType;
  if (op === 'Gemm' && (attrInt(node, 'transA', 0) !== 0 || attrFloat(node, 'alpha', 1) !== 1 || attrFloat(node, 'beta', 1) !== 1)) return undefined;
  if (op !== 'Conv' && op !== 'Gemm' && op !== 'MatMul') return undefined;
  const wt = getConstant(graph, node.input?.[1] ?? '');
  if (!wt || wt.dataType !== DataType.FLOAT) return undefined;
  const dims = tensorDims(wt);
  if (op === 'Conv' ? dims.length < 3 : dims.length !== 2) return undefined;
  const side: Side = { node, name, dims, w: readTensorAsFloat32(wt), kind: op === 'Conv' ? 'conv' : 'dense' };
  const biasName = op === 'MatMul' ? undefined : node.input?.[2];
  if (biasName) {
    const bt = getConstant(graph, biasName);
    if (!bt || bt.dataType !== DataType.FLOAT) side.opaqueBias = true;
    else side.bias = { dims: tensorDims(bt), b: readTensorAsFloat32(bt) };
  }
  return side;
}

/** The pairs of `graph` where equalization is exact (see the module comment). */
function findPairs(graph: GraphProto): Pair[] {
  const names = nodeNames(graph);
  const nameOf = new Map((graph.node ?? []).map((n, i) => [n, names[i]!]));
  const readers = consumerMap(graph);
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const onlyReader = (t: string) => {
    const r = readers.get(t) ?? [];
    return r.length === 1 && !outputs.has(t) && r[0]!.node.input!.filter((i) => i === t).length === 1 ? r[0]!.node : undefined;
  };
  // One Side per layer: a layer second in one pair and first in the next rescales one weight.
  const sides = new Map<NodeProto, Side | undefined>();
  const sideFor = (node: NodeProto) => {
    if (!sides.has(node)) sides.set(node, sideOf(graph, node, nameOf.get(node)!));
    return sides.get(node);
  };
  const pairs: Pair[] = [];
  for (const node of graph.node ?? []) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(node.opType ?? '')) continue;
    let t = node.output?.[0];
    if (!t || (node.output ?? []).length > 1) continue;
    const through: string[] = [];
    let next = onlyReader(t);
    let ok = true;
    while (next && HOMOGENEOUS.has(next.opType ?? '') && isDefault(next)) {
      // The scaled tensor must be the op's data input (PRelu's slope and the like stay as they are),
      // and the op must have one output in use (MaxPool's indices, Dropout's mask would not scale).
      if (next.input?.[0] !== t || (next.output ?? []).slice(1).some((o) => o)) {
        ok = false;
        break;
      }
      through.push(nameOf.get(next)!);
      if (CONV_ONLY.has(next.opType!) && node.opType !== 'Conv') ok = false;
      t = next.output![0]!;
      next = onlyReader(t);
    }
    if (!ok || !next || next.input?.[0] !== t || !['Conv', 'Gemm', 'MatMul'].includes(next.opType ?? '')) continue;
    const a = sideFor(node);
    const b = sideFor(next);
    if (!a || !b || a === b || a.kind !== b.kind || a.opaqueBias) continue;
    const outs = channelLayout(a, 'out');
    const ins = channelLayout(b, 'in');
    if (outs.channels !== ins.channels) continue;
    const channels = outs.channels;
    // The bias must carry A's channels on its last axis (Gemm's C may broadcast from [N] or [1, N]).
    if (a.bias && a.bias.dims[a.bias.dims.length - 1] !== channels && a.bias.b.length !== 1) continue;
    if (a.bias && a.bias.b.length === 1 && channels > 1) continue;
    pairs.push({ a, b, outs, ins, through, channels, total: new Float64Array(channels).fill(1) });
  }
  return pairs;
}

function median(values: number[]): number {
  if (values.length === 0) return Infinity;
  const v = [...values].sort((x, y) => x - y);
  return v[Math.floor(v.length / 2)]!;
}

/** The largest |weight| of each channel. */
function channelRanges(w: Float32Array, layout: ChannelLayout): number[] {
  const r = new Array<number>(layout.channels).fill(0);
  layout.each((c, i) => {
    r[c] = Math.max(r[c]!, Math.abs(w[i]!));
  });
  return r;
}

/** Multiplies each channel c of `w` by factor[c] (where it is not 1). */
function scaleChannels(w: Float32Array, layout: ChannelLayout, factor: Float64Array): void {
  layout.each((c, i) => {
    if (factor[c] !== 1) w[i] = w[i]! * factor[c]!;
  });
}

/**
 * Equalizes the outlier channels (`outlierRatio`, default OUTLIER) of every eligible pair of `graph` in place, replacing the weights (and A's bias) it
 * rescales with new initializers (a weight shared with another node keeps its original there).
 * Returns the pairs equalized, in graph order.
 */
export function equalizeChannels(graph: GraphProto, options: { outlierRatio?: number } = {}): EqualizedPair[] {
  const outlier = options.outlierRatio ?? OUTLIER;
  const pairs = findPairs(graph);
  if (pairs.length === 0) return [];
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let changed = false;
    for (const p of pairs) {
      const r1 = channelRanges(p.a.w, p.outs);
      const r2 = channelRanges(p.b.w, p.ins);
      const typical = median(r1.filter((r) => r > 0));
      // B's widest input channel: no column is grown past it, so B's per-output-channel ranges hold.
      const widest = Math.max(...r2);
      const down = new Float64Array(p.channels).fill(1);
      const up = new Float64Array(p.channels).fill(1);
      let scaled = false;
      for (let c = 0; c < p.channels; c++) {
        // Only outlier channels of A shrink (see the module comment); a dead channel has nothing to balance.
        if (!(r1[c]! >= outlier * typical && r2[c]! > 0)) continue;
        const exponent = Math.min(Math.round(0.5 * Math.log2(r1[c]! / r2[c]!)), Math.floor(Math.log2(widest / r2[c]!)));
        if (!(exponent > 0)) continue;
        // Powers of two: multiplying by 2^-e is the same float as dividing by 2^e.
        down[c] = 2 ** -exponent;
        up[c] = 2 ** exponent;
        if (p.a.bias) {
          const b = p.a.bias.b;
          for (let i = c; i < b.length; i += p.channels) b[i] = b[i]! * down[c]!;
        }
        p.total[c] = p.total[c]! * up[c]!;
        scaled = true;
      }
      if (scaled) {
        scaleChannels(p.a.w, p.outs, down);
        scaleChannels(p.b.w, p.ins, up);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const done = pairs.filter((p) => p.total.some((t) => t !== 1));
  if (done.length === 0) return [];
  const editor = new GraphEditor(graph);
  const written = new Set<Side>();
  const write = (side: Side) => {
    if (written.has(side)) return;
    written.add(side);
    side.node.input![1] = editor.addInitializer(adoptTensor(`${side.name}.weight_equalized`, DataType.FLOAT, side.dims, side.w));
    if (side.bias) side.node.input![2] = editor.addInitializer(adoptTensor(`${side.name}.bias_equalized`, DataType.FLOAT, side.bias.dims, side.bias.b));
  };
  for (const p of done) {
    write(p.a);
    write(p.b);
  }
  editor.commit();
  return done.map((p) => ({
    first: p.a.name,
    second: p.b.name,
    through: p.through,
    channels: p.channels,
    scaledChannels: p.total.filter((t) => t !== 1).length,
    maxScale: Math.max(...p.total),
  }));
}
