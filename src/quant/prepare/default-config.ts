/**
 * The config createQuantConfig writes, from a prepared model: every layer listed, with the defaults
 * the model allows (per-channel weights where opset 13 is reachable; wider activations for layers
 * whose output reaches a Log, see log-inputs.ts).
 */
import { type CreateQuantConfigOptions, type QuantConfig, buildQuantConfig } from '../config/config.js';
import { layersFeedingLog } from './log-inputs.js';
import { INT16_OPSET, PER_CHANNEL_OPSET, opsetBlocker, type Prepared } from './prepare.js';

export function defaultQuantConfig({ model, layers, hint }: Prepared, options: CreateQuantConfigOptions = {}): QuantConfig {
  const logFed = layersFeedingLog(model.graph!, layers);
  const wide = logFed.size && opsetBlocker(model, INT16_OPSET) !== undefined ? 'float' : 16;
  const precise = new Map([...logFed].map((name) => [name, wide] as const));
  return buildQuantConfig(layers, options, { perChannelReachable: opsetBlocker(model, PER_CHANNEL_OPSET) === undefined, precise, hint });
}
