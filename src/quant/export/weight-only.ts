/**
 * Weight-only layers: embedding tables (a Gather from a constant float table) and the W and R
 * weights of LSTM, GRU and RNN, quantized to symmetric int8 with one scale per row (a table's row,
 * a gate's output channel in one direction); their inputs and states stay float. Data-free, so
 * nothing is calibrated or recorded: the scales follow from the weights, and a config rebuilds them.
 *
 * Deploy forms, chosen so that the runtime does not pay for them on every run:
 * - an embedding looks rows up in the int8 table and dequantizes only those:
 *   `Gather(q, ids) → Cast → Mul(Gather(scales, ids))`, so the table is held as int8 (a quarter of the
 *   float bytes) rather than dequantized whole on every run, as a DequantizeLinear before it would be;
 * - a recurrent layer reads `Cast(q) → Mul(scales)`, which ONNX Runtime folds into a float constant
 *   when it loads the model: the file stores int8 and the layer runs the float kernel, on every
 *   runtime (integer recurrent kernels exist only in onnxruntime's CPU contrib ops).
 * Either way the values are exactly the fake-quant model's: float32(q) · scale.
 *
 * Under the 'webgpu' target (see prepare/target.ts) every layer with a constant weight is weight-only:
 * - MatMul and Gemm become MatMulNBits (com.microsoft), B in 4- or 8-bit blocks (block-weights.ts),
 *   which onnxruntime-web's WebGPU backend runs on the GPU reading the packed codes; a Gemm's transA,
 *   alpha and bias become a Transpose, a Mul and an Add around it;
 * - an embedding becomes GatherBlockQuantized (com.microsoft): int4/uint4, or uint8 at 8 bits;
 * - Conv and ConvTranspose read `Cast(q) → Mul(scales)` with one scale per output channel, folded
 *   into a float constant at load like a recurrent layer's.
 * The values are the fake-quant model's: (q − zero point) · scale in float32.
 */
import { intAttr, GraphEditor } from '../../onnx/editor.js';
import { findAttribute } from '../../onnx/graph.js';
import { allNames, byGraph, constantAt, graphAt } from '../../onnx/scope.js';
import { DataType, adoptTensor, makeTensor, readTensorAsFloat32 } from '../../onnx/tensor.js';
import { onnx, type GraphProto, type ModelProto, type NodeProto } from '../../onnx/types.js';
import type { LayerInfo, WeightSpec } from '../prepare/registry.js';
import { type QuantizationSession, layerConfig } from '../types.js';
import { DEFAULT_BLOCK_SIZE } from '../config/config.js';
import { setOwn, type WeightRecord } from '../config/record.js';
import { blockBytes, type BlockQuantizedWeight, matMulZeroPointsReadable, packCodes, quantizeBlocks, transpose } from './block-weights.js';
import { quantizeWeight, type QuantizedWeight } from './weights.js';

export interface WeightOnlyQuantization {
  layer: LayerInfo;
  /** Per weight input of the node (0: the table; 1: W or B; 2: R), its quantization. */
  weights: Map<number, { spec: WeightSpec; q: QuantizedWeight | BlockQuantizedWeight }>;
}

const isBlocked = (q: QuantizedWeight | BlockQuantizedWeight): q is BlockQuantizedWeight => 'blockSize' in q;

/** A Gemm's attributes that change how its B is laid out or its result scaled. */
function gemmForm(node: NodeProto | undefined) {
  const int = (name: string, d: number) => Number(node ? findAttribute(node, name)?.i ?? d : d);
  const float = (name: string) => (node ? findAttribute(node, name)?.f ?? 1 : 1);
  return { transA: int('transA', 0) === 1, transB: int('transB', 0) === 1, alpha: float('alpha'), beta: float('beta') };
}

/**
 * Blocks along the reduction axis: a MatMul's or Gemm's B per column (its K values), an
 * embedding's table per row; fq back in the weight's own layout.
 */
