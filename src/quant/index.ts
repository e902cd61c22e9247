/** Public API of post-training quantization. */
export { createQuantConfig, loadQuantConfig, quantizeModel, saveModel } from './quantize.js';
export type { ModelSource, QuantizeModelOptions, QuantizeResult, LayerReport, LayerError, RoundingSummary } from './quantize.js';
export { ACTIVATION_ALGOS, IFMR_DEFAULTS, HFMG_DEFAULTS, PERCENTILE_DEFAULTS, WEIGHT_ROUNDINGS } from './config.js';
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
} from './config.js';
export type { CalibrationSession, CalibrationCallback, CalibrationSource, CalibrationStats, Feeds } from './calibrate.js';
export type { QuantRecord, LayerRecord } from './record.js';
export { QUANTIZABLE_TYPES } from './registry.js';
export type { QuantizableType } from './registry.js';
export type { FoldedPair, FoldedAffine } from './fusion.js';
export type { EqualizedPair } from './equalize.js';
export type { ActivationEqualized } from './activation-equalize.js';
export type { ChannelSplit } from './channel-split.js';
export { HEAVY_OPS } from './coverage.js';
export type { QuantWarning, WarningCode } from './coverage.js';
