/**
 * Accuracy-based automatic calibration (AMCT's accuracy_based_auto_calibration): quantize every
 * layer; if the metric drops too far, rank layers by sensitivity and fall the most sensitive back to
 * float until the drop is acceptable. This file only composes: the evaluations and their budget
 * (evaluation.ts), what the search chooses among (space.ts), the rankings (ranking.ts), the phases
 * (search.ts) and the repairs (repairs.ts). Calibration runs once and every search step re-uses its
 * factors, so a step costs exactly one evaluation.
 */
import { EvaluationError, OptionsError } from '../errors.js';
import { describeValue } from '../text.js';
import { checkOptionKeys, optionKeys } from '../options.js';
import { checkWritable } from '../runtime/io.js';
import { type CreateSessionOptions } from '../runtime/ort.js';
import { emitProgress, RunLog } from '../runtime/log.js';
import { DEFAULT_CALIBRATION_MEMORY, type BatchSource, type KeptBatch } from '../quant/calibrate/calibrate.js';
import { measureParity, parityWarnings } from '../quant/export/parity.js';
import { weightOnlyBits, weightOnlyBytes } from '../quant/export/weight-only.js';
import { replayedCallback } from '../quant/calibrate/replay.js';
import { defaultBlockBits, isWeightOnlyTarget, type LayerQuantConfig, type QuantConfig } from '../quant/config/config.js';
import { readJsonFile } from '../quant/config/io.js';
import { defaultQuantConfig } from '../quant/prepare/default-config.js';
import { PreparedQuantization } from '../quant/prepared.js';
import type { ModelSource, QuantizeProgressEvent } from '../quant/types.js';
import { cloneModel, encodeModel } from '../onnx/model.js';
import { replaceAttributeClips } from '../quant/export/portable.js';
import { asEvaluator, type AutoCalibrationEvaluator, type EvaluatorLike } from './evaluator.js';
import { Evaluations } from './evaluation.js';
import { RANKING } from './ranking.js';
import { RANKINGS, rankLayers, sensitivityFunction, type LayerScore } from './sensitivity.js';
import { REPAIRS, type RepairContext } from './repairs.js';
import { quantizeAll, refine, repair, searchFallbacks, type Outcome, type Progress, type SearchContext } from './search.js';
import { SearchSpace } from './space.js';
import { DEFAULT_STRATEGY, STRATEGIES } from './strategies.js';
import { outputFiles, saveOutputs, withholdsModels } from './outputs.js';
import { type AutoCalibrationOptions, type AutoCalibrationResult } from './types.js';

export { type AutoCalibrationReport, autoCalibrationReport, autoCalibrationFiles, type OutputFile } from './outputs.js';
export { type AutoPhase, type AutoProgressEvent, type AutoCalibrationOptions, type HistoryEntry, type AutoCalibrationResult } from './types.js';

const now = () => performance.now() / 1000;

