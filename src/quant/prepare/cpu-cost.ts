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
 * With them float the deploy/float latency fell on MNIST CNN 1.68 → 1.09, PP-OCR cls 0.95 → 0.71,
 * det 0.80 → 0.76, and rec stayed 0.58–0.65, while the deploy model's cosine to float rose (cls
 * 0.99202 → 0.99853, rec 0.97556 → 0.99448): these layers also cost the most fidelity per byte saved.
 */
import type { GraphProto } from '../../onnx/types.js';
import type { LayerInfo } from './registry.js';

/** Below this dot-product length a Conv stays float by default. */
export const MIN_INT8_REDUCTION = 16;

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
  return out;
}
