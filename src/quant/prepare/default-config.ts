/**
 * The config createQuantConfig writes, from a prepared model: every layer listed, with the defaults
 * the model allows (per-channel weights where opset 13 is reachable; wider activations for layers
 * whose output reaches a Log, see log-inputs.ts; float for layers int8 only slows on onnxruntime's
 * CPU, see cpu-cost.ts).
 */
import { type CreateQuantConfigOptions, type QuantConfig, buildQuantConfig } from '../config/config.js';
import { slowInt8Layers } from './cpu-cost.js';
import { layersFeedingLog } from './log-inputs.js';
import { INT16_OPSET, PER_CHANNEL_OPSET, opsetBlocker, type Prepared } from './prepare.js';

export function defaultQuantConfig({ model, layers, hint }: Prepared, options: CreateQuantConfigOptions = {}): QuantConfig {
  const logFed = layersFeedingLog(model.graph!, layers);
  const wide = logFed.size && opsetBlocker(model, INT16_OPSET) !== undefined ? 'float' : 16;
  const precise = new Map([...logFed].map((name) => [name, wide] as const));
  const slow = slowInt8Layers(model.graph!, layers);
  return buildQuantConfig(layers, options, { perChannelReachable: opsetBlocker(model, PER_CHANNEL_OPSET) === undefined, precise, slow, hint });
}