function quantizeInBlocks(q: QuantizationSession, layer: LayerInfo, spec: WeightSpec, bits: 4 | 8, blockSize: number): BlockQuantizedWeight {
  const w = readTensorAsFloat32(constantAt(q.work.graph!, layer.scope, spec.name)!);
  const [rows, cols] = spec.dims as [number, number];
  // Vectors are rows of the stored tensor for a table and for Gemm's transposed B ([N, K]).
  if (layer.opType === 'Gather') return quantizeBlocks(w, rows, cols, bits, blockSize);
  const transB = layer.opType === 'Gemm' && gemmForm(nodeIn(graphAt(q.work.graph!, layer.scope)!, layer)).transB;
  const [k, n] = transB ? [cols, rows] : [rows, cols];
  const zeroPoints = matMulZeroPointsReadable(n, Math.ceil(k / blockSize), bits);
  if (transB) return quantizeBlocks(w, rows, cols, bits, blockSize, zeroPoints);
  const b = quantizeBlocks(transpose(w, rows, cols), cols, rows, bits, blockSize, zeroPoints);
  return { ...b, fq: transpose(b.fq, cols, rows) };
}

/** Weight-only layers with one scale per output channel (the 'webgpu' target's convolutions); the others have one per row. */
const perChannel = (layer: LayerInfo) => layer.opType === 'Conv' || layer.opType === 'ConvTranspose';

/** One scale per output channel (the weight spec's channel axis), for weight-only Conv and ConvTranspose. */
function quantizeChannels(q: QuantizationSession, layer: LayerInfo, spec: WeightSpec): QuantizedWeight {
  const w = readTensorAsFloat32(constantAt(q.work.graph!, layer.scope, spec.name)!);
  return quantizeWeight(q.kernels, w, spec.dims, Math.max(0, spec.channelAxis));
}

/** One scale per row: every axis but the last is a row index. */
function quantizeRows(q: QuantizationSession, layer: LayerInfo, spec: WeightSpec, perRow: boolean): QuantizedWeight {
  const w = readTensorAsFloat32(constantAt(q.work.graph!, layer.scope, spec.name)!);
  const cols = spec.dims[spec.dims.length - 1]!;
  return quantizeWeight(q.kernels, w, [w.length / cols, cols], perRow ? 0 : -1);
}

/** Quantized weights per working model: the search builds many models from one. */
const cache = new WeakMap<QuantizationSession['work'], Map<string, WeightOnlyQuantization>>();

/**
 * The weight-only layers the config enables (or `only` of them), with their quantized weights; `bits`
 * overrides the config's bit width per layer (the mixed 4/8-bit search's other level).
 */
export function planWeightOnly(q: QuantizationSession, only?: readonly LayerInfo[], bits?: ReadonlyMap<string, 4 | 8>): WeightOnlyQuantization[] {
  let known = cache.get(q.work);
  if (!known) cache.set(q.work, (known = new Map()));
  const out: WeightOnlyQuantization[] = [];
  for (const layer of only ?? q.weightOnly) {
    const c = layerConfig(q.config, layer.name);
    if (c?.quant_enable !== true) continue;
    const wp = c.weight_quant_params;
    const perRow = wp?.channel_wise !== false;
    const width = (layer.blocked ? bits?.get(layer.name) : undefined) ?? wp?.num_bits ?? 8;
    const blockSize = wp?.block_size ?? DEFAULT_BLOCK_SIZE;
    const key = `${layer.name}|${perRow}|${width}|${blockSize}`;
    let e = known.get(key);
    if (!e) {
      const specs: [number, WeightSpec | undefined][] = [[layer.opType === 'Gather' ? 0 : 1, layer.weight], [2, layer.recurrence]];
      const quantize = (spec: WeightSpec) =>
        layer.blocked ? quantizeInBlocks(q, layer, spec, width, blockSize)
        : perChannel(layer) ? quantizeChannels(q, layer, spec)
        : quantizeRows(q, layer, spec, perRow);
      e = { layer, weights: new Map(specs.filter((s): s is [number, WeightSpec] => s[1] !== undefined).map(([i, spec]) => [i, { spec, q: quantize(spec) }])) };
      known.set(key, e);
    }
    out.push(e);
  }
  return out;
}

