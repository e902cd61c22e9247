/**
 * The user's API: quantize, search, report, load, run. The building blocks (ONNX utilities, kernels, .npy
 * I/O, the config vocabulary, search pieces, placement) live under the subpaths `autoquant/onnx`,
 * `autoquant/kernels`, `autoquant/npy`, `autoquant/config`, `autoquant/auto` and `autoquant/runtime`, so that
 * this list stays what a user reads first. docs/api.md is the contract.
 */
export * from './errors.js';
export { NpyFormatError } from './data/npy.js';

export { createQuantConfig, loadQuantConfig, quantizeModel, saveModel } from './quant/quantize.js';
export type { ModelSource, QuantizeModelOptions, QuantizeResult, LayerReport, LayerError, RoundingSummary } from './quant/quantize.js';
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
} from './quant/config/config.js';
export type { CalibrationSession, CalibrationCallback, CalibrationSource, CalibrationStats, Feeds } from './quant/calibrate/calibrate.js';
export type { QuantRecord, LayerRecord } from './quant/config/record.js';
export type { QuantWarning, WarningCode } from './quant/prepare/coverage.js';
export type { PassRun } from './quant/decide/pass.js';

export { accuracyBasedAutoCalibration, autoCalibrationReport, autoCalibrationFiles } from './auto/auto-calibration.js';
export type { AutoCalibrationOptions, AutoCalibrationReport, AutoCalibrationResult, AutoPhase, AutoProgressEvent, HistoryEntry, OutputFile } from './auto/auto-calibration.js';
export { AutoCalibrationEvaluator } from './auto/evaluator.js';
export type { EvaluatorLike, MetricLimit } from './auto/evaluator.js';
export { ClassificationEvaluator, FidelityEvaluator } from './auto/evaluators.js';
export type { DataEvaluatorOptions, FidelityEvaluatorOptions, FidelityMode, LabelledBatch } from './auto/evaluators.js';
export type { LayerScore, RankingName, SensitivityName } from './auto/sensitivity.js';
export type { StrategyName } from './auto/strategies.js';
export type { RepairName } from './auto/repairs.js';
export { htmlReport } from './report/html.js';
export type { HtmlReportOptions } from './report/html.js';

export { loadModel } from './onnx/model.js';
export type { LoadModelOptions } from './onnx/model.js';
export type { ModelProto } from './onnx/types.js';
export type { ExternalDataSource } from './onnx/external.js';

export { Tensor, useOrt, getOrt, createSession, useEngine } from './runtime/ort.js';
export type { InferenceSession, CreateSessionOptions, Ort, Engine } from './runtime/ort.js';
export { env } from './runtime/env.js';
export { setLogLevel } from './runtime/log.js';
export type { LogLevel } from './runtime/log.js';
export { VERSION } from './version.js';
