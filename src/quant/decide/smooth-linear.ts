/**
 * Activation equalization for the linear layers behind a normalization (SmoothQuant, Xiao et al.
 * 2023): transformers put a few input channels of their Q/K/V and MLP projections an order of
 * magnitude above the rest (the outlier features of Dettmers et al. 2022 and Bondarenko et al.
 * 2021), so one int8 scale for the whole input leaves the other channels a few levels. Multiplying
 * input channel k by f_k and dividing row k of each reader's weight by it changes nothing in float;
 * the factors are paid for by the normalization's own affine part (LayerNormalization's scale and
 * bias, or a decomposed LayerNorm's scale Mul, before its bias Add), so the model computes
 * what it did. Unlike the depthwise case (activation-equalize.ts), the factors reshape the weight
 * rows, so they are a trade: what the activations gain against what the per-column weight scales
 * lose. The trade is SmoothQuant's migration strength α, f_k = max|W_k|^(1−α) / max|X_k|^α, chosen
 * per site among α ∈ ALPHAS (and none) by the estimate of activation-equalize.ts (both quantizers'
 * output noise, from the calibration ranges and mean squares), with powers of two so that the
 * rescaling itself is exact.
 *
 * A site is one tensor and every layer that reads it: Q, K and V share their input, so they share
 * its factors (each weight divided by them), and a site is taken only where every reader of the
 * tensor is such a layer (a Shape reader, which sees no values, is allowed). Readers must quantize
 * their weights per output column; the factors are kept in each reader's record (`equalize_d`).
 */
import { attrInt, consumerMap, getConstant, nodeNames, producerMap } from '../../onnx/graph.js';
import { GraphEditor } from '../../onnx/editor.js';
import { DataType, makeTensor, readTensorAsFloat32, tensorDims } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import { CalibrationError } from '../../errors.js';
import { quoteName } from '../../text.js';
import type { LayerInfo } from '../prepare/registry.js';
import type { ActivationEqualized, ChannelSite, ChannelStats, WeightProfile } from './activation-equalize.js';

/** Migration strengths tried per site (SmoothQuant's default is 0.5). */
export const ALPHAS: readonly number[] = Object.freeze([0.25, 0.5, 0.75]);
/**
 * The estimate cannot see the clipping the observer then picks, and the factors reshape the weights,
 * so a site is taken only when the estimated noise falls by a quarter. Measured: the planted outlier
 * channels of vit_tiny_outliers.onnx estimate a fall of 99% (cosine to float 0.98454 → 0.99976), the
 * trained ViT's own sites rise or stay; the one PP-OCRv4 recognizer site the 1% bar of depthwise
 * layers took (estimated 1.6%) moved its cosine 0.97228 → 0.97213 and per-step agreement 0.9578 → 0.9570.
 */
export const MIN_SMOOTHING_GAIN = 0.25;
const MAX_EXPONENT = 16;

interface Reader {
  layer: LayerInfo;
  node: NodeProto;
  /** The weight is [N, K] (Gemm transB) rather than [K, N]. */
  transposed: boolean;
}

/** A tensor read only by linear layers, and the normalization that pays for its factors. */
export interface SmoothingSite extends ChannelSite {
  /** The first reader (its activation is the site's tensor). */
  layer: LayerInfo;
  readers: Reader[];
  /** Constant Add/Sub between the absorber and the tensor, and the input index of their constant. */
  steps: { node: NodeProto; constant: number }[];
  absorber: { node: NodeProto; kind: 'mul' | 'layernorm'; constant?: number };
}

const isDefault = (n: NodeProto) => !n.domain || n.domain === 'ai.onnx';

/** A float constant broadcasting along the last axis only (a scalar, [K] or [1, …, K]), as K values. */
function lastAxisConstant(graph: GraphProto, name: string, channels: number): Float32Array | undefined {
  const t = getConstant(graph, name);
  if (!t || t.dataType !== DataType.FLOAT) return undefined;
  const dims = tensorDims(t);
  const v = readTensorAsFloat32(t);
  if (dims.slice(0, -1).some((d) => d !== 1)) return undefined;
  if (v.length === 1) return new Float32Array(channels).fill(v[0]!);
  return v.length === channels ? v : undefined;
}

/**
 * Whether `t` is a decomposed LayerNorm's normalized value, (x − ReduceMean(x)) / …, which its scale
 * Mul reads. Only normalizations: elsewhere a constant Mul before a linear layer (an input scaling,
 * GELU's ½) is not where the outlier channels come from, and taking it would cost a measuring pass.
 */
function normalizedBy(t: string, producers: ReturnType<typeof producerMap>): boolean {
  const div = producers.get(t)?.node;
  if (div?.opType !== 'Div' || !isDefault(div)) return false;
  const centre = producers.get(div.input?.[0] ?? '')?.node;
  if (centre?.opType !== 'Sub' || !isDefault(centre)) return false;
  const mean = producers.get(centre.input?.[1] ?? '')?.node;
  return mean?.opType === 'ReduceMean' && mean.input?.[0] === centre.input?.[0];
}