/** Bytes of the layers' quantized weights in the deploy model, and as float32. */
export function weightOnlyBytes(plan: readonly WeightOnlyQuantization[]): { quantized: number; float: number } {
  let quantized = 0;
  let float = 0;
  for (const w of plan) {
    for (const { q } of w.weights.values()) {
      float += q.fq.length * 4;
      quantized += isBlocked(q) ? blockBytes(q) : q.q.length + q.scale.length * 4;
    }
  }
  return { quantized, float };
}

/** The record's account of the layers' weights: bits, block size and bytes per layer. */
export function weightOnlyRecord(plan: readonly WeightOnlyQuantization[], scaling?: ReadonlyMap<string, number[]>): Record<string, WeightRecord> {
  const out: Record<string, WeightRecord> = {};
  for (const w of plan) {
    const bytes = weightOnlyBytes([w]);
    const blocked = blocksOf(w);
    setOwn(out, w.layer.name, {
      num_bits_w: blocked?.bits ?? 8, ...(blocked ? { block_size: blocked.blockSize } : {}), bytes: bytes.quantized, float_bytes: bytes.float,
      ...(scaling?.has(w.layer.name) ? { equalize_w: [...scaling.get(w.layer.name)!] } : {}),
    });
  }
  return out;
}

/** A block-quantized layer's weights (its first weight input's; a layer's weights share one form), else undefined. */
function blocksOf(w: WeightOnlyQuantization): BlockQuantizedWeight | undefined {
  const first = [...w.weights.values()][0]?.q;
  return first && isBlocked(first) ? first : undefined;
}

/** The bit width of a weight-only layer's quantized weights. */
export function weightOnlyBits(w: WeightOnlyQuantization): 4 | 8 {
  return blocksOf(w)?.bits ?? 8;
}

/** The plan by the graph each layer is in (the main graph, an If branch), with an editor for it. */
function editorsByGraph(model: ModelProto, plan: readonly WeightOnlyQuantization[]): { graph: GraphProto; editor: () => GraphEditor; plan: WeightOnlyQuantization[] }[] {
  const groups = byGraph(model.graph!, plan, (p) => p.layer.scope, (p) => `layer '${p.layer.name}'`);
  // Editors are made one after another's commit, so each sees the names the others added.
  return [...groups].map(([graph, plan]) => ({ graph, plan, editor: () => new GraphEditor(graph, graph === model.graph ? [] : allNames(model.graph!)) }));
}

const nodeIn = (graph: GraphProto, layer: LayerInfo) => graph.node!.find((n) => n.name === layer.name)!;

/** Fake-quant form: the layer reads the dequantized weights. */
export function writeFakeQuantWeightOnly(model: ModelProto, plan: readonly WeightOnlyQuantization[]): void {
  for (const { graph, editor: make, plan: layers } of editorsByGraph(model, plan)) {
    const editor = make();
    for (const { layer, weights } of layers) {
      const node = nodeIn(graph, layer);
      for (const [input, { spec, q }] of weights) node.input![input] = editor.addInitializer(adoptTensor(`${spec.name}_fake_quant`, DataType.FLOAT, spec.dims, q.fq));
    }
    editor.commit();
  }
}

/** The scale tensor of a row- or channel-quantized weight, shaped to broadcast against it (or against a looked-up row). */
function scaleTensor(editor: GraphEditor, spec: WeightSpec, q: QuantizedWeight, dims: readonly number[]): string {
  return editor.addInitializer(makeTensor(`${spec.name}_scale`, DataType.FLOAT, q.axis < 0 ? [] : dims, q.scale));
}

/** The domain of MatMulNBits and GatherBlockQuantized. */
export const MICROSOFT_DOMAIN = 'com.microsoft';

/** Deploy form (see the module comment). */
export function writeDeployWeightOnly(model: ModelProto, plan: readonly WeightOnlyQuantization[]): void {
  for (const group of editorsByGraph(model, plan)) deployGraph(group.graph, group.editor(), group.plan);
  if (plan.some((p) => p.layer.blocked) && !(model.opsetImport ?? []).some((o) => o.domain === MICROSOFT_DOMAIN)) {
    model.opsetImport = [...(model.opsetImport ?? []), onnx.OperatorSetIdProto.create({ domain: MICROSOFT_DOMAIN, version: 1 })];
  }
}

