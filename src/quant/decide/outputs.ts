/**
 * Where a quantized layer's output gets a Q/DQ pair, so that ONNX Runtime runs the layer as an
 * integer kernel. Its QDQ fusions (QLinearConv, QLinearMatMul, QGemm's quantized output,
 * QLinearAveragePool) need the layer's output to go straight into a QuantizeLinear; a Relu in
 * between is dropped when the Q's zero point is the type's minimum. With AMCT's form only the
 * next layer's input is quantized, and only where that input is the layer's output itself.
 *
 * Two kinds of placement:
 * - exact: the output reaches only quantized layers sharing one set of factors, through ops that
 *   keep values on that grid (MaxPool, Reshape, Pad with 0, ...). A Q/DQ with those factors right
 *   after the layer changes no value (rounding to the grid twice is rounding once), so it goes into
 *   the deploy model only.
 * - calibrated: the output also reaches float ops (residual Add, activation functions, pooling,
 *   the graph's outputs stay float). Those ops then read the quantized value; the factors are those of a
 *   quantized consumer when there is one (no second rounding), else the layer's own calibrated
 *   output factors. The fake-quant model carries the same quantization, so both models agree.
 *   Never on a transformer's residual stream (a value that reaches a normalization through Adds):
 *   every block adds its update to it and normalizes it again, so its rounding is carried through the
 *   whole model, and the Adds and normalizations that read it run float anyway.
 */
import { consumerMap, getConstant, findAttribute } from '../../onnx/graph.js';
import { readTensorAsFloat32 } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import { activationRange } from '../calibrate/params.js';
import type { LayerInfo } from '../prepare/registry.js';

export interface QuantFactors {
  scale: number;
  zeroPoint: number;
  bits: 8 | 16;
}

export interface OutputQuantization {
  /** The layer whose output is quantized. */
  layer: string;
  /** The tensor that gets the Q/DQ (the layer's output, or the Relu's right after it). */
  tensor: string;
  activation: QuantFactors;
  /** True when no value changes, so only the deploy model needs it. */
  exact: boolean;
}

/** Planned layers as this module needs them: the layer, its input factors and its output factors. */
export interface PlannedLayer {
  layer: LayerInfo;
  activation: QuantFactors;
  /** The layer's calibrated output factors, where known. */
  output?: QuantFactors;
  /** Only exact placements for this layer: a calibrated one cost too much fidelity. */
  keepOutputFloat?: boolean;
}

const isDefault = (n: NodeProto) => !n.domain || n.domain === 'ai.onnx';

/** Ops that map values on a quantization grid to values on the same grid (0 is on every grid). */
function keepsGrid(node: NodeProto, graph: GraphProto): boolean {
  if (!isDefault(node)) return false;
  switch (node.opType) {
    case 'Relu':
    case 'Reshape':
    case 'Flatten':
    case 'Transpose':
    case 'Squeeze':
    case 'Unsqueeze':
    case 'Identity':
      return (node.output ?? []).filter(Boolean).length === 1;
    case 'MaxPool':
      return !node.output?.[1];
    case 'Pad': {
      const mode = findAttribute(node, 'mode')?.s;
      if (mode && new TextDecoder().decode(mode) !== 'constant') return false;
      const valueAttr = findAttribute(node, 'value');
      if (valueAttr && (valueAttr.f ?? 0) !== 0) return false;
      const valueInput = node.input?.[2];
      if (!valueInput) return true;
      const t = getConstant(graph, valueInput);
      return !!t && readTensorAsFloat32(t).every((v) => v === 0);
    }
    default:
      return false;
  }
}

/**
 * Whether a normalization reads `t`: LayerNormalization, or a decomposed one, which subtracts its own
 * ReduceMean from it (a ReduceMean alone is also a CNN's global pooling).
 */
