/**
 * Channel splitting of activations (outlier channel splitting, Zhao et al. 2019, applied to a dense
 * layer's input): one int8 scale serves every input channel, so a few wide channels set a step that
 * the narrow rest barely resolve. Input channel c is replaced by k_c copies of x_c / k_c, and the
 * weight columns reading it are repeated, so Σ_j W_c · (x_c / k_c) = W_c · x_c: the float function
 * is unchanged (up to float rounding), the int8 weights are too (each output row keeps its values,
 * so its per-channel scale), and the activation's range shrinks to that of the next-widest channels.
 * Unlike activation equalization (activation-equalize.ts), nothing is moved into the weights, so it
 * works where that could not: on pointwise, dense and attention projections, whose weight rows
 * would pay for any factor. The price is k_c − 1 more input channels: at most `ratio` of the layer's,
 * spent greedily on whichever channel sets the range, and only where the range at least halves.
 *
 * The copies are dithered: copy j also gets (j − (k − 1) / 2) · step / k, offsets that sum to zero,
 * so the k roundings differ and their sum resolves x_c finer than one step; without them the copies
 * round alike and the split channel keeps its old error.
 *
 * Fitted, like activation equalization, to where each channel's extremes are likely to reach
 * (SampleExtremes), not to the extremes a few calibration samples showed: split to the edge of what
 * was seen, the channels are clipped on other inputs. Measured on the PP-OCRv4 recognizer, every
 * layer int8 with adaptive rounding, five draws of 8 calibration lines, 10240 held-out steps each
 * (bench/goals.mjs' draws): 612 disagreements with float in all without splitting. Split by the
 * extremes seen (every layer whose range shrinks at all): 560 at ratio 1/8, 680 at 1/2. By the likely
 * extremes: 449 at 1/16 (482 without the dither), 466 at 1/8, 477 at 1/4; at 1/16 only the layers
 * whose range shrinks 1.5× or more: 454 (19 layers), 2× or more: 467 (12 layers), and in this module
 * 432 (three more draws: 109 → 98, 118 → 81, 128 → 86). Splitting only the Convs gave 453, only the
 * MatMuls 444: any layer's share of the noise is small, the gain comes from many.
 *
 * In the deploy model the copies are a Gather, a Mul and an Add on the float activation before its
 * QuantizeLinear, and the weight grows by the copies' columns: on the recognizer at 1/16, 12 layers,
 * +265 input channels, deploy model +5% bytes and +8% latency in onnxruntime-node (1 thread; every
 * layer whose range shrinks 1.1× or more: 31 layers, +10% and +22%). A layer that ends up in float
 * keeps the copies (they change nothing there). Hence off by default.
 */
import { CalibrationError } from '../../errors.js';
import { intAttr, type GraphEditor } from '../../onnx/editor.js';
import { attrInt, getConstant } from '../../onnx/graph.js';
import { DataType, makeTensor, readTensorAsFloat32, tensorDims } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import { quoteName } from '../../text.js';
import type { LayerInfo } from '../prepare/registry.js';

/**
 * A layer is split only when its input's range shrinks by this factor at least: on the recognizer
 * the layers under it took 38% of the copies and 2/3 of the added latency for none of the gain
 * (see the module comment).
 */
const MIN_RANGE_GAIN = 2;

/** A dense layer whose input channels can be split, and where they lie. */
export interface SplitSite {
  layer: LayerInfo;
  node: NodeProto;
  channels: number;
  /** Rank of the layer's input where it is known (Conv and ConvTranspose from the weight, Gemm 2), else 0 (MatMul). */
  rank: number;
  /** Axis of the input holding the channels: 1 (Conv, ConvTranspose) or the last (−1: MatMul, Gemm). */
  axis: 1 | -1;
  /** Axis of the weight indexed by input channel. */
  weightAxis: number;
}

export interface ChannelSplit {
  layer: string;
  channels: number;
  /** Input channels added (Σ (k_c − 1)). */
  added: number;
  /** Channels split (k_c > 1). */
  splitChannels: number;
  /** Most copies of one channel. */
  maxCopies: number;
}

/** The choice for one layer: copies per input channel and the dither step (see the module comment). */
export interface SplitChoice {
  copies: number[];
  step: number;
}

/**
 * The layers of `layers` whose input channels can be split: Conv and ConvTranspose with one group
 * (a copy of a channel must reach the same filters), Gemm and MatMul with a constant 2-D weight
 * (MatMul from opset 11).
 */
export function findSplitSites(graph: GraphProto, layers: readonly LayerInfo[], opset: number): SplitSite[] {
  const sites: SplitSite[] = [];
  // A negative Gather axis (channels last, rank unknown) needs opset 11.
  const channelsLast = opset >= 11;
  for (const layer of layers) {
    if (!layer.weight) continue;
    const node = graph.node![layer.nodeIndex]!;
    const w = getConstant(graph, node.input?.[1] ?? '');
    if (!w || w.dataType !== DataType.FLOAT) continue;
    const dims = tensorDims(w);
    let site: Omit<SplitSite, 'layer' | 'node'> | undefined;
    if ((layer.opType === 'Conv' || layer.opType === 'ConvTranspose') && attrInt(node, 'group', 1) === 1 && dims.length >= 3) {
      const weightAxis = layer.opType === 'Conv' ? 1 : 0;
      site = { channels: dims[weightAxis]!, rank: dims.length, axis: 1, weightAxis };
    } else if (layer.opType === 'MatMul' && dims.length === 2 && channelsLast) {
      site = { channels: dims[0]!, rank: 0, axis: -1, weightAxis: 0 };
    } else if (layer.opType === 'Gemm' && dims.length === 2) {
      const weightAxis = attrInt(node, 'transB', 0) === 1 ? 1 : 0;
      site = { channels: dims[weightAxis]!, rank: 2, axis: -1, weightAxis };
    }
    if (site) sites.push({ layer, node, ...site });
  }
  return sites;
}