export async function accuracyBasedAutoCalibration(
  model: ModelSource,
  evaluatorLike: AutoCalibrationEvaluator | EvaluatorLike,
  options: AutoCalibrationOptions = {},
): Promise<AutoCalibrationResult> {
  const t0 = now();
  // Cheap checks first: the arguments, then whether the output paths can be written, before the model is read.
  const evaluator = checkAutoArguments(evaluatorLike, options);
  const { models, reports } = outputFiles(options);
  if (models.length + reports.length) await checkWritable([...models, ...reports]);
  const maxEvaluations = options.maxEvaluations ?? Infinity;
  const maxSeconds = options.maxSeconds ?? Infinity;
  const runLog = new RunLog();
  const progress: Progress = (phase, message, evaluation, step = {}) =>
    emitProgress(runLog, options.onProgress, { phase, stage: phase, message, ...step, ...(evaluation ? { metric: evaluation.metric, evaluation } : {}) }, `a '${phase}' event`, `${phase}: ${message}`);
  const sessionOptions: CreateSessionOptions = { executionProviders: options.executionProviders, graphOptimizationLevel: options.graphOptimizationLevel, engine: options.engine };
  const fallbackTo = options.fallback ?? 'float';
  // The model is read and parsed once; the default config is made from that parse. A given config
  // is validated against it (and copied). The deploy model's opset is checked here, not after the search.
  const config = options.config ?? (options.configFile ? ((await readJsonFile(options.configFile)) as QuantConfig) : undefined);
  const mixed = Array.isArray(options.weightBits);
  const bits = mixed ? 4 : (options.weightBits as 4 | 8 | undefined);
  const p = await PreparedQuantization.create(model, config ?? ((prepared) => defaultQuantConfig(prepared, { deployTarget: options.deployTarget, weightBits: bits })), {
    record: options.record,
    configSource: options.configFile ?? 'config',
    activationBits: fallbackTo === 'int16' ? 16 : undefined,
  });
  const evaluations = new Evaluations(evaluator, sessionOptions, { signal: options.signal, timeoutSeconds: options.evaluationTimeoutSeconds, maxEvaluations, maxSeconds, start: t0 });
  evaluator.reset();
  const timings: AutoCalibrationResult['timings'] = { floatEvaluation: 0, calibration: 0, ranking: 0, search: 0, repair: 0, refine: 0, total: 0 };
  const timed = async <T>(phase: keyof typeof timings, f: () => Promise<T>): Promise<T> => {
    const start = now();
    try {
      return await f();
    } finally {
      timings[phase] += now() - start;
    }
  };

  // 1. The float model sets the reference and must pass against itself. On WebGPU it is evaluated
  // with its attribute-form Clips rewritten exactly as in the fake-quant models, so that neither
  // side pays for CPU round trips the other does not.
  const onGpu = (options.executionProviders ?? []).some((ep) => (typeof ep === 'string' ? ep : ep.name) === 'webgpu');
  let floatModel = p.session.original;
  let floatModelRewrites: string[] = [];
  if (onGpu) {
    const copy = cloneModel(p.session.original);
    floatModelRewrites = replaceAttributeClips(copy);
    if (floatModelRewrites.length) floatModel = copy;
  }
  const what = floatModelRewrites.length ? `the float model (${floatModelRewrites.length} Clip nodes as Max/Min)` : 'the float model';
  const floatEntry = await timed('floatEvaluation', () => evaluations.reference(floatModel, what));
  progress('float-evaluation', `float model: metric ${floatEntry.metric}`, floatEntry);

  // 2. Calibrate once. Later passes over the batches replay the first call's feeds (see replay.ts).
  const replayed = replayedCallback((session) => evaluator.calibration(session), p.config.batch_num);
  const batches: BatchSource = { callback: replayed.callback };
  const calibrate = (v: PreparedQuantization, step: string) =>
    v.calibrate(replayed.callback, {
      ...sessionOptions,
      signal: options.signal,
      // The first batches, kept to check the returned deploy model's parity (see finish).
      keepOutputs: step === 'calibration',
      // The event's own message tells the equalization pass from calibration's.
      onProgress: (e: QuantizeProgressEvent) => progress('calibration', step === 'calibration' ? e.message : `${step}, ${e.message}`, undefined, { done: e.batch, total: e.batchNum }),
    });
  const stats = await timed('calibration', () => calibrate(p, 'calibration'));
  // Mixed 4/8-bit weights: the first level moves layers from 4 to 8 bits (see weightBits).
  const startBits = mixed ? new Map(p.searchedWeightOnly.filter((l) => l.blocked).map((l) => [l.name, defaultBlockBits(l, p.config.deploy_target, 4)])) : undefined;
  let space = new SearchSpace(p, mixed ? '8-bit' : fallbackTo, startBits);
  let ctx: SearchContext = { space, evaluations, progress, budget: `maxEvaluations ${maxEvaluations}, maxSeconds ${maxSeconds}` };
  const similarity = sensitivityFunction(p.session.kernels, options.sensitivity ?? 'cosine');
  const rankingOptions = {
    ...sessionOptions,
    batchNum: p.config.batch_num,
    activationBytes: stats?.activationBytes,
    memoryBudgetBytes: options.memoryBudgetBytes ?? DEFAULT_CALIBRATION_MEMORY,
    signal: options.signal,
  };

  // 3. Every layer in int8; 4. rank, and fall back in ranking order; 5. repair; 6. refine.
  let ranking: LayerScore[] = [];
  const strategy = options.strategy ?? DEFAULT_STRATEGY;
  let outcome = await timed('search', () => quantizeAll(ctx, strategy !== 'sequential'));
  if (!outcome.fallback && !outcome.exhausted && space.size > 0) {
    ranking = await timed('ranking', () =>
      RANKING[options.ranking ?? 'model-output']({
        p, plan: space.plan, weightOnly: space.weightOnly, batches, similarity, options: rankingOptions, onStep: (done, total, step, scored) => progress('ranking', step, undefined, { done, total, ...(scored ? { layer: scored.layer, score: scored.score } : {}) }),
      }));
    const quantized = outcome;
    outcome = await timed('search', async () => {
      if (fallbackTo === 'int16') await space.widen(async (v) => void (await calibrate(v, '16-bit activations')));
      return searchFallbacks(ctx, quantized, ranking, strategy);
    });
    if (mixed && !outcome.fallback && !outcome.exhausted && evaluations.mayEvaluate()) {
      // Every layer at 8 bits fails too: one level down, from 8 bits to float, in the same ranking.
      const atEight = outcome;
      space = new SearchSpace(p, 'float', new Map([...(startBits ?? [])].map(([name]) => [name, 8 as const])));
      ctx = { ...ctx, space };
      progress('search', `every layer at 8-bit weights fails the limit: falling the most sensitive back to float`);
      outcome = await timed('search', () => searchFallbacks(ctx, atEight, ranking, strategy));
      outcome = { ...outcome, message: `every block-quantized layer at 8-bit weights still exceeds the limit; from 8 bits: ${outcome.message}` };
    }
  }
  const repairContext: RepairContext = {
    p,
    record: space.record,
    calibrate: async (v, step) => void (await calibrate(v, step)),
    score: (layers) => rankLayers(p.session.work, layers, batches, similarity, rankingOptions),
    ranking,
  };
  const searched = outcome;
  outcome = await timed('repair', () => repair(ctx, searched, fallbackTo === 'float' ? options.repairs ?? REPAIRS : [], repairContext));
  if (options.refine) {
    const repaired = outcome;
    outcome = await timed('refine', () => refine(ctx, repaired, ranking));
  }

  const result = await finish(p, space, outcome, {
    ranking, evaluations, evaluator, timings, floatModelRewrites, runLog, rankingOptions, layerErrors: options.layerErrors ?? options.savePrefix !== undefined, kept: p.session.kept ?? [], sessionOptions,
  });
  result.calibrationCalls = replayed.calls;
  result.timings.total = now() - t0; // as of the report; updated below with the writing
  if (withholdsModels(result, options)) {
    runLog.log('warn', `the fake-quant and deploy models were not written: the deploy model fails parity (cosine ${result.parity!.cosine.toFixed(5)} on ${result.parity!.backend}); pass force: true (CLI --force) to write them anyway, or saveModel(result, prefix, { force: true })`);
  }
  result.files = await saveOutputs(result, options, p.session.originalBytes, runLog.text());
  if (result.files.length) progress('saving', `wrote ${result.files.join(', ')}`);
  result.timings.total = now() - t0;
  return result;
}

