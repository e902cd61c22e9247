/** `autoquant/config`: the vocabulary of a quantization config (algorithms, defaults, layer types, repairs). */
export { ACTIVATION_ALGOS, IFMR_DEFAULTS, HFMG_DEFAULTS, PERCENTILE_DEFAULTS, WEIGHT_ROUNDINGS } from '../quant/config/config.js';
export { QUANTIZABLE_TYPES } from '../quant/prepare/registry.js';
export type { QuantizableType } from '../quant/prepare/registry.js';
export { HEAVY_OPS } from '../quant/prepare/coverage.js';
export type { FoldedPair, FoldedAffine } from '../quant/prepare/fusion.js';
export type { EqualizedPair } from '../quant/prepare/equalize.js';
export type { ActivationEqualized } from '../quant/decide/activation-equalize.js';
export type { ChannelSplit } from '../quant/decide/channel-split.js';
export type { QuantPass, PassRun, PassStage } from '../quant/decide/pass.js';
export { REPAIRS } from '../auto/repairs.js';
export type { LayerRepair, RepairName } from '../auto/repairs.js';