/**
 * Copies per channel for an input whose channel c likely spans [lo_c, hi_c], with at most
 * ⌊ratio · C⌋ extra channels: each extra copy goes to the channel that sets the range's wider
 * edge. Undefined when the range would shrink by less than MIN_RANGE_GAIN.
 */
export function chooseSplit(lo: ArrayLike<number>, hi: ArrayLike<number>, ratio: number, levels: number): SplitChoice | undefined {
  const n = lo.length;
  const budget = Math.floor(ratio * n);
  if (budget < 1) return undefined;
  const k = new Array<number>(n).fill(1);
  const edges = () => {
    let top = 0;
    let bottom = 0;
    let ct = -1;
    let cb = -1;
    for (let c = 0; c < n; c++) {
      const h = hi[c]! / k[c]!;
      const l = lo[c]! / k[c]!;
      if (h > top) [top, ct] = [h, c];
      if (l < bottom) [bottom, cb] = [l, c];
    }
    return { top, bottom, ct, cb };
  };
  const start = edges();
  let e = start;
  for (let used = 0; used < budget; used++) {
    const c = e.top >= -e.bottom ? e.ct : e.cb;
    if (c < 0) break;
    k[c]!++;
    e = edges();
  }
  // Copies that the final range does not need (a channel tied at the edge when the budget ran out).
  for (let c = 0; c < n; c++) {
    while (k[c]! > 1 && hi[c]! / (k[c]! - 1) <= e.top && lo[c]! / (k[c]! - 1) >= e.bottom) k[c]!--;
  }
  const before = start.top - start.bottom;
  const after = e.top - e.bottom;
  if (!(after > 0) || before / after < MIN_RANGE_GAIN) return undefined;
  return { copies: k, step: after / levels };
}

/**
 * Splits `site`'s input channels as `choice` says: Gather (the copies), Mul (1 / k_c) and Add (the
 * dither) before the layer, and a weight of its own with the columns repeated.
 */
export function applySplit(graph: GraphProto, site: SplitSite, choice: SplitChoice, editor: GraphEditor): ChannelSplit {
  const { copies, step } = choice;
  const c = site.channels;
  const name = site.layer.name;
  if (copies.length !== c || !copies.every((k) => Number.isInteger(k) && k >= 1) || !(step >= 0 && Number.isFinite(step))) {
    throw new CalibrationError(`channel split of layer ${quoteName(name)} must give ${c} whole copy counts ≥ 1 and a finite dither step ≥ 0`);
  }
  const index: number[] = [];
  const scale: number[] = [];
  const offset: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    const k = copies[ch]!;
    for (let j = 0; j < k; j++) {
      index.push(ch);
      scale.push(1 / k);
      offset.push(k > 1 ? ((j - (k - 1) / 2) * step) / k : 0);
    }
  }
  const wide = index.length;
  const constDims = site.axis === 1 ? [wide, ...new Array(Math.max(0, site.rank - 2)).fill(1)] : [wide];
  const idx = editor.addInitializer(makeTensor(`${name}.split_index`, DataType.INT32, [wide], Int32Array.from(index)));
  const mul = editor.addInitializer(makeTensor(`${name}.split_scale`, DataType.FLOAT, constDims, Float32Array.from(scale)));
  const add = editor.addInitializer(makeTensor(`${name}.split_offset`, DataType.FLOAT, constDims, Float32Array.from(offset)));
  const node = site.node;
  const axisAttr = intAttr('axis', site.axis === 1 ? 1 : site.rank > 0 ? site.rank - 1 : -1);
  const [gathered] = editor.insertBefore(node, { opType: 'Gather', name: `${name}/split/Gather`, inputs: [node.input![0]!, idx], attributes: [axisAttr] });
  const [scaled] = editor.insertBefore(node, { opType: 'Mul', name: `${name}/split/Mul`, inputs: [gathered!, mul] });
  const [dithered] = editor.insertBefore(node, { opType: 'Add', name: `${name}/split/Add`, inputs: [scaled!, add] });
  node.input![0] = dithered!;
  // The weight: column j of the input-channel axis is column index[j] of the old one.
  const wt = getConstant(graph, node.input![1]!)!;
  const dims = tensorDims(wt);
  const w = readTensorAsFloat32(wt);
  const outer = dims.slice(0, site.weightAxis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(site.weightAxis + 1).reduce((a, b) => a * b, 1);
  const nw = new Float32Array(outer * wide * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < wide; j++) {
      const from = (o * c + index[j]!) * inner;
      nw.set(w.subarray(from, from + inner), (o * wide + j) * inner);
    }
  }
  const newDims = [...dims];
  newDims[site.weightAxis] = wide;
  node.input![1] = editor.addInitializer(makeTensor(`${name}.weight_split`, DataType.FLOAT, newDims, nw));
  return {
    layer: name,
    channels: c,
    added: wide - c,
    splitChannels: copies.filter((k) => k > 1).length,
    maxCopies: copies.reduce((a, k) => Math.max(a, k), 1),
  };
}