/** The result of an outcome: the config and record returned are built here, once, from the choice made. */
async function finish(
  p: PreparedQuantization,
  space: SearchSpace,
  outcome: Outcome,
  o: {
    ranking: LayerScore[];
    evaluations: Evaluations;
    evaluator: AutoCalibrationEvaluator;
    timings: AutoCalibrationResult['timings'];
    floatModelRewrites: string[];
    runLog: RunLog;
    layerErrors: boolean;
    rankingOptions: CreateSessionOptions & { signal?: AbortSignal };
    kept: readonly KeptBatch[];
    sessionOptions: CreateSessionOptions;
  },
): Promise<AutoCalibrationResult> {
  const { fallback, repaired, message } = outcome;
  const passed = fallback !== undefined;
  const fallbackTo = space.fallbackTo;
  // The config says quant_enable false (or 16-bit activations) for the fallen-back layers.
  const config = structuredClone(p.config);
  for (const name of fallback ?? []) {
    const entry = config[name] as LayerQuantConfig;
    if (fallbackTo === 'float') entry.quant_enable = false;
    else if (fallbackTo === '8-bit') entry.weight_quant_params!.num_bits = 8;
    else entry.activation_quant_params!.num_bits = 16;
  }
  for (const [name, c] of repaired) c.edit(config[name] as LayerQuantConfig);
  const choice = { fallback: fallback ?? [], repaired };
  const plan = passed ? space.planFor(choice) : [];
  const weightOnly = passed ? space.weightOnlyFor(choice) : [];
  // The returned config rebuilds the model chosen: each weight-only layer at the bits it got.
  const bitsOf = new Map(weightOnly.filter((w) => w.layer.blocked).map((w) => [w.layer.name, weightOnlyBits(w)]));
  for (const [name, b] of bitsOf) (config[name] as LayerQuantConfig).weight_quant_params!.num_bits = b;
  // The returned config and record must rebuild this model without data, fallbacks in float included.
  const record = p.finalRecord(space.record, space.adoptedEntries(choice), passed ? plan : undefined, weightOnly);
  const off = new Set(fallback ?? []);
  const layers = p.layerReport(
    new Set([...plan.map((l) => l.layer.name), ...weightOnly.map((w) => w.layer.name)]),
    (name) => (off.has(name) ? 'fell back to float: the metric drop exceeded the limit' : passed ? undefined : message),
    record,
  ).map((l) => (repaired.has(l.name) ? { ...l, repair: repaired.get(l.name)!.repair.detail } : bitsOf.has(l.name) && l.quantized ? { ...l, weightBits: bitsOf.get(l.name)! } : l));
  const fakeQuant = passed ? p.fakeQuantProto(plan, weightOnly).model : undefined;
  const fakeQuantModel = fakeQuant && encodeModel(fakeQuant);
  const deployModel = passed ? await p.deployModel(plan, weightOnly, o.sessionOptions) : undefined;
  const parity = fakeQuant && deployModel && plan.length + weightOnly.length ? await measureParity(fakeQuant, deployModel, o.kept, o.sessionOptions, p.config.deploy_target) : undefined;
  const warnings = [...p.warnings(layers, true), ...parityWarnings(parity)];
  for (const w of warnings) o.runLog.log('warn', `warning: ${w.message}`);
  const history = o.evaluations.history;
  const original = o.evaluations.original!;
  const result: AutoCalibrationResult = {
    passed,
    message,
    originalMetric: original,
    quantizedMetric: passed ? outcome.final!.metric : outcome.full?.metric ?? original,
    quantizedLayers: [...plan.map((l) => l.layer.name), ...weightOnly.map((w) => w.layer.name)],
    fallbackLayers: passed ? fallback! : space.names,
    fallbackTo,
    repairedLayers: [...repaired.values()].map((c) => c.repair),
    refinedLayers: outcome.refined,
    limit: { ...(o.evaluator.limit ?? {}) },
    ranking: o.ranking,
    history,
    evaluations: history.length,
    calibrationCalls: 0,
    config,
    record,
    layers,
    timings: o.timings,
    files: [],
    warnings,
    floatModelRewrites: o.floatModelRewrites,
  };
  if (passed) {
    result.fakeQuantModel = fakeQuantModel;
    result.deployModel = deployModel;
    if (parity) result.parity = parity;
    if (o.layerErrors) result.layerErrors = await p.layerErrors(plan, o.rankingOptions, weightOnly);
    if (weightOnly.length) result.weightBytes = weightOnlyBytes(weightOnly);
  }
  o.runLog.log('info', message);
  return result;
}