type MakeNode = (opType: string, base: string, input: string[], output: string[], attribute?: onnx.IAttributeProto[], domain?: string) => NodeProto;

function deployGraph(graph: GraphProto, editor: GraphEditor, plan: readonly WeightOnlyQuantization[]): void {
  const before = new Map<NodeProto, NodeProto[]>();
  const after = new Map<NodeProto, NodeProto[]>();
  const replaced = new Set<NodeProto>();
  const node: MakeNode = (opType, base, input, output, attribute = [], domain) =>
    onnx.NodeProto.create({ name: editor.name(`${base}/${opType}`), opType, input, output, attribute: attribute.map((a) => onnx.AttributeProto.create(a)), ...(domain ? { domain } : {}) });
  const toFloat = [intAttr('to', DataType.FLOAT)];
  for (const { layer, weights } of plan) {
    const target = nodeIn(graph, layer);
    for (const [input, { spec, q }] of weights) {
      if (isBlocked(q)) {
        const nodes = layer.opType === 'Gather' ? gatherBlocks(editor, node, target, spec, q) : matMulBlocks(editor, node, target, spec, q);
        after.set(target, nodes);
        replaced.add(target);
        continue;
      }
      const qName = editor.addInitializer(adoptTensor(`${spec.name}_quantized`, DataType.INT8, spec.dims, q.q));
      if (layer.opType === 'Gather') {
        const [, ids] = target.input!;
        const output = target.output![0]!;
        target.input![0] = qName;
        const rows = editor.name(`${output}_quantized`);
        target.output![0] = rows;
        const asFloat = editor.name(`${output}_int8_as_float`);
        const added = [node('Cast', layer.name, [rows], [asFloat], toFloat)];
        let scale = scaleTensor(editor, spec, q, [spec.dims[0]!, 1]);
        if (q.axis >= 0) {
          const looked = editor.name(`${output}_row_scale`);
          added.push(node('Gather', `${layer.name}/scale`, [scale, ids!], [looked], target.attribute?.filter((a) => a.name === 'axis') ?? []));
          scale = looked;
        }
        added.push(node('Mul', layer.name, [asFloat, scale], [output]));
        after.set(target, added);
      } else {
        const asFloat = editor.name(`${spec.name}_int8_as_float`);
        const value = editor.name(`${spec.name}_dequantized`);
        // Rows (a recurrent gate's output channel): every axis but the last; channels: one axis.
        const dims = perChannel(layer) ? spec.dims.map((d, i) => (i === q.axis ? d : 1)) : [...spec.dims.slice(0, -1), 1];
        const scale = scaleTensor(editor, spec, q, dims);
        before.set(target, [...(before.get(target) ?? []), node('Cast', spec.name, [qName], [asFloat], toFloat), node('Mul', spec.name, [asFloat, scale], [value])]);
        target.input![input] = value;
      }
    }
  }
  graph.node = graph.node!.flatMap((n) => [...(before.get(n) ?? []), ...(replaced.has(n) ? [] : [n]), ...(after.get(n) ?? [])]);
  editor.commit();
}

