/** Public API of post-training quantization. */
export { createQuantConfig, loadQuantConfig, quantizeModel, saveModel } from './quantize.js';
export type { ModelSource, QuantizeModelOptions, QuantizeResult, LayerReport, LayerError, RoundingSummary } from './quantize.js';
export { ACTIVATION_ALGOS, IFMR_DEFAULTS, HFMG_DEFAULTS, PERCENTILE_DEFAULTS, WEIGHT_ROUNDINGS } from './config/config.js';
export type {
  ActivationAlgo,
  WeightRounding,
  ActivationQuantParams,
  WeightQuantParams,
  LayerQuantConfig,
  QuantConfig,
  QuantConfigGlobals,
  LayerOverride,
  CreateQuantConfigOptions,
} from './config/config.js';
export type { CalibrationSession, CalibrationCallback, CalibrationSource, CalibrationStats, Feeds } from './calibrate/calibrate.js';
export type { QuantRecord, LayerRecord } from './config/record.js';
export { QUANTIZABLE_TYPES } from './prepare/registry.js';
export type { QuantizableType } from './prepare/registry.js';
export type { FoldedPair, FoldedAffine } from './prepare/fusion.js';
export type { EqualizedPair } from './prepare/equalize.js';
export type { ActivationEqualized } from './decide/activation-equalize.js';
export type { ChannelSplit } from './decide/channel-split.js';
export { HEAVY_OPS } from './prepare/coverage.js';
export type { QuantWarning, WarningCode } from './prepare/coverage.js';
export type { QuantPass, PassRun, PassStage } from './decide/pass.js';