/** A linear layer whose weight rows are its input channels, and how many (K); block-quantized ones only where `blocked`. */
function linearReader(graph: GraphProto, layer: LayerInfo, blocked: boolean): { reader: Reader; channels: number } | undefined {
  if (layer.scope || layer.second || !layer.weight || (layer.weightOnly && !(blocked && layer.blocked))) return undefined;
  if (layer.opType !== 'MatMul' && layer.opType !== 'Gemm') return undefined;
  const node = graph.node![layer.nodeIndex]!;
  const w = getConstant(graph, node.input?.[1] ?? '');
  if (!w || w.dataType !== DataType.FLOAT) return undefined;
  const dims = tensorDims(w);
  if (dims.length !== 2) return undefined;
  if (layer.opType === 'Gemm' && attrInt(node, 'transA', 0) === 1) return undefined;
  const transposed = layer.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
  // Per output column: the column axis must be the one the weight is quantized along.
  if (layer.weight.channelAxis !== (transposed ? 0 : 1)) return undefined;
  return { reader: { layer, node, transposed }, channels: dims[transposed ? 1 : 0]! };
}

/**
 * The tensors of `graph` that only linear layers of `layers` read (see the module comment), each
 * with the path back to a normalization that can take the factors, in graph order of the first reader.
 * `perChannel(name)` tells whether a layer quantizes its weights per output column; `blocked` takes
 * the block-quantized layers of a weight-only target instead of the int8 ones (see weight-scaling.ts).
 */
export function findSmoothingSites(graph: GraphProto, layers: readonly LayerInfo[], perChannel: (layer: string) => boolean, blocked = false): SmoothingSite[] {
  const readersOf = consumerMap(graph);
  const producers = producerMap(graph);
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const groups = new Map<string, { readers: Reader[]; channels: number }>();
  for (const layer of layers) {
    const found = linearReader(graph, layer, blocked);
    if (!found || !perChannel(layer.name)) continue;
    const g = groups.get(layer.activation);
    if (!g) groups.set(layer.activation, { readers: [found.reader], channels: found.channels });
    else if (g.channels === found.channels) g.readers.push(found.reader);
    else g.channels = -1;
  }
  const sites: SmoothingSite[] = [];
  for (const [tensor, { readers, channels }] of groups) {
    if (channels < 1 || outputs.has(tensor)) continue;
    const nodes = new Set(readers.map((r) => r.node));
    const all = readersOf.get(tensor) ?? [];
    const valueReaders = all.filter((c) => c.node.opType !== 'Shape');
    // Every reader that sees the values must be one of the layers, reading it once, as its input 0.
    if (valueReaders.length !== readers.length || !valueReaders.every((c) => nodes.has(c.node) && c.inputIndex === 0)) continue;
    const steps: SmoothingSite['steps'] = [];
    let absorber: SmoothingSite['absorber'] | undefined;
    let t = tensor;
    for (let guard = 0; guard < 8 && !absorber; guard++) {
      const p = producers.get(t)?.node;
      if (!p || !isDefault(p) || (p.output ?? []).filter((o) => o).length !== 1) break;
      if (t !== tensor) {
        const r = readersOf.get(t) ?? [];
        if (r.length !== 1 || outputs.has(t)) break;
      }
      const op = p.opType ?? '';
      const constantAt = (p.input ?? []).findIndex((i) => i !== t && lastAxisConstant(graph, i, channels) !== undefined);
      if ((op === 'Add' || op === 'Sub') && p.input?.length === 2 && constantAt >= 0) {
        steps.push({ node: p, constant: constantAt });
        t = p.input[1 - constantAt]!;
      } else if (op === 'Mul' && p.input?.length === 2 && constantAt >= 0 && normalizedBy(p.input[1 - constantAt]!, producers)) {
        absorber = { node: p, kind: 'mul', constant: constantAt };
      } else if (op === 'LayerNormalization' && attrInt(p, 'axis', -1) === -1 && lastAxisConstant(graph, p.input?.[1] ?? '', channels)
        && (!p.input?.[2] || lastAxisConstant(graph, p.input[2], channels))) {
        absorber = { node: p, kind: 'layernorm' };
      } else {
        break;
      }
    }
    if (absorber) sites.push({ layer: readers[0]!.layer, readers, channels, rank: 0, axis: -1, steps, absorber });
  }
  return sites.sort((a, b) => a.layer.nodeIndex - b.layer.nodeIndex);
}

