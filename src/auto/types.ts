/**
 * What the automatic calibration takes and gives: its options, progress events, history and result.
 */
import { type DeployTarget, type QuantConfig } from '../quant/config/config.js';
import { type QuantRecord } from '../quant/config/record.js';
import { type Parity } from '../quant/export/parity.js';
import { type QuantWarning } from '../quant/prepare/coverage.js';
import { type LayerError, type LayerReport } from '../quant/quantize.js';
import { type CreateSessionOptions } from '../runtime/ort.js';
import { type MetricLimit } from './evaluator.js';
import { type LayerRepair, type RepairName } from './repairs.js';
import { type LayerScore, type RankingName, type SensitivityFunction, type SensitivityName } from './sensitivity.js';
import { type StrategyName } from './strategies.js';

export type AutoPhase = 'float-evaluation' | 'calibration' | 'quantized-evaluation' | 'ranking' | 'search' | 'repair' | 'refine' | 'saving';
/**
 * Progress as data: render it from the fields; `message` is the same in words and never repeats
 * the phase (show `${phase}: ${message}`).
 */
export interface AutoProgressEvent {
  phase: AutoPhase;
  /** The same as `phase` (the name the stages of quantizeModel's events use too). */
  stage: AutoPhase;
  message: string;
  /** Steps done and in all, for the phases that count (calibration batches, ranked layers). */
  done?: number;
  total?: number;
  /** The layer a step was about (ranking, refine). */
  layer?: string;
  /** Ranking ('model-output'): the similarity score `layer` just got (the ranking's `score`). */
  score?: number;
  /** For evaluations: the metric, and the entry just added to the history. */
  metric?: number;
  evaluation?: HistoryEntry;
}
export interface AutoCalibrationOptions extends CreateSessionOptions {
  /** The quantization config (default: createQuantConfig's defaults for every layer). */
  config?: QuantConfig;
  /** A config file to read (Node/Deno); never written to. */
  configFile?: string;
  /** An earlier record whose factors are re-used (path or object), instead of calibrating those layers. */
  record?: QuantRecord | string;
  /** Where to write the final record (Node/Deno). */
  recordFile?: string;
  /** Write `{prefix}_fake_quant_model.onnx`, `_deploy_model.onnx` (on success), `_quant_config.json`, `_record.json`, `_auto_calibration.json`. */
  savePrefix?: string;
  strategy?: StrategyName;
  /**
   * What a sensitive layer falls back to: 'float' (AMCT's behaviour, the default) or 'int16'
   * activations with int8 weights (the deploy model then needs opset 21). With 'int16' the 16-bit
   * factors are calibrated once, before the search, so each step still costs one evaluation.
   */
  fallback?: 'float' | 'int16';
  /**
   * The default config's deploy target (see createQuantConfig's `deployTarget`; a given config says
   * its own `deploy_target`). 'webgpu' makes every layer with a constant weight weight-only, and
   * those are what the search chooses among.
   */
  deployTarget?: DeployTarget;
  /**
   * The 'webgpu' target's block-quantized weights (MatMul, Gemm, embeddings): 8 (default) or 4 for
   * all of them, or [4, 8]: the search starts with all at 4 bits and moves the most sensitive up to
   * 8 (ranking, then `strategy`), as few as the limit allows; when all at 8 still fail, it falls the
   * most sensitive back to float from 8 bits. `layers` reports each layer's bits, `weightBytes` the bytes.
   */
  weightBits?: 8 | 4 | readonly [4, 8];
  sensitivity?: SensitivityName | SensitivityFunction;
  /**
   * How layers are ranked (see sensitivity.ts): 'model-output' (the default: the model's output with
   * each layer quantized alone, on the first calibration batch; one session per layer) or
   * 'layer-output' (AMCT's: each layer's own output, one pass over the calibration batches; faster,
   * but on the PP-OCR models it leaves 1.4-2× as many layers in float). `sensitivity` measures either.
   */
  ranking?: RankingName;
  /**
   * Repairs tried, in order, on the layers the search put in float before leaving them there (see
   * repairs.ts): 'weights' (per-channel), 'observer' (min-max or percentile where its layer-wise
   * similarity is better), 'int16' (activations). Default: all three; [] gives AMCT's search.
   * Only with fallback 'float'.
   */
  repairs?: readonly RepairName[];
  /**
   * After the search and the repairs, try each layer still in float (or int16, with `fallback: 'int16'`)
   * or repaired with 16-bit activations back in plain int8, least sensitive first, keeping it there
   * when the evaluator still passes: one evaluation per layer, within `maxEvaluations` and `maxSeconds`. The search assumes that fewer
   * fallbacks in ranking order never pass where more fail; on real models they sometimes do (a layer's
   * quantization error can cancel another's), and this pass collects those layers. Default false.
   */
  refine?: boolean;
  /** Upper bound on evaluate() calls, the float and first quantized evaluations included. */
  maxEvaluations?: number;
  /**
   * Time budget in seconds for the whole run: no search evaluation starts after it has passed, and the
   * best passing configuration found so far (the fewest fallbacks) is returned.
   */
  maxSeconds?: number;
  /**
   * Cancels the run, as in `fetch`: checked before every evaluation and calibration batch, and an
   * evaluation in progress is abandoned. The run rejects with an AbortedError and writes no file.
   */
  signal?: AbortSignal;
  /** Seconds one `evaluate` call may take before the run rejects with an AbortedError (default: no limit). */
  evaluationTimeoutSeconds?: number;
  /**
   * Measure each quantized layer's output error in the returned model (`layerErrors`; one more pass
   * over the calibration batches). Default: true with `savePrefix` (the HTML report shows them).
   */
  layerErrors?: boolean;
  /** Bound on activation bytes the sensitivity ranking holds at once (default 512 MiB; calibration holds fixed-size statistics). */
  memoryBudgetBytes?: number;
  /**
   * Write the models with `savePrefix` even when the deploy model fails parity (see `parity`). Without
   * it such a result is returned and its reports written, but not its models. Default false.
   */
  force?: boolean;
  onProgress?: (event: AutoProgressEvent) => void;
}
export interface HistoryEntry {
  /** Layers in float for this evaluation (empty: the fully quantized model; undefined: the float model). */
  fallbackLayers: string[] | null;
  /** Layers repaired instead of put in float, for evaluations of the repair phase. */
  repaired?: LayerRepair[];
  metric: number;
  loss: number;
  ok: boolean;
  seconds: number;
}
export interface AutoCalibrationResult {
  passed: boolean;
  /** Why the result is what it is, in words a user can act on. */
  message: string;
  originalMetric: number;
  /** Metric of the returned configuration (or of the fully quantized model when nothing passed). */
  quantizedMetric: number;
  quantizedLayers: string[];
  fallbackLayers: string[];
  /** What fallbackLayers were turned into ('8-bit': 8-bit weights, the mixed 4/8-bit search's first level). */
  fallbackTo: 'float' | 'int16' | '8-bit';
  /**
   * Bytes of the quantized layers' weights in the deploy model (codes, scales and zero points) and
   * as float32, for the 'webgpu' target's searched layers; absent elsewhere.
   */
  weightBytes?: { quantized: number; float: number };
  /** Layers the search would have put in float that a repair kept quantized (see `repairs`). */
  repairedLayers: LayerRepair[];
  /**
   * Layers `refine` brought back to plain int8, in the order tried: from float, or from a 16-bit
   * activation repair (then no longer in repairedLayers).
   */
  refinedLayers: string[];
  /** Each quantized layer's output error in the returned model (see the `layerErrors` option). */
  layerErrors?: LayerError[];
  /** The evaluator's limit, as its `limit` says. */
  limit: MetricLimit;
  /** Layers with their similarity score, ascending (most sensitive first); empty when not needed. */
  ranking: LayerScore[];
  history: HistoryEntry[];
  evaluations: number;
  /**
   * How many times the evaluator's `calibration` was called: 1 when the first call's feeds fit the
   * replay budget (256 MiB of copies; later passes replay them), else once per pass over the batches.
   */
  calibrationCalls: number;
  config: QuantConfig;
  record: QuantRecord;
  layers: LayerReport[];
  /** Heavy nodes no config can quantize, counted by reason (LEFT_FLOAT; see quantizeModel's `warnings`). */
  warnings: QuantWarning[];
  /** Seconds per phase. */
  timings: { floatEvaluation: number; calibration: number; ranking: number; search: number; repair: number; refine: number; total: number };
  fakeQuantModel?: Uint8Array;
  deployModel?: Uint8Array;
  /**
   * On success: the deploy model against the fake-quant model on the kept calibration batches (see
   * export/parity.ts); below 0.999 cosine a LOW_PARITY warning, and with savePrefix the models are
   * not written unless `force` (saveModel then refuses them the same way).
   */
  parity?: Parity;
  /** Files written (with savePrefix / recordFile). */
  files: string[];
  /**
   * Nodes of the user's model evaluated in an exactly equivalent form: on WebGPU, attribute-form
   * Clip (opsets 8-10) as Max and Min, which onnxruntime-web runs on the GPU. Empty otherwise.
   */
  floatModelRewrites: string[];
}
