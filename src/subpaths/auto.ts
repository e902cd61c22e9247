/** `autoquant/auto`: the pieces of the automatic search a caller may reuse or extend. */
export { asEvaluator } from '../auto/evaluator.js';
export { fidelityModeFor } from '../auto/evaluators.js';
export { sensitivityFunction } from '../auto/sensitivity.js';
export type { LayerScore, RankingName, SensitivityFunction, SensitivityName } from '../auto/sensitivity.js';
export type { StrategyName } from '../auto/strategies.js';
