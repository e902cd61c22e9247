/**
 * Command-line entry. Parses arguments and delegates; all behaviour lives in the library so the CLI
 * and `import` users get the same results. Progress goes to stderr, results to stdout.
 * Exit status: 0 success, 1 error, 2 no acceptable model.
 */
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { accuracyBasedAutoCalibration, autoCalibrationReport, type AutoCalibrationResult, type AutoProgressEvent } from '../auto/auto-calibration.js';
import { asEvaluator, type AutoCalibrationEvaluator } from '../auto/evaluator.js';
import { ClassificationEvaluator, FidelityEvaluator, type FidelityMode } from '../auto/evaluators.js';
import type { RankingName, SensitivityName } from '../auto/sensitivity.js';
import { STRATEGIES, type StrategyName } from '../auto/strategies.js';
import { REPAIRS, type RepairName } from '../auto/repairs.js';
import { Options, parseArgs, UsageError } from './args.js';
import { readFeeds, type FeedOptions } from './data.js';
import { declaredInputs } from '../onnx/inputs.js';
import { Logger } from './log.js';
import { AutoquantError } from '../errors.js';
import { describeError, formatBytes } from '../text.js';
import { loadModel } from '../onnx/model.js';
import { DEPLOY_TARGETS, WEIGHT_ROUNDINGS, isWeightOnlyTarget, type ActivationAlgo, type DeployTarget, type WeightRounding } from '../quant/config/config.js';
import { createQuantConfig, loadQuantConfig, quantizeModel, saveModel, type LayerReport } from '../quant/quantize.js';
import { describeParity } from '../quant/export/parity.js';
import type { QuantWarning } from '../quant/prepare/coverage.js';
import { encodeModel } from '../onnx/model.js';
import { htmlReport } from '../report/html.js';
import { checkWritable, readFileBytes, writeFileAtomic } from '../runtime/io.js';
import { parseNpz } from '../data/npy.js';
import { Tensor } from '../runtime/ort.js';
import { ENGINES, useEngine, type Engine } from '../runtime/ort.js';
import { VERSION } from '../version.js';
import { startAppServer } from './app-server.js';