/** Types a TypeScript caller would have caught, checked for JavaScript callers and the CLI. */
const AUTO_OPTION_KEYS = optionKeys<AutoCalibrationOptions>({
  executionProviders: true, graphOptimizationLevel: true, engine: true, config: true, configFile: true, record: true, recordFile: true, savePrefix: true,
  strategy: true, fallback: true, sensitivity: true, ranking: true, repairs: true, refine: true, maxEvaluations: true, maxSeconds: true, signal: true,
  evaluationTimeoutSeconds: true, layerErrors: true, memoryBudgetBytes: true, force: true, onProgress: true, deployTarget: true, weightBits: true,
});
/** The evaluator as an AutoCalibrationEvaluator, after checking it and the options. */
function checkAutoArguments(evaluatorLike: unknown, options: unknown): AutoCalibrationEvaluator {
  const evaluator = asEvaluator(evaluatorLike);
  if (!evaluator) {
    throw new EvaluationError(`the evaluator must have calibration(session) and evaluate(session) methods (an AutoCalibrationEvaluator, or a plain object with them), got ${describeValue(evaluatorLike)}`);
  }
  checkOptionKeys(options, AUTO_OPTION_KEYS, 'accuracyBasedAutoCalibration', 'AUTO_OPTIONS');
  const o = options as AutoCalibrationOptions;
  if (o.force !== undefined && typeof o.force !== 'boolean') throw new OptionsError(`force must be a boolean, got ${describeValue(o.force)}`, 'AUTO_OPTIONS');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new OptionsError(`onProgress must be a function, got ${describeValue(o.onProgress)}`, 'AUTO_OPTIONS');
  if (o.signal !== undefined && !(typeof o.signal === 'object' && o.signal !== null && typeof o.signal.aborted === 'boolean')) {
    throw new OptionsError(`signal must be an AbortSignal, got ${describeValue(o.signal)}`, 'AUTO_OPTIONS');
  }
  if (o.evaluationTimeoutSeconds !== undefined && !(typeof o.evaluationTimeoutSeconds === 'number' && o.evaluationTimeoutSeconds > 0)) {
    throw new OptionsError(`evaluationTimeoutSeconds must be a number > 0, got ${describeValue(o.evaluationTimeoutSeconds)}`, 'AUTO_OPTIONS');
  }
  if (o.memoryBudgetBytes !== undefined && !(typeof o.memoryBudgetBytes === 'number' && o.memoryBudgetBytes >= 0)) {
    throw new OptionsError(`memoryBudgetBytes must be a number >= 0, got ${describeValue(o.memoryBudgetBytes)}`, 'AUTO_OPTIONS');
  }
  if (o.strategy !== undefined && !(STRATEGIES as readonly unknown[]).includes(o.strategy)) {
    throw new OptionsError(`strategy must be one of ${STRATEGIES.join(', ')}, got ${describeValue(o.strategy)}`, 'AUTO_OPTIONS');
  }
  if (o.ranking !== undefined && !(RANKINGS as readonly unknown[]).includes(o.ranking)) {
    throw new OptionsError(`ranking must be one of ${RANKINGS.join(', ')}, got ${describeValue(o.ranking)}`, 'AUTO_OPTIONS');
  }
  if (o.repairs !== undefined && !(Array.isArray(o.repairs) && o.repairs.every((r) => (REPAIRS as readonly unknown[]).includes(r)))) {
    throw new OptionsError(`repairs must be a list of ${REPAIRS.join(', ')}, got ${describeValue(o.repairs)}`, 'AUTO_OPTIONS');
  }
  if (o.weightBits !== undefined && !(o.weightBits === 8 || o.weightBits === 4 || (Array.isArray(o.weightBits) && o.weightBits.length === 2 && o.weightBits[0] === 4 && o.weightBits[1] === 8))) {
    throw new OptionsError(`weightBits must be 8, 4 or [4, 8], got ${describeValue(o.weightBits)}`, 'AUTO_OPTIONS');
  }
  if (o.weightBits !== undefined && o.weightBits !== 8 && !isWeightOnlyTarget(o.deployTarget ?? o.config?.deploy_target)) {
    throw new OptionsError(`weightBits ${describeValue(o.weightBits)} needs deployTarget 'webgpu' or 'wasm' (the CPU target's int8 kernels take 8-bit weights)`, 'AUTO_OPTIONS');
  }
  if (o.deployTarget !== undefined && (o.config !== undefined || o.configFile !== undefined)) {
    throw new OptionsError("deployTarget applies to the default config; a given config says its own deploy_target", 'AUTO_OPTIONS');
  }
  if (o.refine !== undefined && typeof o.refine !== 'boolean') throw new OptionsError(`refine must be a boolean, got ${describeValue(o.refine)}`, 'AUTO_OPTIONS');
  const maxEvaluations = o.maxEvaluations ?? Infinity;
  if (!(maxEvaluations === Infinity || (Number.isInteger(maxEvaluations) && maxEvaluations >= 2))) {
    throw new OptionsError(`maxEvaluations must be an integer >= 2 (the float and the fully quantized evaluations), got ${o.maxEvaluations}`, 'AUTO_OPTIONS');
  }
  if (!((o.maxSeconds ?? Infinity) > 0)) throw new OptionsError(`maxSeconds must be a number > 0, got ${o.maxSeconds}`, 'AUTO_OPTIONS');
  for (const k of ['savePrefix', 'recordFile'] as const) {
    if (o[k] !== undefined && !(typeof o[k] === 'string' && o[k] !== '')) {
      throw new OptionsError(`${k} must be a non-empty path, got ${describeValue(o[k])}`, 'AUTO_OPTIONS');
    }
  }
  return evaluator;
}