function normalized(t: string, consumers: ReturnType<typeof consumerMap>): boolean {
  const readers = (consumers.get(t) ?? []).map((c) => c.node).filter(isDefault);
  if (readers.some((n) => n.opType === 'LayerNormalization')) return true;
  const means = new Set(readers.filter((n) => n.opType === 'ReduceMean').map((n) => n.output?.[0]));
  return readers.some((n) => n.opType === 'Sub' && n.input?.[0] === t && means.has(n.input[1]));
}

/**
 * Whether `tensor` is (or, through at most RESIDUAL_DEPTH Adds, flows into) a value a normalization
 * reads: a transformer's residual stream (the patch or token embedding, each block's sum).
 */
export function reachesNormalization(tensor: string, consumers: ReturnType<typeof consumerMap>): boolean {
  let frontier = [tensor];
  for (let depth = 0; depth <= RESIDUAL_DEPTH && frontier.length; depth++) {
    const next: string[] = [];
    for (const t of frontier) {
      if (normalized(t, consumers)) return true;
      for (const { node } of consumers.get(t) ?? []) if (isDefault(node) && node.opType === 'Add' && node.output?.[0]) next.push(node.output[0]);
    }
    frontier = next;
  }
  return false;
}
/** Adds between a block's output and the next normalization: the residual sum, a position embedding. */
const RESIDUAL_DEPTH = 2;

const same = (a: QuantFactors, b: QuantFactors) => a.scale === b.scale && a.zeroPoint === b.zeroPoint && a.bits === b.bits;

/**
 * The tensor whose range the layer's output factors describe: the output itself, or the output of
 * a Relu that is its only reader (ONNX Runtime folds such a Relu into the Q).
 */
export function outputTensor(graph: GraphProto, layer: LayerInfo, consumers = consumerMap(graph)): string {
  const node = graph.node![layer.nodeIndex]!;
  const out = node.output![0]!;
  const readers = consumers.get(out) ?? [];
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name));
  if (readers.length === 1 && readers[0]!.node.opType === 'Relu' && isDefault(readers[0]!.node) && !graphOutputs.has(out)) return readers[0]!.node.output![0]!;
  return out;
}

/**
 * The output quantizations of `plan` in the model `graph` (before any rewrite), and which layers
 * they let ONNX Runtime fuse. With `calibrated` false only exact placements are made (the AMCT form,
 * with the layers fused where that is free).
 */
export interface OutputPlacement {
  outputs: OutputQuantization[];
  /** Layers whose output goes straight into a QuantizeLinear, which ONNX Runtime fuses into an integer kernel. */
  fused: Set<string>;
}

/**
 * Whether running `layer` as an integer kernel pays off in ONNX Runtime 1.30's CPU provider, measured
 * per layer on the fixtures and PP-OCR models (bench/deploy.mjs): QLinearMatMul and QGemm always do;
 * QLinearConv does for ordinary convolutions with a reduction of at least 16 (input channels per
 * group × kernel size) but is several times slower than the float kernel for depthwise convolutions
 * and for a single input channel; QLinearAveragePool is 30× slower than float pooling; ConvTranspose
 * has no integer kernel. No Q is added after layers that do not gain, and they keep float kernels
 * even where a Q follows them anyway (see `keepFloat` and rewrite.ts).
 */
/** Layer types with an integer kernel in ONNX Runtime 1.30's CPU provider (ConvTranspose has none). */
const INTEGER_TYPES = new Set(['Conv', 'MatMul', 'Gemm', 'AveragePool']);

export function gainsFromInteger(graph: GraphProto, layer: LayerInfo): boolean {
  if (layer.opType === 'MatMul' || layer.opType === 'Gemm') return true;
  if (layer.opType !== 'Conv' || !layer.weight) return false;
  const node = graph.node![layer.nodeIndex]!;
  const group = Number(findAttribute(node, 'group')?.i ?? 1);
  const reduction = layer.weight.dims.slice(1).reduce((a, b) => a * b, 1);
  return group === 1 && reduction >= 16;
}

