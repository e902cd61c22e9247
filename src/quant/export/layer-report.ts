/**
 * Per layer, whether it is quantized and why not; the record restricted to the layers that exist.
 */
import { cloneModel } from '../../onnx/model.js';
import { type QuantRecord } from '../config/record.js';
import { slowInt8Layers } from '../prepare/cpu-cost.js';
import { LOG_INPUT_NOTE, layersFeedingLog } from '../prepare/log-inputs.js';
import { PER_CHANNEL_OPSET, perChannelBlocker } from '../prepare/prepare.js';
import { type LayerInfo } from '../prepare/registry.js';
import { type LayerReport, type QuantizationSession, layerConfig } from '../types.js';

/** Per layer, whether it is quantized and, if not, why. */
export function layerReport(q: QuantizationSession, quantized: ReadonlySet<string>, reasonFor?: (name: string) => string | undefined, record?: QuantRecord): LayerReport[] {
  let blocker: string | undefined | null = null;
  const fusedBias = new Set(q.layers.filter((l) => l.bias).map((l) => l.name));
  const weights = (l: LayerInfo): Partial<LayerReport> => {
    if (!l.weight) return {};
    if (l.blocked) return { weights: 'per-block', weightBits: layerConfig(q.config, l.name)?.weight_quant_params?.num_bits ?? 8 };
    const corrected = fusedBias.has(l.name) && record?.layers[l.name]?.bias_shift?.length ? { biasCorrected: true } : {};
    if (layerConfig(q.config, l.name)?.weight_quant_params?.channel_wise && l.weight.channelAxis >= 0) return { weights: 'per-channel', ...corrected };
    if (l.weight.channelAxis < 0) return { weights: 'per-tensor', weightsReason: `a ${l.opType} with groups has no per-output-channel weight axis` };
    if (blocker === null) blocker = perChannelBlocker(cloneModel(q.original));
    const weightsReason = blocker
      ? `channel_wise is false: per-channel weights need opset ${PER_CHANNEL_OPSET}, and autoquant ${blocker}`
      : 'channel_wise is false in the config';
    return { weights: 'per-tensor', weightsReason, ...corrected };
  };
  const logFed = layersFeedingLog(q.work.graph!, q.layers);
  const note = (l: LayerInfo): Partial<LayerReport> =>
    logFed.has(l.name) && layerConfig(q.config, l.name)?.activation_quant_params?.num_bits === 16 ? { note: LOG_INPUT_NOTE } : {};
  // On the graph and layers the default config was made from (before fusions), so that its choices read the same.
  const slow = q.config.skip_slow_layers === true ? slowInt8Layers(q.original.graph!, q.declared) : new Map<string, string>();
  const byDefault = (l: LayerInfo) =>
    logFed.has(l.name)
      ? 'quant_enable is false in the config (the default where a layer feeds a Log and the model cannot reach opset 21 for 16-bit activations)'
      : slow.has(l.name)
        ? `quant_enable is false in the config (the default, skip_slow_layers: ${slow.get(l.name)})`
        : undefined;
  return [
    ...q.declared.map((l): LayerReport => {
      if (quantized.has(l.name)) return { name: l.name, opType: l.opType, quantized: true, ...weights(l), ...note(l) };
      const given = reasonFor?.(l.name) ?? q.unreached?.get(l.name);
      if (given) return { name: l.name, opType: l.opType, quantized: false, reason: given };
      const chosen = layerConfig(q.config, l.name)?.quant_enable === false ? byDefault(l) : undefined;
      return { name: l.name, opType: l.opType, quantized: false, reason: chosen ?? 'quant_enable is false in the config', ...(chosen ? { floatByDefault: true as const } : {}) };
    }),
    ...q.skipped.map((s) => ({ name: s.name, opType: s.opType, quantized: false, reason: s.reason })),
  ];
}
/** Keeps only the factors of layers that exist, so a record matches its config. */
export function pruneRecord(q: QuantizationSession, record: QuantRecord): QuantRecord {
  const known = new Set(q.layers.map((l) => l.name));
  for (const name of Object.keys(record.layers)) if (!known.has(name)) delete record.layers[name];
  return record;
}
