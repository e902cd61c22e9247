/**
 * What a deploy target quantizes. 'cpu' keeps the layer scan as it is: int8 Q/DQ on activations
 * and weights, which native ONNX Runtime fuses into integer kernels. 'webgpu' quantizes weights
 * only: onnxruntime-web's WebGPU backend has no integer Conv or MatMul kernels, and no
 * QuantizeLinear, so any activation Q/DQ runs on the CPU behind two copies (NOTES §6); what it does
 * run on the GPU is MatMulNBits (4/8-bit weight blocks) and GatherBlockQuantized. So under 'webgpu':
 * - MatMul with a constant 2-D B, and Gemm, become block-quantized weight-only layers (MatMulNBits);
 * - embedding tables (Gather) are block-quantized too (GatherBlockQuantized);
 * - Conv and ConvTranspose keep per-channel int8 weights, weight-only (see export/weight-only.ts);
 * - LSTM, GRU and RNN are weight-only on every target;
 * - a layer with no constant weight (attention's activation products, AveragePool) has nothing to
 *   quantize and is not a layer of this target.
 */
import { DEPLOY_TARGETS, type DeployTarget } from '../config/config.js';
import type { LayerInfo, SkippedNode } from './registry.js';

/** Why a layer without a constant weight is no layer of a weight-only target. */
export const weightOnlyTargetReason = (target: DeployTarget) => `the '${target}' deploy target quantizes weights only, and this layer has no constant weight`;

/** Whether a layer is quantized in blocks under the 'webgpu' target (MatMulNBits, GatherBlockQuantized). */
function blocks(l: LayerInfo): boolean {
  if (l.opType === 'Gather') return l.weight?.dims.length === 2;
  return (l.opType === 'MatMul' || l.opType === 'Gemm') && !l.second && l.weight?.dims.length === 2;
}

/**
 * `layers` (in model order) as `target` quantizes them: under 'webgpu' every layer with a constant
 * weight is weight-only (block-quantized where it can be), and the others are dropped, with the reason.
 */
export function forTarget(layers: readonly LayerInfo[], target: DeployTarget | undefined): { layers: LayerInfo[]; dropped: SkippedNode[] } {
  if ((target ?? 'cpu') === 'cpu') return { layers: [...layers], dropped: [] };
  const kept: LayerInfo[] = [];
  const dropped: SkippedNode[] = [];
  for (const l of layers) {
    if (!l.weight || l.second) dropped.push({ name: l.name, opType: l.opType, reason: weightOnlyTargetReason(target!), kind: 'no weight (weight-only target)' });
    else {
      // Dequantized weight-only, any axis can carry the scales: a grouped Conv's too (axis 0).
      const weight = l.weight.channelAxis >= 0 ? l.weight : { ...l.weight, channelAxis: 0 };
      kept.push({ ...l, weight, weightOnly: true, ...(blocks(l) ? { blocked: true as const } : {}) });
    }
  }
  return { layers: kept, dropped };
}

/** The config's target, before the config is validated (which names a bad one). */
export function configTarget(config: unknown): DeployTarget {
  const given = typeof config === 'object' && config !== null ? (config as { deploy_target?: unknown }).deploy_target : undefined;
  return (DEPLOY_TARGETS as readonly unknown[]).includes(given) ? (given as DeployTarget) : 'cpu';
}