const HELP = `autoquant ${VERSION}: accuracy-driven automatic int8 quantization of ONNX models

Usage:
  autoquant config <model.onnx> -o <config.json|-> [--batch-num N] [--skip a,b] [--act-algo ifmr|hfmg|minmax|percentile]
                   [--weight-rounding nearest|adaptive] [--channel-splitting R]
                   [--activation-bits 8|16] [--symmetric] [--no-fusion] [--no-channel-wise] [--no-skip-slow]
                   [--target cpu|webgpu|wasm] [--weight-bits 8|4]
      List every quantizable layer in a quantization config (AMCT's JSON form). By default the layers that
      onnxruntime's CPU runs slower in int8 than in float (depthwise and grouped Conv, Conv with dot products
      under 16 terms, AveragePool) are listed with quant_enable false (skip_slow_layers); --no-skip-slow lists them on.
      --target webgpu: weights only, in the forms onnxruntime-web's WebGPU backend runs on the GPU (MatMul and
      Gemm as MatMulNBits in blocks of 32, embeddings as GatherBlockQuantized, Conv int8 per channel);
      --target wasm: the same weight-only forms, for onnxruntime-web's wasm backend (where int8 QDQ runs slower
      than float); --weight-bits 4 puts the block-quantized layers at 4 bits.

  autoquant quantize <model.onnx> --data <calib.npy|.npz> --save <prefix> [--config <config.json>] [--batch-size B]
                     [--batch-axis name=K,...] [--const name=value,...] [--batch-num N]
                     [--weight-rounding nearest|adaptive] [--channel-splitting R] [--no-skip-slow] [--force]
                     [--target cpu|webgpu|wasm] [--weight-bits 8|4]
      Calibrate on the data and write <prefix>_fake_quant_model.onnx, <prefix>_deploy_model.onnx, <prefix>_record.json
      and <prefix>_report.html; prints each model output's cosine and SQNR to float on the calibration batches,
      and warnings (heavy nodes left float and why, an output below cosine 0.99). --weight-rounding sets the config's weight_rounding (adaptive: each layer's weights
      rounded, one layer after another, to fit the input the quantized layers before it give it).
      --channel-splitting sets channel_splitting: the share R in [0, 1] of extra input channels a dense layer may get
      where its widest input channels are split into copies (0 off, the default; 0.0625 measured).
      Parity: the deploy model is run (all graph optimizations on) against the fake-quant model on the calibration
      batches; below cosine 0.999 nothing is written and the exit status is 1, unless --force.

  autoquant auto <model.onnx> (--evaluator <eval.mjs> | --data <inputs.npy|.npz>) [--max-drop D | --max-relative-drop R]
                 [--save <prefix>] [--config <config.json>] [--strategy interpolated|binary|sequential] [--sensitivity cosine|mse|sqnr]
                 [--ranking model-output|layer-output] [--max-evaluations N] [--max-seconds S] [--batch-num N] [--batch-size B]
                 [--batch-axis name=K,...] [--const name=value,...] [--calibration-data <calib.npy|.npz>]
                 [--fidelity auto|top1|cosine|relative] [--fallback float|int16] [--repairs weights,rounding,observer,int16|none]
                 [--weight-rounding nearest|adaptive] [--channel-splitting R] [--no-skip-slow] [--refine] [--force]
                 [--target cpu|webgpu|wasm] [--weight-bits 8|4|4,8]
      Quantize, and fall the most sensitive layers back to float until the metric drop is within the limit;
      --repairs (default all four) are tried on those layers first, keeping them quantized where they suffice.
      --refine then tries each layer still in float back in int8, least sensitive first (one evaluation each).
      A result whose deploy model fails parity (as for quantize) has its reports written but not its models
      (exit status 1), unless --force.
      --evaluator: a module whose default export is an AutoCalibrationEvaluator instance, a subclass (constructed
      with { maxDrop } or { maxRelativeDrop }) or a function returning one. --data: label-free, the metric is the
      agreement with the float model's first output on those inputs, over all batches: top-1 for classifiers,
      relative error (1 − ‖q − f‖/‖f‖) for one value per sample, cosine otherwise; --fidelity picks one.
      --target webgpu|wasm --weight-bits 4,8: the search starts with every block-quantized layer at 4 bits and moves
      the most sensitive up to 8 (then, if all at 8 still fail, back to float).

  autoquant app [--port N] [--host H]
      Serve the browser app from this package (default http://127.0.0.1:8780/; --port 0 picks a free port) and
      print its URL on stdout; Ctrl+C stops it. Drop a model and calibration data (.npy, .npz or images), choose
      the target and the limit, run, and download the models and the report. Everything runs in the browser tab:
      the page makes requests to this server only. 'npm run build:app' writes the same app as a static folder.

  autoquant demo [--save <prefix>]
      The whole flow on data shipped with the package (the MNIST CNN fixture, 64 calibration digits, 300
      held-out labelled digits, top-1 accuracy within 0.002 of float); writes the models and
      <prefix>_report.html (default prefix autoquant-demo/mnist) and prints the report's path.

Common options:
  --json            Print a JSON summary on stdout (errors too: {"error": {code, message}})
  --quiet | --verbose | --log-level error|warn|info|debug
                    What is printed on stderr (default info: progress; --quiet: errors only; --verbose: debug)
  --log-file <path> Save every message to this file (default with --save: <prefix>_autoquant.log)
  --engine web|node Which onnxruntime runs the sessions: onnxruntime-web (wasm, all cores) or native
                    onnxruntime-node (default: node when the onnxruntime-node package is installed, else web);
                    --runtime is the older spelling
  --ep <name,...>   Execution providers (default wasm on web, cpu on node)
  --help, --version

NumPy inputs (--data, --calibration-data): a .npy array feeds the model's only input; a .npz holds one array per
input name. Arrays are split into batches of --batch-size rows (default: one batch) along their batch axis: the
first axis the model leaves free (axis 1 of a [2, N, 128] state), or as --batch-axis name=K says. A 0-d array,
and an array that gives one batch where the others give more, are fed to every batch; --const name=value (e.g.
--const sr=16000) holds an input of fixed shape at that value. Elements are converted to the type the model
declares (int64, int32, …). Calibration uses the first --batch-num batches (default: the config's batch_num, 1
unless set).

Exit status: 0 success, 1 error, 2 no acceptable model.`;

type Out = { write(s: string): unknown };

const FLAGS = new Set(['help', 'version', 'json', 'symmetric', 'no-fusion', 'no-channel-wise', 'quiet', 'verbose', 'refine', 'force', 'no-skip-slow']);
/** Options that take a value, over all commands; each command rejects the ones it does not use. */
const VALUED = new Set([
  'output', 'ep', 'batch-num', 'skip', 'act-algo', 'activation-bits', 'data', 'save', 'config', 'batch-size',
  'evaluator', 'max-drop', 'max-relative-drop', 'calibration-data', 'strategy', 'fallback', 'sensitivity', 'ranking',
  'max-evaluations', 'max-seconds', 'fidelity', 'runtime', 'repairs', 'log-level', 'log-file', 'weight-rounding',
  'channel-splitting', 'batch-axis', 'const', 'engine', 'target', 'weight-bits', 'port', 'host',
]);

