/**
 * Activation-aware weight scaling for the block-quantized layers of the weight-only targets (AWQ, Lin
 * et al. 2024). A weight-only MatMul keeps its input in float, so what its 4- or 8-bit blocks lose
 * shows in the output as Σ_k x_k · (W_k − Q(W_k)): an error in a row k that multiplies a large input
 * channel costs the most. Transformers have a few such channels (the outlier features behind a
 * LayerNorm, Dettmers et al. 2022), whose weight rows are often small, so a block's one scale leaves
 * them a few codes or none. Scaling row k of the weight up by s_k and input channel k down by it
 * changes nothing in float and gives those rows more codes; the normalization before the layer pays
 * for 1/s_k in its own scale and bias, as for SmoothQuant (smooth-linear.ts finds the same sites:
 * a tensor read only by such layers, behind a LayerNorm).
 *
 * Per site, s_k = E[x_k²]^(α/2) (the RMS of input channel k to the power α, over the calibration
 * batches, normalized to a geometric mean of 1 and rounded to powers of two so that the rescaling is
 * exact), with α from ALPHAS chosen by the output error it predicts: the block quantizer's squared
 * error of every reader's scaled weight, each input channel weighed by E[x_k²] / s_k² (what the scaled
 * input carries), which is the expected output error for uncorrelated channels. α = 0 is no scaling;
 * a site is scaled only when the predicted error falls by MIN_SCALING_GAIN. The factors are kept in
 * the record (`weights.<layer>.equalize_w`), from which a rerun rescales without data. It is the
 * weight-only targets' form of `activation_equalization` (same key, same sites), and off with it.
 */
import { GraphEditor } from '../../onnx/editor.js';
import { getConstant } from '../../onnx/graph.js';
import { readTensorAsFloat32, tensorDims } from '../../onnx/tensor.js';
import { QuantConfigError } from '../../errors.js';
import { RunLog, emitProgress } from '../../runtime/log.js';
import { quoteName } from '../../text.js';
import { type BatchSource, replayBatches } from '../calibrate/calibrate.js';
import { DEFAULT_BLOCK_SIZE } from '../config/config.js';
import { type QuantRecord } from '../config/record.js';
import { matMulZeroPointsReadable, quantizeBlocks, transpose } from '../export/block-weights.js';
import { type LayerInfo, scanLayers } from '../prepare/registry.js';
import { type QuantizationSession, type QuantizeModelOptions, layerConfig } from '../types.js';
import { type SmoothingSite, applySmoothing, findSmoothingSites } from './smooth-linear.js';

/** Strengths tried per site besides α = 0, no scaling (AWQ searches a grid of α in [0, 1]). */
export const ALPHAS: readonly number[] = Object.freeze([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1]);
/** A site is scaled only when its predicted output error falls by this share: the prediction ignores correlations between channels. */
export const MIN_SCALING_GAIN = 0.05;
const MAX_EXPONENT = 8;

/** One reader's weight as vectors along K ([N][K]), with how it is quantized. */
interface ReaderWeight {
  vectors: Float32Array;
  n: number;
  bits: 4 | 8;
  blockSize: number;
}

function readerWeights(q: QuantizationSession, site: SmoothingSite): ReaderWeight[] {
  const graph = q.work.graph!;
  const k = site.channels;
  return site.readers.map((r) => {
    const t = getConstant(graph, r.node.input![1]!)!;
    const w = readTensorAsFloat32(t);
    const n = tensorDims(t)[r.transposed ? 0 : 1]!;
    const p = layerConfig(q.config, r.layer.name)?.weight_quant_params;
    return { vectors: r.transposed ? w : transpose(w, k, n), n, bits: p?.num_bits === 4 ? 4 : 8, blockSize: p?.block_size ?? DEFAULT_BLOCK_SIZE };
  });
}

/** Σ over readers of the block quantizer's error of the weight rows scaled up by 1/f, channel k weighed by E[x_k²] · f_k². */
function predictedError(readers: readonly ReaderWeight[], moments: Float32Array, f: Float64Array): number {
  const k = moments.length;
  const importance = Float32Array.from(moments, (h, c) => h * f[c]! * f[c]!);
  let error = 0;
  for (const r of readers) {
    const scaled = Float32Array.from(r.vectors, (v, i) => v / f[i % k]!);
    error += quantizeBlocks(scaled, r.n, k, r.bits, r.blockSize, matMulZeroPointsReadable(r.n, Math.ceil(k / r.blockSize), r.bits), importance).error;
  }
  return error;
}

/** The factors f = 1/s at strength `alpha`, as powers of two (see the module comment). */
function factorsAt(moments: Float32Array, alpha: number): Float64Array {
  const logs = Array.from(moments, (h) => (h > 0 ? (alpha / 2) * Math.log2(h) : Number.NaN));
  const seen = logs.filter((v) => Number.isFinite(v));
  const centre = seen.length ? seen.reduce((a, b) => a + b, 0) / seen.length : 0;
  return Float64Array.from(logs, (v) => (Number.isFinite(v) ? 2 ** -Math.max(-MAX_EXPONENT, Math.min(MAX_EXPONENT, Math.round(v - centre))) : 1));
}

/** The factors with the least predicted error, or undefined where none beats no scaling by MIN_SCALING_GAIN. */
export function chooseScaling(readers: readonly ReaderWeight[], moments: Float32Array): Float64Array | undefined {
  const none = new Float64Array(moments.length).fill(1);
  const base = predictedError(readers, moments, none);
  let best: { f: Float64Array; error: number } = { f: none, error: base };
  for (const alpha of ALPHAS) {
    const f = factorsAt(moments, alpha);
    if (f.every((v) => v === 1)) continue;
    const error = predictedError(readers, moments, f);
    if (error < best.error) best = { f, error };
  }
  return best.error < base * (1 - MIN_SCALING_GAIN) ? best.f : undefined;
}