/** The site's readers as one weight profile: every reader's columns are rows reading all K channels. */
export function siteProfile(graph: GraphProto, site: SmoothingSite): WeightProfile {
  const k = site.channels;
  const columns: { maxAbs: Float64Array; sumSq: Float64Array }[] = [];
  for (const r of site.readers) {
    const wt = getConstant(graph, r.node.input![1]!)!;
    const [d0, d1] = tensorDims(wt) as [number, number];
    const w = readTensorAsFloat32(wt);
    const n = r.transposed ? d0 : d1;
    const maxAbs = new Float64Array(n * k);
    const sumSq = new Float64Array(n * k);
    for (let i = 0; i < w.length; i++) {
      // [K, N]: element i is (k = ⌊i / N⌋, n = i mod N); [N, K]: (n = ⌊i / K⌋, k = i mod K).
      const [row, col] = r.transposed ? [i % k, Math.floor(i / k)] : [Math.floor(i / d1), i % d1];
      const j = col * k + row;
      maxAbs[j] = Math.abs(w[i]!);
      sumSq[j] = w[i]! * w[i]!;
    }
    columns.push({ maxAbs, sumSq });
  }
  const concat = (key: 'maxAbs' | 'sumSq') => {
    const out = new Float64Array(columns.reduce((s, c) => s + c[key].length, 0));
    let at = 0;
    for (const c of columns) {
      out.set(c[key], at);
      at += c[key].length;
    }
    return out;
  };
  const maxAbs = concat('maxAbs');
  return { perGroup: k, rowsPerGroup: maxAbs.length / k, maxAbs, sumSq: concat('sumSq'), taps: 1, perChannel: true };
}

/** SmoothQuant's factors at strength `alpha`, as powers of two (1 for a channel without range or weight). */
export function migrationFactors(stats: ChannelStats, profile: WeightProfile, alpha: number): Float64Array {
  const k = profile.perGroup;
  const wMax = new Float64Array(k);
  for (let i = 0; i < profile.maxAbs.length; i++) wMax[i % k] = Math.max(wMax[i % k]!, profile.maxAbs[i]!);
  return Float64Array.from({ length: k }, (_, c) => {
    const x = Math.max(Math.abs(stats.likelyLo?.[c] ?? stats.lo[c]!), Math.abs(stats.likelyHi?.[c] ?? stats.hi[c]!));
    if (!(x > 0) || !(wMax[c]! > 0)) return 1;
    const e = Math.round(Math.log2(wMax[c]! ** (1 - alpha) / x ** alpha));
    return 2 ** Math.max(-MAX_EXPONENT, Math.min(MAX_EXPONENT, e));
  });
}

/** Multiplies the site's channels by `factors` upstream and divides its readers' weight rows by them. */
export function applySmoothing(graph: GraphProto, site: SmoothingSite, factors: ArrayLike<number>, editor: GraphEditor): ActivationEqualized[] {
  const k = site.channels;
  const names = nodeNames(graph);
  const nameOf = new Map((graph.node ?? []).map((n, i) => [n, names[i]!]));
  if (factors.length !== k || !Array.from(factors).every((f) => f > 0 && Number.isFinite(f) && 2 ** Math.round(Math.log2(f)) === f)) {
    throw new CalibrationError(`equalization factors of layer ${quoteName(site.layer.name)} must be ${k} powers of two`);
  }
  const scaleConstant = (node: NodeProto, input: number, scale: (v: number, c: number) => number, suffix: string) => {
    const v = lastAxisConstant(graph, node.input![input]!, k)!;
    node.input![input] = editor.addInitializer(makeTensor(`${nameOf.get(node)}.${suffix}_smoothed`, DataType.FLOAT, [k], Float32Array.from(v, scale)));
  };
  for (const r of site.readers) {
    const wt = getConstant(graph, r.node.input![1]!)!;
    const dims = tensorDims(wt);
    const w = readTensorAsFloat32(wt);
    const channelOf = (i: number) => (r.transposed ? i % k : Math.floor(i / dims[1]!));
    r.node.input![1] = editor.addInitializer(makeTensor(`${nameOf.get(r.node)}.weight_smoothed`, DataType.FLOAT, dims, Float32Array.from(w, (v, i) => v / factors[channelOf(i)]!)));
  }
  for (const s of site.steps) scaleConstant(s.node, s.constant, (v, c) => v * factors[c]!, `input${s.constant}`);
  const a = site.absorber;
  if (a.kind === 'mul') scaleConstant(a.node, a.constant!, (v, c) => v * factors[c]!, `input${a.constant}`);
  else {
    scaleConstant(a.node, 1, (v, c) => v * factors[c]!, 'scale');
    if (a.node.input?.[2]) scaleConstant(a.node, 2, (v, c) => v * factors[c]!, 'bias');
  }
  const scaled = Array.from(factors).filter((f) => f !== 1).length;
  const maxFactor = Math.max(...Array.from(factors));
  return site.readers.map((r) => ({
    layer: r.layer.name,
    absorbedBy: nameOf.get(a.node)!,
    through: site.steps.map((s) => nameOf.get(s.node)!),
    channels: k,
    scaledChannels: scaled,
    maxFactor,
  }));
}