/**
 * `keepFloat`: layers that do not gain can be kept on float kernels even where a Q follows them (the
 * deploy model reads their input through a per-channel DequantizeLinear, opset 13; see rewrite.ts).
 */
export function placeOutputs(graph: GraphProto, all: readonly PlannedLayer[], calibrated: boolean, keepFloat = true): OutputPlacement {
  // Layers in If branches keep float outputs: a Q/DQ across a branch boundary is not placed (yet).
  const plan = all.filter((p) => !p.layer.scope);
  const consumers = consumerMap(graph);
  const graphOutputs = new Set((graph.output ?? []).map((o) => o.name));
  const byNode = new Map<NodeProto, PlannedLayer>(plan.map((p) => [graph.node![p.layer.nodeIndex]!, p]));
  const placed: OutputQuantization[] = [];
  const fused = new Set<string>();
  for (const p of plan) {
    if (p.activation.bits !== 8 || !INTEGER_TYPES.has(p.layer.opType)) continue; // integer kernels take 8-bit inputs
    const node = graph.node![p.layer.nodeIndex]!;
    const out = node.output?.[0];
    if (!out || graphOutputs.has(out)) continue;
    // Follow single readers that keep the grid; `end` is where the value fans out or meets another op.
    let end = out;
    const chain: NodeProto[] = [];
    for (;;) {
      const readers = consumers.get(end) ?? [];
      if (graphOutputs.has(end) || readers.length !== 1) break;
      const next = readers[0]!.node;
      if (readers[0]!.inputIndex !== 0 || !keepsGrid(next, graph)) break;
      chain.push(next);
      end = next.output![0]!;
    }
    const readers = consumers.get(end) ?? [];
    const quantizedReaders = readers.filter((r) => r.inputIndex === 0 && byNode.get(r.node)?.layer.activation === end).map((r) => byNode.get(r.node)!);
    const onlyQuantized = !graphOutputs.has(end) && readers.length > 0 && quantizedReaders.length === readers.length
      && quantizedReaders.every((r) => same(r.activation, quantizedReaders[0]!.activation));
    const gains = gainsFromInteger(graph, p.layer);
    let factors: QuantFactors | undefined;
    let exact: boolean;
    if (onlyQuantized) {
      factors = quantizedReaders[0]!.activation;
      exact = true;
      // ONNX Runtime reaches that Q anyway (right after the layer, through a Relu, or by moving it up
      // through reshapes) and then fuses the layer, quantizing float weights itself if it finds
      // them: unless it is kept on its float kernel, the layer keeps its DequantizeLinear weights
      // so that the numbers stay ours.
      if (!gains && keepFloat && p.layer.weight) continue;
      fused.add(p.layer.name);
    } else {
      // MatMul and Gemm run as integer kernels with a float output anyway: a calibrated Q would add
      // rounding and no speed.
      if (!calibrated || p.keepOutputFloat || !gains || p.layer.opType !== 'Conv' || reachesNormalization(end, consumers)) continue;
      factors = quantizedReaders.find((r) => r.activation.bits === 8)?.activation ?? p.output;
      exact = false;
    }
    if (!factors || factors.bits !== 8) continue;
    // ONNX Runtime drops a Relu between the layer and a Q whose zero point is the type's minimum.
    const reluFirst = chain[0]?.opType === 'Relu' && factors.zeroPoint === activationRange(8).qmin;
    const tensor = reluFirst ? chain[0]!.output![0]! : out;
    if (graphOutputs.has(tensor)) continue;
    // Already in place (the readers' own input Q sits right there), or not worth adding.
    if (exact && (tensor === end || !gains)) continue;
    fused.add(p.layer.name);
    placed.push({ layer: p.layer.name, tensor, activation: factors, exact });
  }
  return { outputs: placed, fused };
}