/**
 * --target and --weight-bits: the created config's deployTarget and weightBits ('4,8', auto only:
 * the mixed search). A given --config already says its deploy_target and bits.
 */
function targetOptions(o: Options, mixed: boolean): { deployTarget?: DeployTarget; weightBits?: 8 | 4; mixed?: true } {
  const deployTarget = o.choice<DeployTarget>('target', DEPLOY_TARGETS);
  const bits = o.choice('weight-bits', (mixed ? ['8', '4', '4,8'] : ['8', '4']) as readonly string[]);
  if ((deployTarget !== undefined || bits !== undefined) && o.string('config') !== undefined) {
    throw new UsageError('--target and --weight-bits apply to the config autoquant creates; with --config, set deploy_target and weight_quant_params.num_bits in that file instead');
  }
  if (bits !== undefined && bits !== '8' && !isWeightOnlyTarget(deployTarget)) throw new UsageError(`--weight-bits ${bits} needs --target webgpu or wasm (the CPU target's int8 kernels take 8-bit weights)`);
  return { ...(deployTarget ? { deployTarget } : {}), ...(bits === '4,8' ? { weightBits: 4 as const, mixed: true as const } : bits ? { weightBits: Number(bits) as 8 | 4 } : {}) };
}

/** --no-skip-slow: the created config's skipSlowLayers; a given --config already decided it per layer. */
function noSkipSlow(o: Options): false | undefined {
  if (!o.flag('no-skip-slow')) return undefined;
  if (o.string('config') !== undefined) throw new UsageError('--no-skip-slow applies to the config autoquant creates; with --config, set quant_enable in that file instead');
  return false;
}

/** --channel-splitting: the config's channel_splitting. */
const channelSplitting = (o: Options) => o.number('channel-splitting', (n) => n >= 0 && n <= 1, 'a number in [0, 1]');

/** `name=value,name=value` pairs (--const, --batch-axis), each value checked by `parse`. */
function pairs(o: Options, name: string, parse: (v: string) => number | undefined, expected: string): Record<string, number> | undefined {
  const text = o.string(name);
  if (text === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(.+?)=(.+)$/.exec(part);
    const v = m ? parse(m[2]!.trim()) : undefined;
    if (!m || v === undefined) throw new UsageError(`--${name} takes name=${expected} pairs separated by commas, got '${part}'`);
    out[m[1]!.trim()] = v;
  }
  return out;
}