/** The codes, scales and zero points of a block-quantized weight as initializers. */
function blockTensors(editor: GraphEditor, spec: WeightSpec, q: BlockQuantizedWeight, shape: 'matmul' | 'gather') {
  if (shape === 'matmul') {
    const blob = (q.blockSize * q.bits) / 8;
    const codes = editor.addInitializer(makeTensor(`${spec.name}_blocks`, DataType.UINT8, [q.vectors, q.blocks, blob], packCodes(q.q, q.bits, q.blocks * q.blockSize, q.vectors)));
    const scales = editor.addInitializer(makeTensor(`${spec.name}_scales`, DataType.FLOAT, [q.vectors * q.blocks], q.scale));
    const zeros = q.zeroPoint && editor.addInitializer(makeTensor(`${spec.name}_zero_points`, DataType.UINT8, [q.vectors * Math.ceil((q.blocks * q.bits) / 8)], packCodes(q.zeroPoint, q.bits, q.blocks, q.vectors)));
    return { codes, scales, zeros };
  }
  // GatherBlockQuantized: the table's own shape; 4-bit codes as int4 (symmetric: the zero point is
  // 0) or uint4 with zero points, 8-bit as uint8 (its default zero point is 128, the middle code).
  const [rows, cols] = spec.dims as [number, number];
  const row = (codes: Uint8Array) => {
    const out = new Uint8Array(rows * cols);
    const stride = q.blocks * q.blockSize;
    for (let r = 0; r < rows; r++) out.set(codes.subarray(r * stride, r * stride + cols), r * cols);
    return out;
  };
  const symmetric4 = q.bits === 4 && !q.zeroPoint;
  const type = q.bits === 8 ? DataType.UINT8 : symmetric4 ? DataType.INT4 : DataType.UINT4;
  const values = symmetric4 ? Int8Array.from(row(q.q), (c) => c - 8) : row(q.q);
  const codes = editor.addInitializer(makeTensor(`${spec.name}_blocks`, type, [rows, cols], values));
  const scales = editor.addInitializer(makeTensor(`${spec.name}_scales`, DataType.FLOAT, [rows, q.blocks], q.scale));
  const zeros = q.zeroPoint && editor.addInitializer(makeTensor(`${spec.name}_zero_points`, type, [rows, q.blocks], q.zeroPoint));
  return { codes, scales, zeros };
}

function gatherBlocks(editor: GraphEditor, node: MakeNode, target: NodeProto, spec: WeightSpec, q: BlockQuantizedWeight): NodeProto[] {
  const { codes, scales, zeros } = blockTensors(editor, spec, q, 'gather');
  const axis = Number(findAttribute(target, 'axis')?.i ?? 0);
  const attributes = [intAttr('gather_axis', axis), intAttr('quantize_axis', 1), intAttr('block_size', q.blockSize), ...(q.bits === 8 ? [intAttr('bits', 8)] : [])];
  return [node('GatherBlockQuantized', target.name!, [codes, target.input![1]!, scales, ...(zeros ? [zeros] : [])], [target.output![0]!], attributes, MICROSOFT_DOMAIN)];
}

/** MatMul or Gemm as MatMulNBits, with a Gemm's transA, alpha and C around it. */
function matMulBlocks(editor: GraphEditor, node: MakeNode, target: NodeProto, spec: WeightSpec, q: BlockQuantizedWeight): NodeProto[] {
  const { codes, scales, zeros } = blockTensors(editor, spec, q, 'matmul');
  const base = target.name!;
  const out: NodeProto[] = [];
  const gemm = target.opType === 'Gemm' ? gemmForm(target) : undefined;
  let a = target.input![0]!;
  if (gemm?.transA) {
    const t = editor.name(`${base}_a_transposed`);
    out.push(node('Transpose', base, [a], [t], [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 0] }]));
    a = t;
  }
  const c = gemm ? target.input![2] || undefined : undefined;
  const last = target.output![0]!;
  const steps = (gemm && gemm.alpha !== 1 ? 1 : 0) + (c ? 1 : 0);
  const product = steps ? editor.name(`${base}_product`) : last;
  const attributes = [intAttr('K', q.length), intAttr('N', q.vectors), intAttr('bits', q.bits), intAttr('block_size', q.blockSize)];
  out.push(node('MatMulNBits', base, [a, codes, scales, ...(zeros ? [zeros] : [])], [product], attributes, MICROSOFT_DOMAIN));
  let value = product;
  if (gemm && gemm.alpha !== 1) {
    const alpha = editor.addInitializer(makeTensor(`${base}.alpha`, DataType.FLOAT, [], [gemm.alpha]));
    const scaled = c ? editor.name(`${base}_scaled`) : last;
    out.push(node('Mul', `${base}/alpha`, [value, alpha], [scaled]));
    value = scaled;
  }
  if (c) {
    let bias = c;
    if (gemm!.beta !== 1) {
      const beta = editor.addInitializer(makeTensor(`${base}.beta`, DataType.FLOAT, [], [gemm!.beta]));
      bias = editor.name(`${base}_bias`);
      out.push(node('Mul', `${base}/beta`, [c, beta], [bias]));
    }
    out.push(node('Add', `${base}/bias`, [value, bias], [last]));
  }
  return out;
}
