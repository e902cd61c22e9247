/**
 * Layers that onnxruntime's CPU runs slower in int8 than in float, which createQuantConfig leaves
 * float by default (`skip_slow_layers`). An int8 layer pays a QuantizeLinear on its input and a
 * requantization on its output whatever its size, and wins back only what its integer kernel saves
 * over the float one; measured per layer in onnxruntime-node 1.30 (1 thread, bench/deploy.mjs and
 * scratch timings of each form alone), three kinds never win it back:
 * - grouped and depthwise Conv: onnxruntime has no fast int8 depthwise kernel on x86 and its float
 *   one is a few multiply-adds per element, so the Q/DQ dominate;
 * - a Conv whose dot products are shorter than 16 (Cin/group × kH × kW: a first layer over one or
 *   three channels): too little arithmetic per element for int8 to repay its conversions;
 * - AveragePool: onnxruntime runs it in float behind Q/DQ (no QLinearAveragePool in the QDQ
 *   fusions), and the Q/DQ also break its Pad fusion.
 * - a layer with no int8 neighbour and little work per element its Q/DQ convert (isolatedLayers).
 * With the first three float the deploy/float latency fell on MNIST CNN 1.68 → 1.09, PP-OCR cls 0.95 → 0.71,
 * det 0.80 → 0.76, and rec stayed 0.58–0.65, while the deploy model's cosine to float rose (cls
 * 0.99202 → 0.99853, rec 0.97556 → 0.99448): these layers also cost the most fidelity per byte saved.
 */
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import type { LayerInfo } from './registry.js';

/** Below this dot-product length a Conv stays float by default. */
export const MIN_INT8_REDUCTION = 16;

/**
 * Below this many multiply-adds per element converted, a layer alone in int8 stays float by default
 * (see isolatedLayers). Measured, onnxruntime-node 1.30, 1 thread: the MNIST CNN's conv2 (48) cost
 * 0.4 ms of a 2.4 ms model in int8 between its float neighbours, and its deploy/float went from 1.13
 * to 0.95 with it float; its Gemm pair, int8 together (the second reads the first's int8 output),
 * still gains.
 */
export const MIN_ISOLATED_WORK = 64;

/**
 * Ops an int8 tensor passes through on its way between two quantized layers without being turned back
 * to float for good (fused activations, folded normalizations, layout ops, onnxruntime's QDQ
 * propagation, elementwise ops it quantizes, Dropout, which it removes at load). Generous on purpose: a layer counts as isolated only
 * when nothing of this kind links it to another int8 layer.
 */
const PASS_THROUGH = new Set([
  'Relu', 'Clip', 'LeakyRelu', 'HardSwish', 'HardSigmoid', 'Sigmoid', 'BatchNormalization', 'Add', 'Mul', 'MaxPool',
  'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Concat', 'Identity', 'Dropout', 'Resize',
]);

/** Multiply-adds per element its QuantizeLinear and DequantizeLinear convert, for a Conv with a constant weight. */
function workPerConverted(l: LayerInfo, node: NodeProto | undefined): number | undefined {
  const w = l.weight?.dims;
  if (!w || l.second) return undefined;
  if (l.opType === 'Conv' && w.length >= 3) {
    const strides = (node?.attribute?.find((a) => a.name === 'strides')?.ints ?? []).map(Number);
    const step = strides.reduce((a, b) => a * b, 1);
    const reduction = w.slice(1).reduce((a, b) => a * b, 1);
    // Per output position: Cout · reduction multiply-adds; Cin · stride² input values and Cout outputs converted.
    return (w[0]! * reduction) / (w[1]! * step + w[0]!);
  }
  // Gemm and MatMul alone were not measured: they keep int8.
  return undefined;
}

/**
 * Layers of `on` with no quantized neighbour: their input comes from no layer of `on` and their
 * output reaches none (through PASS_THROUGH ops), so each pays a QuantizeLinear over its whole input
 * and a DequantizeLinear over its whole output for itself alone; those with less than
 * MIN_ISOLATED_WORK multiply-adds per converted element, by reason.
 */
function isolatedLayers(graph: GraphProto, on: readonly LayerInfo[]): Map<string, string> {
  const nodes = graph.node ?? [];
  const constants = new Set((graph.initializer ?? []).map((t) => t.name));
  const producer = new Map<string, NodeProto>();
  const consumers = new Map<string, NodeProto[]>();
  for (const n of nodes) {
    for (const o of n.output ?? []) producer.set(o, n);
    for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  const quantized = new Set(on.map((l) => l.name));
  const reachesUp = (tensor: string, seen: Set<NodeProto>): boolean => {
    const p = producer.get(tensor);
    if (!p || seen.has(p)) return false;
    seen.add(p);
    if (quantized.has(p.name ?? '')) return true;
    return PASS_THROUGH.has(p.opType ?? '') && (p.input ?? []).some((i) => !constants.has(i) && reachesUp(i, seen));
  };
  const reachesDown = (tensor: string, seen: Set<NodeProto>): boolean =>
    (consumers.get(tensor) ?? []).some((c) => {
      if (seen.has(c)) return false;
      seen.add(c);
      if (quantized.has(c.name ?? '')) return true;
      return PASS_THROUGH.has(c.opType ?? '') && (c.output ?? []).some((o) => reachesDown(o, seen));
    });
  const out = new Map<string, string>();
  for (const l of on) {
    const node = nodes[l.nodeIndex];
    const work = workPerConverted(l, node);
    if (work === undefined || work >= MIN_ISOLATED_WORK || !node) continue;
    const self = new Set([node]);
    if (reachesUp(l.activation, new Set(self)) || (node.output ?? []).some((o) => reachesDown(o, new Set(self)))) continue;
    out.set(l.name, `a ${l.opType} with no int8 neighbour and ${work.toFixed(0)} multiply-adds per element its Q/DQ convert (under ${MIN_ISOLATED_WORK}), which its integer kernel does not repay`);
  }
  return out;
}

/** Per layer left float by default, why (in words for the layer report). */
export function slowInt8Layers(graph: GraphProto, layers: readonly LayerInfo[]): Map<string, string> {
  const nodes = graph.node ?? [];
  const out = new Map<string, string>();
  for (const l of layers) {
    if (l.scope || l.weightOnly) continue;
    if (l.opType === 'AveragePool') {
      out.set(l.name, 'an AveragePool, which onnxruntime runs in float behind Q/DQ');
      continue;
    }
    if (l.opType !== 'Conv' || !l.weight) continue;
    const node = nodes[l.nodeIndex];
    const group = Number(node?.attribute?.find((a) => a.name === 'group')?.i ?? 1);
    const reduction = l.weight.dims.slice(1).reduce((a, b) => a * b, 1);
    if (group > 1) out.set(l.name, `a ${group === l.weight.dims[0] ? 'depthwise' : 'grouped'} Conv (group ${group}), for which onnxruntime's CPU int8 kernel is slower than its float one`);
    else if (reduction < MIN_INT8_REDUCTION) out.set(l.name, `a Conv whose dot products have ${reduction} terms (under ${MIN_INT8_REDUCTION}), too few for int8 to repay its Q/DQ`);
  }
  // Then, among the layers still int8, those the others leave alone.
  const on = layers.filter((l) => !l.scope && !l.weightOnly && !out.has(l.name));
  for (const [name, why] of isolatedLayers(graph, on)) out.set(name, why);
  return out;
}