/** --batch-size, --batch-axis and --const: how the NumPy data becomes batches of feeds. */
function feedOptions(o: Options): FeedOptions {
  const batchSize = o.number('batch-size', (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
  const batchAxes = pairs(o, 'batch-axis', (v) => (/^\d+$/.test(v) ? Number(v) : undefined), 'axis');
  const constants = pairs(o, 'const', (v) => (v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined), 'number');
  return { ...(batchSize ? { batchSize } : {}), ...(batchAxes ? { batchAxes } : {}), ...(constants ? { constants } : {}) };
}


/** What was quantized and what was not, with the reason, one line per layer (plain-text output). */
function describeLayers(layers: readonly LayerReport[], out: Out): void {
  for (const l of layers) {
    const detail = l.quantized ? [l.weights, l.repair && `repaired: ${l.repair}`, l.biasCorrected && 'bias corrected', l.note].filter(Boolean).join(', ') : l.reason;
    out.write(`  ${l.quantized ? 'quantized' : 'float    '} ${l.name} (${l.opType})${detail ? `: ${detail}` : ''}\n`);
  }
}

/** Warnings on stderr (at the warn level, so --quiet hides them and a log file keeps them). */
function printWarnings(warnings: readonly QuantWarning[], log: Logger): void {
  for (const w of warnings) log.log('warn', `warning: ${w.message}`);
}

/** --repairs: a comma-separated subset of REPAIRS, or 'none'. */
function repairList(v: string | undefined): RepairName[] | undefined {
  if (v === undefined) return undefined;
  if (v === 'none') return [];
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((r) => !(REPAIRS as readonly string[]).includes(r));
  if (bad.length || list.length === 0) throw new UsageError(`--repairs must be 'none' or a comma-separated list of ${REPAIRS.join(', ')}, got '${v}'`);
  return list as RepairName[];
}

function executionProviders(o: Options): string[] | undefined {
  return o.string('ep')?.split(',').map((s) => s.trim()).filter(Boolean);
}

/** --engine, the API's word; --runtime, its older spelling, still works. */
function engine(o: Options): Engine | undefined {
  const e = o.choice<Engine>('engine', [...ENGINES]);
  const r = o.choice<Engine>('runtime', [...ENGINES]);
  if (e && r && e !== r) throw new UsageError(`--engine ${e} and --runtime ${r} disagree: give one (--runtime is the older spelling of --engine)`);
  return e ?? r;
}

/**
 * The options every running command shares (--runtime, --json, the logging ones), read last: rejects
 * unknown options, selects the engine (also the default for sessions an --evaluator module creates),
 * and saves the log beside `save`'s outputs when there are any.
 */
async function finishOptions(o: Options, err: Out, save?: string): Promise<{ runtime: Engine | undefined; json: boolean; log: Logger }> {
  const runtime = engine(o);
  const json = o.flag('json');
  const log = Logger.fromOptions(o, err);
  o.finish();
  if (runtime) await useEngine(runtime);
  if (save) log.defaultFile(`${save}_autoquant.log`);
  return { runtime, json, log };
}

async function configCommand(model: string, o: Options, out: Out): Promise<number> {
  const output = o.required('output', 'where to write the config');
  const options = {
    batchNum: o.number('batch-num', (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    skipLayers: o.string('skip')?.split(',').filter(Boolean),
    activationAlgo: o.choice<ActivationAlgo>('act-algo', ['ifmr', 'hfmg', 'minmax', 'percentile']),
    activationBits: ((b) => (b === undefined ? undefined : b === '16' ? 16 : 8))(o.choice('activation-bits', ['8', '16'] as const)) as 8 | 16 | undefined,
    activationOffset: o.flag('symmetric') ? false : undefined,
    doFusion: o.flag('no-fusion') ? false : undefined,
    channelWise: o.flag('no-channel-wise') ? false : undefined,
    skipSlowLayers: o.flag('no-skip-slow') ? false : undefined,
    weightRounding: o.choice<WeightRounding>('weight-rounding', WEIGHT_ROUNDINGS),
    channelSplitting: channelSplitting(o),
    ...targetOptions(o, false),
    // '-' writes the config to stdout.
    configFile: output === '-' ? undefined : output,
  };
  const json = o.flag('json');
  o.finish();
  const config = await createQuantConfig(model, options);
  if (output === '-') {
    out.write(JSON.stringify(config, null, 2) + '\n');
    return 0;
  }
  const layers = Object.keys(config).filter((k) => typeof config[k] === 'object' && !Array.isArray(config[k]));
  if (json) out.write(JSON.stringify({ config: output, layers }) + '\n');
  else out.write(`wrote ${output}: ${layers.length} quantizable layers\n`);
  return 0;
}

async function quantizeCommand(modelPath: string, o: Options, out: Out, err: Out): Promise<number> {
  const data = o.required('data', 'calibration inputs as .npy or .npz');
  const save = o.required('save', 'the output prefix');
  const configFile = o.string('config');
  const feeding = feedOptions(o);
  const batchNum = o.number('batch-num', (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
  const weightRounding = o.choice<WeightRounding>('weight-rounding', WEIGHT_ROUNDINGS);
  const splitting = channelSplitting(o);
  const skipSlowLayers = noSkipSlow(o);
  const target = targetOptions(o, false);
  const eps = executionProviders(o);
  const force = o.flag('force');
  const { runtime, json, log } = await finishOptions(o, err, save);
  // Cheap checks first: the outputs can be written, the data fits the model.
  const report = `${save}_report.html`;
  await checkWritable([`${save}_fake_quant_model.onnx`, `${save}_deploy_model.onnx`, `${save}_record.json`, report]);
  const model = await loadModel(modelPath);
  let config = configFile ? await loadQuantConfig(configFile, model) : await createQuantConfig(model, { skipSlowLayers, ...target });
  if (batchNum !== undefined) config = { ...config, batch_num: batchNum };
  if (weightRounding !== undefined) config = { ...config, weight_rounding: weightRounding };
  if (splitting !== undefined) config = { ...config, channel_splitting: splitting };
  const feeds = await readFeeds(data, declaredInputs(model), feeding);
  const t0 = performance.now();
  const result = await quantizeModel(model, config, feeds, {
    executionProviders: eps,
    engine: runtime,
    layerErrors: true,
    onProgress: (e) => log.progress(`${e.phase}: ${e.step}`, `${e.phase}: ${e.message}`, e.done, e.total),
  });
  const floatBytes = encodeModel(model).length;
  const files = await saveModel(result, save, { force });
  await writeFileAtomic(report, htmlReport(result, { title: `autoquant: ${modelPath}`, floatModelBytes: floatBytes }));
  files.push(report);
  for (const l of result.layers) log.log('debug', `layer ${l.name} (${l.opType}): ${l.quantized ? `quantized${l.weights ? `, ${l.weights} weights` : ''}` : `float: ${l.reason}`}`);
  log.log('debug', `quantized ${result.layers.filter((l) => l.quantized).length} of ${result.layers.length} layers`);
  printWarnings(result.warnings, log);
  const logFile = await log.flush();
  if (logFile) files.push(logFile);
  const quantized = result.layers.filter((l) => l.quantized).map((l) => l.name);
  const sizes = { floatBytes, deployBytes: result.deployModel.length };
  const rounding = result.adaptiveRounding;
  const summary = {
    quantizedLayers: quantized, skipped: result.layers.filter((l) => !l.quantized), layers: result.layers, sizes, files, seconds: (performance.now() - t0) / 1000,
    outputFidelity: result.outputFidelity, ...(result.parity ? { parity: result.parity } : {}), warnings: result.warnings, ...(rounding ? { adaptiveRounding: rounding } : {}),
    ...(result.weightBytes ? { weightBytes: result.weightBytes } : {}),
  };
  if (json) out.write(JSON.stringify(summary) + '\n');
  else {
    if (quantized.length === 0) out.write(`WARNING: no layer was quantized (0 of ${result.layers.length}): the models written are the float model; see the warnings above\n`);
    else out.write(`quantized ${quantized.length} of ${result.layers.length} layers; model ${formatBytes(floatBytes)} → deploy ${formatBytes(sizes.deployBytes)} (${((100 * sizes.deployBytes) / floatBytes).toFixed(1)}%)\n`);
    for (const f of result.outputFidelity) {
      out.write(`output ${f.output}: cosine ${f.cosine.toFixed(5)} to float, SQNR ${Number.isFinite(f.sqnrDb) ? f.sqnrDb.toFixed(1) : '∞'} dB (${f.batches} calibration batch${f.batches === 1 ? '' : 'es'})\n`);
    }
    if (result.parity) out.write(`parity: ${describeParity(result.parity)}\n`);
    if (result.weightBytes) out.write(`${describeWeights(result.weightBytes, result.layers)}\n`);
    if (rounding) {
      out.write(`adaptive rounding changed ${rounding.layers.length} of ${rounding.considered} layers; output error on the calibration batches ${rounding.errorBefore.toExponential(2)} → ${rounding.errorAfter.toExponential(2)}\n`);
    }
    describeLayers(result.layers, out);
    out.write(`wrote ${files.join(', ')}\n`);
  }
  return 0;
}

async function loadEvaluator(file: string, limit: { maxDrop?: number; maxRelativeDrop?: number }): Promise<AutoCalibrationEvaluator> {
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(resolve(file)).href);
  } catch (cause) {
    throw new UsageError(`cannot load the evaluator module ${file}: ${(cause as Error)?.message ?? cause}`);
  }
  const d = mod.default;
  let evaluator: unknown = d;
  // A class is recognised by shape: the user's module imports its own copy of the package, so
  // `instanceof` against this bundle's AutoCalibrationEvaluator would fail.
  if (typeof d === 'function' && typeof (d as { prototype?: { evaluate?: unknown } }).prototype?.evaluate === 'function') {
    evaluator = new (d as new (l: object) => AutoCalibrationEvaluator)(limit);
  } else if (typeof d === 'function') {
    evaluator = await (d as (l: object) => unknown)(limit);
  }
  // An instance from the module keeps its own limit (a shape-alike from another copy of the package is wrapped).
  const usable = asEvaluator(evaluator, limit);
  if (!usable) {
    throw new UsageError(`${file}: the default export must be an evaluator (an AutoCalibrationEvaluator instance or subclass, a plain object with calibration and evaluate, or a function returning one)`);
  }
  return usable;
}

function describeHistory(r: AutoCalibrationResult['history'][number]): string {
  let what = r.fallbackLayers === null ? 'float model' : r.fallbackLayers.length === 0 && !r.repaired ? 'all layers int8' : `${r.fallbackLayers.length} layer(s) in float`;
  if (r.repaired) what += `, ${r.repaired.length} repaired`;
  return `${what}: metric ${r.metric.toFixed(6)}, loss ${r.loss.toFixed(6)} (${r.ok ? 'ok' : 'not ok'}, ${r.seconds.toFixed(2)} s)`;
}

async function autoCommand(modelPath: string, o: Options, out: Out, err: Out): Promise<number> {
  const evaluatorFile = o.string('evaluator');
  const data = o.string('data');
  const fidelity = o.choice<FidelityMode>('fidelity', ['auto', 'top1', 'cosine', 'relative']);
  const weightRounding = o.choice<WeightRounding>('weight-rounding', WEIGHT_ROUNDINGS);
  const splitting = channelSplitting(o);
  const skipSlowLayers = noSkipSlow(o);
  const { mixed, ...target } = targetOptions(o, true);
  const maxDrop = o.number('max-drop', (n) => n >= 0, 'a number >= 0');
  const maxRelativeDrop = o.number('max-relative-drop', (n) => n >= 0, 'a number >= 0');
  const feeding = feedOptions(o);
  const batchNum = o.number('batch-num', (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
  const calibrationData = o.string('calibration-data');
  const configFile = o.string('config');
  const save = o.string('save');
  const strategy = o.choice<StrategyName>('strategy', STRATEGIES);
  const fallback = o.choice('fallback', ['float', 'int16'] as const);
  const sensitivity = o.choice<SensitivityName>('sensitivity', ['cosine', 'mse', 'sqnr']);
  const ranking = o.choice<RankingName>('ranking', ['model-output', 'layer-output']);
  const repairs = repairList(o.string('repairs'));
  const refine = o.flag('refine') || undefined;
  const force = o.flag('force') || undefined;
  const maxEvaluations = o.number('max-evaluations', (n) => Number.isInteger(n) && n >= 2, 'an integer >= 2');
  const maxSeconds = o.number('max-seconds', (n) => n > 0, 'a number of seconds > 0');
  const eps = executionProviders(o);
  const { runtime, json, log } = await finishOptions(o, err, save);
  if (!save) log.log('warn', 'auto: no --save given: the result is reported here, but no model or report file is written');
  if (!evaluatorFile === !data) throw new UsageError('auto: give exactly one of --evaluator <module> or --data <inputs.npy|.npz>');
  if (evaluatorFile && (fidelity || calibrationData || Object.keys(feeding).length)) {
    throw new UsageError('auto: --fidelity, --calibration-data, --batch-size, --batch-axis and --const apply to --data; an --evaluator module brings its own data');
  }

  const model = await loadModel(modelPath);
  const limit = maxDrop === undefined && maxRelativeDrop === undefined ? {} : { maxDrop, maxRelativeDrop };
  let evaluator: AutoCalibrationEvaluator;
  if (evaluatorFile) {
    evaluator = await loadEvaluator(evaluatorFile, limit);
  } else {
    const inputs = declaredInputs(model);
    const feeds = await readFeeds(data!, inputs, feeding);
    const calib = calibrationData ? await readFeeds(calibrationData, inputs, feeding) : undefined;
    evaluator = new FidelityEvaluator(feeds, { ...limit, calibrationInputs: calib, batchNum: batchNum ?? 1, mode: fidelity });
  }
  let config = configFile ? await loadQuantConfig(configFile, model) : await createQuantConfig(model, { batchNum, skipSlowLayers, ...target });
  if (batchNum !== undefined) config = { ...config, batch_num: batchNum };
  if (weightRounding !== undefined) config = { ...config, weight_rounding: weightRounding };
  if (splitting !== undefined) config = { ...config, channel_splitting: splitting };
  const result = await accuracyBasedAutoCalibration(model, evaluator, {
    config,
    configFile,
    savePrefix: save,
    strategy,
    fallback,
    ...(mixed ? { weightBits: [4, 8] as const } : {}),
    sensitivity,
    ranking,
    repairs,
    refine,
    force,
    maxEvaluations,
    maxSeconds,
    executionProviders: eps,
    engine: runtime,
    onProgress: (e) => autoProgress(log, e),
  });
  await finishAuto(result, log, encodeModel(model).length, json, out);
  // Passed, but the models were withheld for failing parity: not the success the caller asked for.
  if (result.passed && save && !result.files.includes(`${save}_deploy_model.onnx`)) return 1;
  return result.passed ? 0 : 2;
}

/** The 'webgpu' target's weight bytes and bits, in one line. */
function describeWeights(w: { quantized: number; float: number }, layers: readonly LayerReport[]): string {
  const at = (b: number) => layers.filter((l) => l.quantized && l.weightBits === b).length;
  return `weights: ${formatBytes(w.quantized)} against ${formatBytes(w.float)} float32 (${((100 * w.quantized) / w.float).toFixed(1)}%); block-quantized layers at 4 bits: ${at(4)}, at 8 bits: ${at(8)}`;
}

/** Evaluations as lines; counted steps (calibration batches, ranked layers) as progress, from the event's fields. */
function autoProgress(log: Logger, e: AutoProgressEvent): void {
  const text = `${e.phase}: ${e.evaluation ? describeHistory(e.evaluation) : e.message}`;
  if (e.done !== undefined && e.total !== undefined && !e.evaluation) log.progress(e.phase, text, e.done, e.total);
  else log.log('info', text);
}

/** The end of an automatic calibration: the verdict logged, the log file written (and listed), the result printed. */
async function finishAuto(result: AutoCalibrationResult, log: Logger, floatBytes: number, json: boolean, out: Out, sensitivity?: SensitivityName): Promise<void> {
  printWarnings(result.warnings, log);
  log.log('debug', `${result.passed ? 'passed' : 'FAILED'}: ${result.message}`);
  const logFile = await log.flush();
  if (logFile) result.files.push(logFile);
  printAutoResult(result, floatBytes, json, out, sensitivity);
}

function printAutoResult(result: AutoCalibrationResult, floatBytes: number, json: boolean, out: Out, sensitivity?: SensitivityName): void {
  if (json) {
    out.write(JSON.stringify({ ...autoCalibrationReport(result), files: result.files }) + '\n');
    return;
  }
  out.write(`${result.passed ? 'passed' : 'FAILED'}: ${result.message}\n`);
  out.write(`metric: float ${result.originalMetric}, quantized ${result.quantizedMetric}; ${result.evaluations} evaluations\n`);
  if (result.ranking.length) {
    // Cosine scores crowd at 1 (0.99999 and 0.9999999 print alike): what sets layers apart is the distance from 1.
    const cosine = (sensitivity ?? 'cosine') === 'cosine';
    const top = result.ranking.slice(0, 5).map((r) => `${r.layer} (${cosine ? (1 - r.score).toExponential(1) : r.score.toPrecision(4)})`).join(', ');
    out.write(`most sensitive layers (${cosine ? '1 − similarity' : `${sensitivity} score`}): ${top}\n`);
  }
  if (result.parity) out.write(`parity: ${describeParity(result.parity)}\n`);
  if (result.weightBytes) out.write(`${describeWeights(result.weightBytes, result.layers)}\n`);
  if (result.deployModel) out.write(`model ${formatBytes(floatBytes)} → deploy ${formatBytes(result.deployModel.length)} (${((100 * result.deployModel.length) / floatBytes).toFixed(1)}%)\n`);
  describeLayers(result.layers, out);
  if (result.files.length) out.write(`wrote ${result.files.join(', ')}\n`);
}

/**
 * A folder the package ships (`rel` beside dist/ when installed, the repository root in development),
 * found by a file it holds; undefined when neither place has it.
 */
function packageDir(rel: string, probe: string): URL | undefined {
  return [`../${rel}/`, `../../${rel}/`].map((r) => new URL(r, import.meta.url)).find((dir) => existsSync(fileURLToPath(new URL(probe, dir))));
}

/** Where the package keeps the demo's model and digits. */
function demoDir(): URL {
  const dir = packageDir('demo', 'digits.npz');
  if (!dir) throw new UsageError('demo: the demo files (demo/mnist_cnn.onnx, demo/digits.npz) are not installed with this package');
  return dir;
}

/**
 * The whole accuracy-driven flow on data shipped with the package: the MNIST CNN fixture, 64
 * calibration digits and 300 held-out labelled digits, top-1 accuracy within 0.002 of float (tight
 * enough that the search ranks the layers and repairs one).
 */
async function demoCommand(o: Options, out: Out, err: Out): Promise<number> {
  const save = o.string('save') ?? 'autoquant-demo/mnist';
  const { runtime, json, log } = await finishOptions(o, err, save);
  const dir = demoDir();
  const model = await loadModel(new URL('mnist_cnn.onnx', dir));
  const arrays = await parseNpz(await readFileBytes(new URL('digits.npz', dir)), 'demo/digits.npz');
  const images = (name: string, from: number, n: number) => {
    const a = arrays.get(name)!;
    return new Tensor('float32', Float32Array.from((a.data as Uint8Array).subarray(from * 784, (from + n) * 784), (v) => v / 255), [n, 1, 28, 28]);
  };
  const labels = Array.from(arrays.get('labels')!.data as Int32Array);
  const data = [0, 1, 2].map((b) => ({ feeds: { input: images('images', b * 100, 100) }, labels: labels.slice(b * 100, (b + 1) * 100) }));
  const calibrationInputs = [0, 1].map((b) => ({ input: images('calibration', b * 32, 32) }));
  const evaluator = new ClassificationEvaluator(data, { calibrationInputs, batchNum: 2, maxDrop: 0.002 });
  log.log('info', 'demo: the MNIST CNN, 64 calibration digits, 300 held-out digits; top-1 accuracy may drop by at most 0.002, with all six layers in play (skip_slow_layers off) and no activation equalization, so that the search runs (otherwise every layer passes as int8 at once)');
  const result = await accuracyBasedAutoCalibration(model, evaluator, {
    config: await createQuantConfig(model, { batchNum: 2, activationEqualization: false, skipSlowLayers: false }),
    savePrefix: save,
    engine: runtime,
    onProgress: (e) => autoProgress(log, e),
  });
  await finishAuto(result, log, encodeModel(model).length, json, out);
  const report = result.files.find((f) => f.endsWith('_report.html'));
  if (report && !json) out.write(`open the report: ${report}\n`);
  return result.passed ? 0 : 2;
}

/** Where the package keeps the built app: dist/app beside dist/cli.js, or the checkout's dist/app from src/cli. */
function appDir(): string {
  return fileURLToPath(packageDir('dist/app', 'index.html') ?? new URL('./app/', import.meta.url));
}

/** Serves the app until the process is asked to stop (Ctrl+C or SIGTERM); the URL is the only line on stdout. */
async function appCommand(o: Options, out: Out, err: Out): Promise<number> {
  const port = o.number('port', (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number from 0 to 65535') ?? 8780;
  const host = o.string('host') ?? '127.0.0.1';
  o.finish();
  const server = await startAppServer({ port, host, appDir: appDir() });
  out.write(`${server.url}\n`);
  err.write(`autoquant app: serving the app at ${server.url} (nothing is uploaded: models and data stay in the browser); Ctrl+C stops it\n`);
  await new Promise<void>((stop) => {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}

export async function main(argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  try {
    const parsed = parseArgs(argv, FLAGS, VALUED);
    const [command, model, ...extra] = parsed.positionals;
    if (parsed.options.has('version')) {
      out.write(VERSION + '\n');
      return 0;
    }
    if (!command || parsed.options.has('help')) {
      out.write(HELP + '\n');
      return 0;
    }
    if (command === 'app') {
      if (model !== undefined) throw new UsageError(`app: unexpected argument(s) ${[model, ...extra].join(' ')}`);
      return await appCommand(new Options(parsed, command), out, err);
    }
    if (command === 'demo') {
      if (model !== undefined) throw new UsageError(`demo: unexpected argument(s) ${[model, ...extra].join(' ')}`);
      return await demoCommand(new Options(parsed, command), out, err);
    }
    if (!['config', 'quantize', 'auto'].includes(command)) throw new UsageError(`unknown command '${command}' (commands: config, quantize, auto, demo, app; see 'autoquant --help')`);
    if (!model) throw new UsageError(`${command}: the model path is missing (autoquant ${command} <model.onnx> ...)`);
    if (extra.length) throw new UsageError(`${command}: unexpected argument(s) ${extra.join(' ')}`);
    const o = new Options(parsed, command);
    if (command === 'config') return await configCommand(model, o, out);
    if (command === 'quantize') return await quantizeCommand(model, o, out, err);
    return await autoCommand(model, o, out, err);
  } catch (e) {
    // Under --json a script reads stdout: the error goes there too, as JSON.
    if (argv.includes('--json')) out.write(JSON.stringify({ error: { code: e instanceof AutoquantError ? e.code : 'INTERNAL', message: e instanceof AutoquantError ? e.message : describeError(e) } }) + '\n');
    // Never a stack: our errors say what to fix; anything else is a bug, shown in one line, with the
    // stack only when asked for (AUTOQUANT_DEBUG=1).
    if (e instanceof AutoquantError) err.write(`autoquant: ${e.message}\n`);
    else {
      const debug = typeof process !== 'undefined' && process.env?.AUTOQUANT_DEBUG;
      err.write(`autoquant: internal error: ${describeError(e)}${debug ? `\n${(e as Error)?.stack ?? ''}` : ' (set AUTOQUANT_DEBUG=1 for details; please report it)'}\n`);
    }
    return 1;
  }
}
