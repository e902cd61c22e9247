/**
 * The config createQuantConfig writes, from a prepared model: every layer listed, with the defaults
 * the model allows (per-channel weights where opset 13 is reachable; wider activations for layers
 * whose output reaches a Log, see log-inputs.ts; float for layers int8 only slows on onnxruntime's
 * CPU, see cpu-cost.ts).
 */
import { type CreateQuantConfigOptions, type QuantConfig, buildQuantConfig } from '../config/config.js';
import { slowInt8Layers } from './cpu-cost.js';
import { layersFeedingLog } from './log-inputs.js';
import { forTarget } from './target.js';
import { INT16_OPSET, PER_CHANNEL_OPSET, opsetBlocker, type Prepared } from './prepare.js';

export function defaultQuantConfig({ model, layers: all, hint }: Prepared, options: CreateQuantConfigOptions = {}): QuantConfig {
  const { layers } = forTarget(all, options.deployTarget);
  const cpu = (options.deployTarget ?? 'cpu') === 'cpu';
  const logFed = layersFeedingLog(model.graph!, layers);
  const wide = logFed.size && opsetBlocker(model, INT16_OPSET) !== undefined ? 'float' : 16;
  // Activation precision matters only where activations are quantized.
  const precise = new Map(cpu ? [...logFed].map((name) => [name, wide] as const) : []);
  // The CPU's integer kernels are what makes a layer slow in int8; other targets keep activations float.
  const slow = cpu ? slowInt8Layers(model.graph!, layers) : new Map<string, string>();
  return buildQuantConfig(layers, options, { perChannelReachable: opsetBlocker(model, PER_CHANNEL_OPSET) === undefined, precise, slow, hint });
}