/**
 * Rescales the sites of the enabled block-quantized layers: factors from `record.weights` where it
 * has them, from one pass over the batches for the others. Returns the factors per layer (the readers
 * of a site share them) and the passes made. The working model changes in place; the layers'
 * weight names and node indices are refreshed.
 */
export async function scaleBlockWeights(
  q: QuantizationSession,
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: QuantizeModelOptions,
): Promise<{ factors: Map<string, number[]>; passes: number }> {
  const graph = q.work.graph!;
  const measure = q.config.activation_equalization !== false;
  const layers = q.weightOnly.filter((l) => l.blocked && layerConfig(q.config, l.name)?.quant_enable === true);
  const sites = findSmoothingSites(graph, layers, () => true, true);
  const factors = new Map<string, number[]>();
  const recorded = (l: LayerInfo) => record.weights?.[l.name]?.equalize_w;
  const misfits: string[] = [];
  const todo: SmoothingSite[] = [];
  for (const site of sites) {
    // Readers the search left float have no weights entry; the others of a site share its factors.
    const given = site.readers.flatMap((r) => {
      const f = recorded(r.layer);
      return f ? [{ name: r.layer.name, f }] : [];
    });
    if (given.length === 0) {
      // A record that covers the layers without factors kept them unscaled.
      if (measure && !site.readers.some((r) => record.weights?.[r.layer.name])) todo.push(site);
      continue;
    }
    const first = given[0]!;
    const other = given.find((g) => String(g.f) !== String(first.f));
    if (other) misfits.push(`layers ${quoteName(first.name)} and ${quoteName(other.name)} read one input, so their weights.equalize_w must be the same factors`);
    else if (first.f.length !== site.channels) misfits.push(`weights ${quoteName(first.name)}.equalize_w has ${first.f.length} factors; its input has ${site.channels} channels`);
    else for (const r of site.readers) factors.set(r.layer.name, first.f);
  }
  const onSite = new Set(sites.flatMap((s) => s.readers.map((r) => r.layer.name)));
  for (const l of layers) if (recorded(l) && !onSite.has(l.name)) misfits.push(`weights ${quoteName(l.name)} has equalize_w, but its input cannot be rescaled here (not read only by block-quantized MatMul or Gemm layers behind a normalization)`);
  if (misfits.length) throw new QuantConfigError(misfits, 'record');
  if (todo.length) {
    const moments = new Map(todo.map((s) => [s.layer.activation, new ChannelMoments()]));
    const printLog = new RunLog();
    await replayBatches(q.work, [...moments.keys()], await batches(), { ...options, batchNum: q.config.batch_num }, (outputs, batch) => {
      for (const [t, m] of moments) {
        const x = outputs[t];
        if (x?.type === 'float32' && x.dims.length) m.add(x.data as Float32Array, Number(x.dims[x.dims.length - 1]));
      }
      const message = `weight scaling, batch ${batch + 1}/${q.config.batch_num}`;
      emitProgress(printLog, options.onProgress, { phase: 'calibration', stage: 'calibration', step: 'weight scaling', message, pass: 1, batch: batch + 1, batchNum: q.config.batch_num, done: batch + 1, total: q.config.batch_num }, `weight scaling batch ${batch + 1}`, `calibration: ${message}`);
    });
    for (const site of todo) {
      const h = moments.get(site.layer.activation)!.mean();
      if (h?.length !== site.channels) continue;
      const f = chooseScaling(readerWeights(q, site), h);
      if (f) for (const r of site.readers) factors.set(r.layer.name, Array.from(f));
    }
  }
  const passes = todo.length ? 1 : 0;
  if (factors.size === 0) return { factors, passes };
  const editor = new GraphEditor(graph);
  for (const site of sites) {
    const f = factors.get(site.layer.name);
    if (f) applySmoothing(graph, site, f, editor);
  }
  editor.commit();
  const fresh = new Map(scanLayers(graph).layers.map((l) => [l.name, l]));
  for (const l of [...q.layers, ...q.weightOnly]) {
    const f = fresh.get(l.name);
    if (f) Object.assign(l, { nodeIndex: f.nodeIndex, activation: f.activation, ...(f.weight ? { weight: { ...l.weight!, name: f.weight.name } } : {}) });
  }
  return { factors, passes };
}

/**
 * Σx² per channel of the last axis, in float64 over any number of batches. A plain loop: one
 * multiply-add per element, beside the runtime's own pass that produced the tensor; K doubles,
 * whatever the batch count.
 */
class ChannelMoments {
  private sums?: Float64Array;
  private rows = 0;
  /** Ignored where a batch's last axis differs from the first's (a layer reads one width). */
  add(x: Float32Array, channels: number): void {
    if (!(channels > 0) || x.length % channels !== 0) return;
    const sums = (this.sums ??= new Float64Array(channels));
    if (sums.length !== channels) return;
    for (let i = 0; i < x.length; i += channels) {
      for (let c = 0; c < channels; c++) {
        const v = x[i + c]!;
        sums[c] += v * v;
      }
    }
    this.rows += x.length / channels;
  }
  mean(): Float32Array | undefined {
    return this.sums && this.rows > 0 ? Float32Array.from(this.sums, (v) => v / this.rows) : undefined;
  }
}
