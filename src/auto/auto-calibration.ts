/**
 * Accuracy-based automatic calibration (AMCT's accuracy_based_auto_calibration): quantize every
 * layer; if the metric drops too far, rank layers by sensitivity and fall the most sensitive back to
 * float until the drop is acceptable. Calibration runs once; every search step re-uses its factors
 * and costs exactly one evaluation.
 */
import { EvaluationError, OptionsError } from '../errors.js';
import { describeError, describeValue } from '../text.js';
import { checkOptionKeys, optionKeys } from '../options.js';
import { checkSignal, withDeadline } from '../runtime/deadline.js';
import { checkWritable } from '../runtime/io.js';
import { createSession, type CreateSessionOptions } from '../runtime/ort.js';
import { DEFAULT_CALIBRATION_MEMORY, replayBatches, type BatchSource, type Sample } from '../quant/calibrate/calibrate.js';
import type { LayerQuantConfig, QuantConfig } from '../quant/config/config.js';
import { createQuantConfig, PreparedQuantization, readJsonFile, type ModelSource, type QuantizeProgressEvent } from '../quant/quantize.js';
import { decodeModel, encodeModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/types.js';
import { replaceAttributeClips } from '../quant/export/portable.js';
import type { QuantRecord } from '../quant/config/record.js';
import type { LayerQuantization } from '../quant/export/rewrite.js';
import { asEvaluator, type AutoCalibrationEvaluator, type EvaluatorLike } from './evaluator.js';
import { RANKINGS, rankByModelOutput, rankLayers, sensitivityFunction, type LayerScore } from './sensitivity.js';
import { refineGreedily, searchFallbackCount } from './strategies.js';
import { emitProgress, RunLog } from '../runtime/log.js';
import { REPAIRS, repairFallbacks, type RepairCandidate } from './repairs.js';
import { outputFiles, saveOutputs } from './outputs.js';


export { type AutoCalibrationReport, autoCalibrationReport } from './outputs.js';
import { type AutoPhase, type AutoProgressEvent, type AutoCalibrationOptions, type HistoryEntry, type AutoCalibrationResult } from './types.js';


export { type AutoPhase, type AutoProgressEvent, type AutoCalibrationOptions, type HistoryEntry, type AutoCalibrationResult } from './types.js';

const now = () => performance.now() / 1000;
async function readConfig(options: AutoCalibrationOptions, model: ModelSource): Promise<QuantConfig> {
  // PreparedQuantization.create validates it and works on its own copy.
  if (options.config) return options.config;
  // A file's config is validated against the model by PreparedQuantization.create.
  if (options.configFile) return (await readJsonFile(options.configFile)) as QuantConfig;
  return createQuantConfig(model);
}
export async function accuracyBasedAutoCalibration(
  model: ModelSource,
  evaluatorLike: AutoCalibrationEvaluator | EvaluatorLike,
  options: AutoCalibrationOptions = {},
): Promise<AutoCalibrationResult> {
  const t0 = now();
  const evaluator = checkAutoArguments(evaluatorLike, options);
  const runLog = new RunLog();
  const progress = (phase: AutoPhase, message: string, evaluation?: HistoryEntry, step: Pick<AutoProgressEvent, 'done' | 'total' | 'layer'> = {}) =>
    emitProgress(runLog, options.onProgress, { phase, stage: phase, message, ...step, ...(evaluation ? { metric: evaluation.metric, evaluation } : {}) }, `a '${phase}' event`, `${phase}: ${message}`);
  const sessionOptions: CreateSessionOptions = { executionProviders: options.executionProviders, graphOptimizationLevel: options.graphOptimizationLevel, engine: options.engine };
  const config = await readConfig(options, model);
  // Finds out now, not after the search, whether the deploy model's opset is reachable.
  const p = await PreparedQuantization.create(model, config, {
    record: options.record,
    configSource: options.configFile ?? 'config',
    activationBits: options.fallback === 'int16' ? 16 : undefined,
  });
  const history: HistoryEntry[] = [];

  const evaluate = async (bytes: Uint8Array, fallbackLayers: string[] | null, what: string, original?: number): Promise<HistoryEntry> => {
    checkSignal(options.signal, what);
    const start = now();
    const session = await createSession(bytes, sessionOptions);
    let metric: unknown;
    try {
      metric = await withDeadline(
        () => evaluator.evaluate(session),
        (cause) => new EvaluationError(`evaluator.evaluate failed on ${what}: ${describeError(cause)}`, { cause }),
        { signal: options.signal, seconds: options.evaluationTimeoutSeconds, what: `evaluator.evaluate on ${what}` },
      );
    } finally {
      // The evaluator may have released it already; a second release is not the user's error.
      await session.release().catch(() => {});
    }
    if (typeof metric !== 'number' || !Number.isFinite(metric)) {
      throw new EvaluationError(`evaluator.evaluate returned ${describeValue(metric)} for ${what}; it must return a finite number (higher is better)`);
    }
    let verdict: unknown;
    try {
      verdict = evaluator.metricEval(original ?? metric, metric);
    } catch (cause) {
      throw new EvaluationError(`evaluator.metricEval failed on ${what}: ${describeError(cause)}`, { cause });
    }
    if (!(Array.isArray(verdict) && typeof verdict[0] === 'boolean' && typeof verdict[1] === 'number' && !Number.isNaN(verdict[1]))) {
      throw new EvaluationError(`evaluator.metricEval returned ${describeValue(verdict)} for ${what}; it must return [ok: boolean, loss: number]`);
    }
    const [ok, loss] = verdict as [boolean, number];
    const entry = { fallbackLayers, metric, loss, ok, seconds: now() - start };
    history.push(entry);
    return entry;
  };

  const maxEvaluations = options.maxEvaluations ?? Infinity;
  if (!(maxEvaluations === Infinity || (Number.isInteger(maxEvaluations) && maxEvaluations >= 2))) {
    throw new OptionsError(`maxEvaluations must be an integer >= 2 (the float and the fully quantized evaluations), got ${options.maxEvaluations}`, 'AUTO_OPTIONS');
  }
  for (const k of ['savePrefix', 'recordFile'] as const) {
    if (options[k] !== undefined && !(typeof options[k] === 'string' && options[k] !== '')) {
      throw new OptionsError(`${k} must be a non-empty path, got ${describeValue(options[k])}`, 'AUTO_OPTIONS');
    }
  }
  // Before the search, not after it: a path that cannot be written fails now.
  const { models, reports } = outputFiles(options);
  if (models.length + reports.length) await checkWritable([...models, ...reports]);
  const maxSeconds = options.maxSeconds ?? Infinity;
  if (!(maxSeconds > 0)) throw new OptionsError(`maxSeconds must be a number > 0, got ${options.maxSeconds}`, 'AUTO_OPTIONS');
  evaluator.reset();

  // 1. The float model sets the reference and must pass against itself. On WebGPU it is evaluated
  // with its attribute-form Clips rewritten exactly as in the fake-quant models, so that neither
  // side pays for CPU round trips the other does not.
  let phaseStart = now();
  const onGpu = (options.executionProviders ?? []).some((ep) => (typeof ep === 'string' ? ep : ep.name) === 'webgpu');
  let floatModel = p.session.original;
  let floatModelRewrites: string[] = [];
  if (onGpu) {
    const copy = decodeModel(p.session.original);
    floatModelRewrites = replaceAttributeClips(copy);
    if (floatModelRewrites.length) floatModel = encodeModel(copy);
  }
  const floatEntry = await evaluate(floatModel, null, floatModelRewrites.length ? `the float model (${floatModelRewrites.length} Clip nodes as Max/Min)` : 'the float model');
  const originalMetric = floatEntry.metric;
  if (!floatEntry.ok) {
    throw new EvaluationError(`metricEval(original, original) is not ok for original = ${originalMetric}: the evaluator's limit can never be met`);
  }
  progress('float-evaluation', `float model: metric ${originalMetric}`, floatEntry);
  const floatSeconds = now() - phaseStart;

  // 2. Calibrate once and evaluate the fully quantized model.
  phaseStart = now();
  const batches: BatchSource = { callback: (session) => evaluator.calibration(session) };
  const calibrationOptions = (what: string) => ({
    ...sessionOptions,
    signal: options.signal,
    // The event's own message tells the equalization pass from calibration's.
    onProgress: (e: QuantizeProgressEvent) => progress('calibration', what === 'calibration' ? e.message : `${what}, ${e.message}`, undefined, { done: e.batch, total: e.batchNum }),
  });
  const stats = await p.calibrate(batches.callback!, calibrationOptions('calibration'));
  // The evaluator judges the output quantizations here (see step 2 below), so all are kept at first.
  const outputs = p.keepAllOutputs();
  let plan = p.plan();
  const calibrationSeconds = now() - phaseStart;
  const fallbackTo = options.fallback ?? 'float';
  let wide: Map<string, LayerQuantization> | undefined;
  const widePlan = async () => {
    // The same layers with 16-bit activation factors, calibrated once for the whole search.
    const p16 = p.withActivationBits(16);
    await p16.calibrate(batches.callback!, calibrationOptions('16-bit activations'));
    return { plan: new Map(p16.plan().map((l) => [l.layer.name, l])), record16: p16.record };
  };
  let record16: QuantRecord | undefined;
  const byCount = new Map<number, HistoryEntry>();
  // The plan with `fallback` out of int8 (in float, or at 16 bits) and `repairs` in place of their layers.
  const planWith = (fallback: readonly string[], repairs: ReadonlyMap<string, RepairCandidate> = new Map()) => {
    const off = new Set(fallback);
    return plan.flatMap((l) => (!off.has(l.layer.name) ? [repairs.get(l.layer.name)?.quantization ?? l] : wide ? [wide.get(l.layer.name)!] : []));
  };
  const tryFallback = async (fallback: readonly string[], note = '') => {
    const subPlan = planWith(fallback);
    const entry = await evaluate(p.fakeQuantModel(subPlan).model, [...fallback], `the model with ${fallback.length} layer(s) in ${fallbackTo}${note}`, originalMetric);
    byCount.set(fallback.length, entry);
    progress(fallback.length ? 'search' : 'quantized-evaluation', `${fallback.length} layer(s) in ${fallbackTo}${note}: metric ${entry.metric}, loss ${entry.loss}, ${entry.ok ? 'ok' : 'not ok'}`, entry);
    return entry;
  };
  const withinBudget = () => history.length < maxEvaluations && now() - t0 < maxSeconds;

  const similarity = sensitivityFunction(p.session.kernels, options.sensitivity ?? 'cosine');
  const rankingOptions = {
    ...sessionOptions,
    batchNum: p.config.batch_num,
    activationBytes: stats?.activationBytes,
    memoryBudgetBytes: options.memoryBudgetBytes ?? DEFAULT_CALIBRATION_MEMORY,
    signal: options.signal,
  };
  let ranking: LayerScore[] = [];
  let rankingSeconds = 0;
  let searchSeconds = 0;
  let fallback: string[] | undefined;
  let message: string;
  let exhausted = false;
  phaseStart = now();
  let full = plan.length > 0 ? await tryFallback([]) : undefined;
  // Calibrated output quantizations make layers faster in the deploy model but add rounding; they
  // are the cheapest thing to give up, so a failing model first loses all of them (one evaluation),
  // and the search then falls back whole layers from AMCT's form.
  let outputsDropped = false;
  if (full && !full.ok && outputs > 0 && withinBudget()) {
    outputsDropped = true;
    p.dropOutputs();
    plan = p.plan();
    full = await tryFallback([], `, outputs of ${outputs} layers back to float`);
  }
  if (full?.ok) {
    fallback = [];
    message = `all ${plan.length} layers quantized; the metric drop is within the limit`;
    if (outputsDropped) message += ` once the quantized outputs of ${outputs} layers went back to float`;
  } else if (plan.length === 0) {
    message = 'no layer is enabled for quantization, so no quantized model can be produced';
  } else if (!withinBudget()) {
    exhausted = true;
    message = `the fully quantized model fails the limit and the budget (maxEvaluations ${maxEvaluations}, maxSeconds ${maxSeconds}) leaves no evaluation for the search`;
  } else {
    // 3. Rank by sensitivity, 4. fall back in ranking order.
    const rankStart = now();
    ranking = (options.ranking ?? 'model-output') === 'model-output'
      ? await rankByModelOutput(plan, (only) => p.fakeQuantModel([only]).model, await rankingSamples(p.session.work, batches, rankingOptions), similarity, {
        ...rankingOptions,
        onLayer: (done, total) => progress('ranking', `layer ${done}/${total}`, undefined, { done, total }),
      })
      : await rankLayers(p.session.work, plan, batches, similarity, {
        ...rankingOptions,
        onBatch: (b) => progress('ranking', `group ${b.group}/${b.groups}, batch ${b.batch}/${rankingOptions.batchNum}`, undefined, { done: b.batch, total: rankingOptions.batchNum }),
      });
    rankingSeconds = now() - rankStart;
    const searchStart = now();
    if (fallbackTo === 'int16') {
      const w = await widePlan();
      wide = w.plan;
      record16 = w.record16;
    }
    const order = ranking.map((r) => r.layer);
    const outcome = await searchFallbackCount(
      options.strategy ?? 'binary',
      order.length,
      async (count) => (await tryFallback(order.slice(0, count))).ok,
      withinBudget,
      fallbackTo === 'float',
    );
    searchSeconds = now() - searchStart;
    exhausted = outcome.exhausted;
    if (outcome.count !== undefined) {
      fallback = order.slice(0, outcome.count);
      message = `${plan.length - fallback.length} of ${plan.length} layers in int8; ${fallback.length} fell back to ${fallbackTo}: ${fallback.join(', ')}`;
      if (exhausted) message += ' (the budget ended the search early: fewer fallbacks may also pass)';
    } else if (exhausted) {
      message = `no passing configuration was found within the budget (maxEvaluations ${maxEvaluations}, maxSeconds ${maxSeconds}); no model is produced`;
    } else {
      message = fallbackTo === 'float'
        ? `no configuration that keeps at least one of the ${plan.length} layers quantized meets the limit: every layer would have to fall back to float, so no quantized model is produced`
        : `even with every one of the ${plan.length} layers at int16 activations the drop exceeds the limit, so no quantized model is produced (try fallback: 'float')`;
    }
  }
  let finalEntry = fallback ? byCount.get(fallback.length) : undefined;

  // 5. Repairs before float, on the layers the search put there.
  let repaired = new Map<string, RepairCandidate>();
  let repairSeconds = 0;
  const repairs = fallbackTo === 'float' ? options.repairs ?? REPAIRS : [];
  if (fallback && fallback.length > 0 && repairs.length > 0 && withinBudget()) {
    const repairStart = now();
    const inFloat = fallback;
    repaired = await repairFallbacks(
      {
        p,
        calibrate: async (v, what) => void (await v.calibrate(batches.callback!, calibrationOptions(what))),
        score: (layers) => rankLayers(p.session.work, layers, batches, similarity, rankingOptions),
        ranking,
      },
      inFloat,
      repairs,
      async (trial) => {
        const still = inFloat.filter((n) => !trial.has(n));
        const subPlan = planWith(still, trial);
        const what = `the model with ${still.length} layer(s) in float and ${trial.size} repaired`;
        const entry = await evaluate(p.fakeQuantModel(subPlan).model, still, what, originalMetric);
        entry.repaired = [...trial.values()].map((c) => c.repair);
        progress('repair', `${still.length} layer(s) in float, ${trial.size} repaired: metric ${entry.metric}, loss ${entry.loss}, ${entry.ok ? 'ok' : 'not ok'}`, entry);
        if (entry.ok && (finalEntry?.fallbackLayers?.length ?? Infinity) >= still.length) finalEntry = entry;
        return entry.ok;
      },
      withinBudget,
    );
    repairSeconds = now() - repairStart;
    if (repaired.size > 0) {
      fallback = inFloat.filter((n) => !repaired.has(n));
      const list = [...repaired.values()].map((c) => `${c.repair.layer} (${c.repair.detail})`).join(', ');
      message = `${plan.length - fallback.length} of ${plan.length} layers quantized; ${repaired.size} of the ${inFloat.length} the search put in float were repaired instead: ${list}`;
      message += fallback.length ? `; ${fallback.length} fell back to float: ${fallback.join(', ')}` : '; none is left in float';
    }
  }

  // 6. Refinement: each layer still out of int8 (in float, or repaired with 16-bit activations, which
  // onnxruntime runs as float behind Q/DQ) tried back in plain int8, least sensitive first.
  let refined: string[] = [];
  let refineSeconds = 0;
  const wideRepairs = () => [...repaired.values()].filter((c) => c.repair.repair === 'int16').map((c) => c.repair.layer);
  if (options.refine && fallback && fallback.length + wideRepairs().length > 0 && withinBudget()) {
    const refineStart = now();
    const rank = new Map(ranking.map((r, i) => [r.layer, i]));
    const candidates = [...fallback, ...wideRepairs()].sort((a, b) => (rank.get(b) ?? 0) - (rank.get(a) ?? 0));
    const inFloat = fallback;
    const without = (back: ReadonlySet<string>) => ({
      float: inFloat.filter((n) => !back.has(n)),
      repaired: new Map([...repaired].filter(([n]) => !back.has(n))),
    });
    const outcome = await refineGreedily(candidates, async (back, layer) => {
      const trial = without(back);
      const subPlan = planWith(trial.float, trial.repaired);
      const was = inFloat.includes(layer) ? fallbackTo : '16-bit activations';
      const entry = await evaluate(p.fakeQuantModel(subPlan).model, trial.float, `the model with ${layer} back in int8 from ${was}`, originalMetric);
      if (trial.repaired.size) entry.repaired = [...trial.repaired.values()].map((c) => c.repair);
      progress('refine', `${layer} back in int8 from ${was}: metric ${entry.metric}, loss ${entry.loss}, ${entry.ok ? 'ok, kept' : 'not ok'}`, entry, { layer });
      if (entry.ok) finalEntry = entry;
      return entry.ok;
    }, withinBudget);
    refined = outcome.kept;
    ({ float: fallback, repaired } = without(new Set(refined)));
    refineSeconds = now() - refineStart;
    const early = outcome.exhausted ? ' (the budget ended it early)' : '';
    if (refined.length) {
      const wide = wideRepairs();
      message = `${plan.length - fallback.length} of ${plan.length} layers quantized; the refinement brought ${refined.length} of the ${candidates.length} layer(s) not in int8 back in int8${early}: ${refined.join(', ')}`
        + (fallback.length ? `; ${fallback.length} stay in ${fallbackTo}: ${fallback.join(', ')}` : `; none is left in ${fallbackTo}`)
        + (wide.length ? `; ${wide.length} keep 16-bit activations: ${wide.join(', ')}` : '')
        + `. Before the refinement: ${message}`;
    } else {
      message += `; the refinement brought none of the ${candidates.length} layer(s) not in int8 back in int8${early}`;
    }
  }
  const passed = fallback !== undefined;

  // Outputs: the final config has quant_enable false for the fallen-back layers.
  const finalConfig = structuredClone(p.config);
  for (const name of fallback ?? []) {
    const entry = finalConfig[name] as LayerQuantConfig;
    if (fallbackTo === 'float') entry.quant_enable = false;
    else entry.activation_quant_params.num_bits = 16;
  }
  for (const [name, c] of repaired) {
    c.edit(finalConfig[name] as LayerQuantConfig);
    p.adoptRecord(name, c.record);
  }
  const off = new Set(fallback ?? []);
  const finalPlan = passed ? planWith(fallback!, repaired) : [];
  for (const name of fallback ?? []) if (record16) p.adoptRecord(name, record16.layers[name]!);
  // The returned config and record must rebuild this model without data, fallbacks in float included.
  if (passed) p.settleOutputs(finalPlan);
  const result: AutoCalibrationResult = {
    passed,
    message,
    originalMetric,
    quantizedMetric: passed ? finalEntry!.metric : full?.metric ?? originalMetric,
    quantizedLayers: passed ? finalPlan.map((l) => l.layer.name) : [],
    fallbackLayers: passed ? fallback! : plan.map((l) => l.layer.name),
    fallbackTo,
    repairedLayers: [...repaired.values()].map((c) => c.repair),
    refinedLayers: refined,
    limit: { ...(evaluator.limit ?? {}) },
    ranking,
    history,
    evaluations: history.length,
    config: finalConfig,
    record: p.prunedRecord(),
    layers: p.layerReport(new Set(passed ? finalPlan.map((l) => l.layer.name) : []), (name) =>
      off.has(name) ? 'fell back to float: the metric drop exceeded the limit' : passed ? undefined : message,
    ).map((l) => (repaired.has(l.name) ? { ...l, repair: repaired.get(l.name)!.repair.detail } : l)),
    timings: { floatEvaluation: floatSeconds, calibration: calibrationSeconds, ranking: rankingSeconds, search: searchSeconds, repair: repairSeconds, refine: refineSeconds, total: 0 },
    files: [],
    warnings: [],
    floatModelRewrites,
  };
  result.warnings = p.warnings(result.layers, true);
  for (const w of result.warnings) runLog.log('warn', `warning: ${w.message}`);
  if (passed) {
    result.fakeQuantModel = p.fakeQuantModel(finalPlan).model;
    result.deployModel = p.deployModel(finalPlan);
    if (options.layerErrors ?? options.savePrefix !== undefined) result.layerErrors = await p.layerErrors(finalPlan, rankingOptions);
  }
  result.timings.total = now() - t0; // as of the report; updated below with the writing
  runLog.log('info', message);
  result.files = await saveOutputs(result, options, p.session.original.length, runLog.text());
  if (result.files.length) progress('saving', `wrote ${result.files.join(', ')}`);
  result.timings.total = now() - t0;
  return result;
}
/** Calibration batches the model-output ranking compares on: enough to steady the order, few enough to keep. */
const RANKING_BATCHES = 4;
/**
 * The first calibration batches (at most RANKING_BATCHES) and the float model's first output on each,
 * from one more run of the batches; their inputs are kept for the ranking.
 */
async function rankingSamples(work: ModelProto, batches: BatchSource, options: CreateSessionOptions & { batchNum: number; signal?: AbortSignal }): Promise<Required<Sample>[]> {
  const first = work.graph?.output?.[0]?.name ?? '';
  const taken: Required<Sample>[] = [];
  await replayBatches(work, [], batches, { ...options, batchNum: Math.min(options.batchNum, RANKING_BATCHES) }, (out, _batch, feeds) => {
    const o = out[first];
    if (o?.type !== 'float32') throw new EvaluationError(`the model's first output '${first}' is ${o?.type ?? 'missing'}; ranking 'model-output' compares float32 outputs`);
    taken.push({ feeds, output: (o.data as Float32Array).slice() });
  });
  return taken;
}
/** Types a TypeScript caller would have caught, checked for JavaScript callers and the CLI. */
const AUTO_OPTION_KEYS = optionKeys<AutoCalibrationOptions>({
  executionProviders: true, graphOptimizationLevel: true, engine: true, config: true, configFile: true, record: true, recordFile: true, savePrefix: true,
  strategy: true, fallback: true, sensitivity: true, ranking: true, repairs: true, refine: true, maxEvaluations: true, maxSeconds: true, signal: true,
  evaluationTimeoutSeconds: true, layerErrors: true, memoryBudgetBytes: true, onProgress: true,
});
/** The evaluator as an AutoCalibrationEvaluator, after checking it and the options. */
function checkAutoArguments(evaluatorLike: unknown, options: unknown): AutoCalibrationEvaluator {
  const evaluator = asEvaluator(evaluatorLike);
  if (!evaluator) {
    throw new EvaluationError(`the evaluator must have calibration(session) and evaluate(session) methods (an AutoCalibrationEvaluator, or a plain object with them), got ${describeValue(evaluatorLike)}`);
  }
  checkOptionKeys(options, AUTO_OPTION_KEYS, 'accuracyBasedAutoCalibration', 'AUTO_OPTIONS');
  const o = options as AutoCalibrationOptions;
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
  if (o.ranking !== undefined && !(RANKINGS as readonly unknown[]).includes(o.ranking)) {
    throw new OptionsError(`ranking must be one of ${RANKINGS.join(', ')}, got ${describeValue(o.ranking)}`, 'AUTO_OPTIONS');
  }
  if (o.repairs !== undefined && !(Array.isArray(o.repairs) && o.repairs.every((r) => (REPAIRS as readonly unknown[]).includes(r)))) {
    throw new OptionsError(`repairs must be a list of ${REPAIRS.join(', ')}, got ${describeValue(o.repairs)}`, 'AUTO_OPTIONS');
  }
  if (o.refine !== undefined && typeof o.refine !== 'boolean') throw new OptionsError(`refine must be a boolean, got ${describeValue(o.refine)}`, 'AUTO_OPTIONS');
  return evaluator;
}
