/**
 * Layers whose output reaches a logarithm. A log-mel front end (openWakeWord's melspectrogram.onnx:
 * STFT as Conv, power spectrum, mel MatMul, Log) needs its small values to relative precision, and
 * an 8-bit linear grid over a power spectrum's range rounds the quiet bins to a handful of levels:
 * with the mel MatMul's input at 8 bits that model's output cosine to float was 0.889-0.977 on
 * synthetic audio (0.64 reported on real audio), at 16 bits 1.00000. createQuantConfig therefore
 * gives such layers 16-bit activations by default (float where the model cannot reach opset 21).
 */
import { consumerMap, getConstant } from '../../onnx/graph.js';
import type { GraphProto } from '../../onnx/types.js';
import type { LayerInfo } from './registry.js';

/** Ops a value passes through on its way to the Log without losing what makes it need precision. */
const PASS_THROUGH: ReadonlySet<string> = new Set(['Identity', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten', 'Clip', 'Relu', 'Max', 'Min', 'Abs', 'Add', 'Sub', 'Mul', 'Div']);

/** Elementwise ops with two operands pass the value on only when the other operand is a constant. */
const NEEDS_CONSTANT_PARTNER: ReadonlySet<string> = new Set(['Max', 'Min', 'Add', 'Sub', 'Mul', 'Div']);

/** How many ops may stand between a layer and its Log. */
const MAX_HOPS = 6;

/** Why a layer's activations default to 16 bits, for the layer report. */
export const LOG_INPUT_NOTE = 'activations at 16 bits by default: its output feeds a Log, which needs small values to relative precision';

/** Names of the layers whose output reaches a Log through at most MAX_HOPS pass-through ops. */
export function layersFeedingLog(graph: GraphProto, layers: readonly LayerInfo[]): Set<string> {
  const readers = consumerMap(graph);
  const nodes = graph.node ?? [];
  const reachesLog = (tensor: string, hops: number): boolean =>
    (readers.get(tensor) ?? []).some(({ node }) => {
      const op = node.opType ?? '';
      if (op === 'Log') return true;
      if (hops >= MAX_HOPS || !PASS_THROUGH.has(op) || (node.domain && node.domain !== 'ai.onnx')) return false;
      if (NEEDS_CONSTANT_PARTNER.has(op) && !(node.input ?? []).some((i) => i !== tensor && i && getConstant(graph, i))) return false;
      return (node.output ?? []).some((o) => o && reachesLog(o, hops + 1));
    });
  const out = new Set<string>();
  for (const l of layers) {
    const output = nodes[l.nodeIndex]?.output?.[0];
    if (output && reachesLog(output, 0)) out.add(l.name);
  }
  return out;
}
