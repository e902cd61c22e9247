/** Public API of accuracy-based automatic calibration. */
export { AutoCalibrationEvaluator, asEvaluator } from './evaluator.js';
export type { EvaluatorLike, MetricLimit } from './evaluator.js';
export { ClassificationEvaluator, FidelityEvaluator, fidelityModeFor } from './evaluators.js';
export type { DataEvaluatorOptions, FidelityEvaluatorOptions, FidelityMode, LabelledBatch } from './evaluators.js';
export { accuracyBasedAutoCalibration, autoCalibrationReport } from './auto-calibration.js';
export type { AutoCalibrationOptions, AutoCalibrationReport, AutoCalibrationResult, AutoPhase, AutoProgressEvent, HistoryEntry } from './auto-calibration.js';
export { sensitivityFunction } from './sensitivity.js';
export type { LayerScore, RankingName, SensitivityFunction, SensitivityName } from './sensitivity.js';
export type { StrategyName } from './strategies.js';
export { REPAIRS } from './repairs.js';
export type { LayerRepair, RepairName } from './repairs.js';
