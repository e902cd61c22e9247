/**
 * Post-training quantization: createQuantConfig, quantizeModel and saveModel (AMCT's
 * create_quant_config / quantize_model / save_model), orchestrating the pieces of src/quant.
 */
import { CalibrationError, OnnxFormatError, OptionsError, QuantConfigError } from '../errors.js';
import { describeValue, quoteName } from '../text.js';
import { checkOptionKeys, optionKeys } from '../options.js';
import { getKernels } from '../kernels/wasm.js';
import type { Kernels } from '../kernels/types.js';
import { assignStableNames, opsetVersion } from '../onnx/graph.js';
import { decodeModel, encodeModel, loadModel } from '../onnx/model.js';
import { upgradeOpset } from '../onnx/opset.js';
import { declaredInputs } from '../onnx/inputs.js';
import { readTensorAsFloat32, tensorDims } from '../onnx/tensor.js';
import { emitProgress, RunLog } from '../runtime/log.js';
import { consumerMap, getConstant } from '../onnx/graph.js';
import type { ModelProto } from '../onnx/types.js';
import { checkWritable, readFileBytes, writeFileAtomic } from '../runtime/io.js';
import { createSession, Tensor, type CreateSessionOptions, type InferenceSession } from '../runtime/ort.js';
import {
  calibrateActivations,
  DEFAULT_CALIBRATION_MEMORY,
  replayBatches,
  toBatchSource,
  type BatchSource,
  type Feeds,
  type KeptBatch,
  type Sample,
  type CalibrationSource,
  type CalibrationStats,
  type ObserverMap,
} from './calibrate.js';
import { compareLayers } from './layerwise.js';
import { buildQuantConfig, GLOBAL_KEYS, validateQuantConfig, type ActivationQuantParams, type CreateQuantConfigOptions, type LayerQuantConfig, type NameHint, type QuantConfig } from './config.js';
import { equalizeChannels, type EqualizedPair } from './equalize.js';
import { applyFactors, channelRanges, chooseFactors, findEqualizationPaths, weightProfile, type ActivationEqualized, type ChannelSite } from './activation-equalize.js';
import { applySplit, chooseSplit, findSplitSites, type ChannelSplit, type SplitChoice } from './channel-split.js';
import { GraphEditor } from '../onnx/editor.js';
import { foldAffines, foldBatchNorms, type FoldedAffine, type FoldedPair } from './fusion.js';
import { createObserver } from './observers/index.js';
import { emptyRecord, validateRecord, type QuantRecord } from './record.js';
import { replaceAttributeClips } from './portable.js';
import { fuseHardSwish, HARD_SWISH_OPSET } from './hardswish.js';
import { outputTensor, placeOutputs, type OutputPlacement, type OutputQuantization } from './outputs.js';
import type { ActivationResult } from './observers/index.js';
import { requiredDeployOpset, writeDeploy, writeFakeQuant, type LayerQuantization } from './rewrite.js';
import { scanLayers, type LayerInfo, type SkippedNode } from './registry.js';
import { layersFeedingLog, LOG_INPUT_NOTE } from './log-inputs.js';
import { fidelityWarnings, measureFidelity, type OutputFidelity } from './fidelity.js';
import { coverageWarnings, scanCoverage, whereIsName, type CoverageScan, type FloatOnlyNode, type QuantWarning } from './coverage.js';
import { biasScaleFloor, dequantizeWeight, quantizeBias, quantizeWeight } from './weights.js';
import { applyRounding, decodeRounding, encodeRounding } from './rounding.js';
import { chooseRoundings } from './rounding-search.js';

export type ModelSource = ModelProto | Uint8Array | ArrayBuffer | string | URL;

function isModelProto(m: ModelSource): m is ModelProto {
  return typeof m === 'object' && m !== null && !(m instanceof Uint8Array) && !(m instanceof ArrayBuffer) && !(m instanceof URL);
}

/** A private deep copy: the caller's model is never modified. */
async function privateCopy(model: ModelSource): Promise<ModelProto> {
  if (isModelProto(model)) return decodeModel(encodeModel(model));
  // loadModel copies bytes before decoding, so the caller's buffer is never aliased.
  return loadModel(model);
}

const clone = (m: ModelProto) => decodeModel(encodeModel(m));

/** Opset of per-axis DequantizeLinear, which per-channel weights need in the deploy model. */
const PER_CHANNEL_OPSET = 13;

/** Opset of 16-bit QuantizeLinear/DequantizeLinear, which 16-bit activations need in the deploy model. */
const INT16_OPSET = 21;

/** Why the model cannot have per-channel weights (its opset cannot be raised to 13), or undefined. */
function perChannelBlocker(model: ModelProto): string | undefined {
  return opsetBlocker(model, PER_CHANNEL_OPSET);
}

/** Why the model's opset cannot be raised to `opset`, or undefined when it can. */
function opsetBlocker(model: ModelProto, opset: number): string | undefined {
  if ((opsetVersion(model) ?? 1) >= opset) return undefined;
  try {
    upgradeOpset(clone(model), opset);
    return undefined;
  } catch (e) {
    // One line: "cannot raise the model from opset 9 to 13: <node>: <why>; <node>: <why>".
    return (e as Error).message.replace(/:\n\s*- /, ': ').replace(/\n\s*- /g, '; ');
  }
}

/**
 * Node names a config cannot key a layer by: its own global keys, and `__proto__`, which would set
 * the object's prototype. Such nodes are listed as `{name}_node` (see nodeNames).
 */
const RESERVED_NAMES: ReadonlySet<string> = new Set([...GLOBAL_KEYS, '__proto__']);

/** The model as the quantizer sees it: stable node names, optionally with BN folded. */
interface Prepared {
  model: ModelProto;
  /** Layers before fusion (what a config must list). */
  layers: LayerInfo[];
  skipped: SkippedNode[];
  /** Heavy nodes no config can quantize (control-flow bodies, types without a rule), and every node's place. */
  coverage: CoverageScan;
  /** What to tell a user who names a layer that is not in the config. */
  hint: NameHint;
}

/** The oldest opset ONNX Runtime runs; older models are raised to it before anything else. */
const RUNNABLE_OPSET = 7;

function prepare(model: ModelProto): Prepared {
  if (!model.graph) throw new OnnxFormatError('the model has no graph');
  if ((opsetVersion(model) ?? 1) < RUNNABLE_OPSET) upgradeOpset(model, RUNNABLE_OPSET);
  assignStableNames(model.graph, RESERVED_NAMES);
  const { layers, skipped } = scanLayers(model.graph);
  const coverage = scanCoverage(model.graph);
  const names = layers.map((l) => l.name);
  return { model, layers, skipped, coverage, hint: (name) => whereIsName(name, coverage, names) };
}

/** Options objects from JavaScript callers: an object or nothing (config.ts names unknown keys as config problems). */
function checkOptions(options: unknown, what: string): void {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new OptionsError(`${what} options must be an object, got ${describeValue(options)}`);
  }
}

const QUANTIZE_OPTION_KEYS = optionKeys<QuantizeModelOptions>({
  executionProviders: true, graphOptimizationLevel: true, engine: true, signal: true, record: true, onProgress: true, kernels: true, layerErrors: true,
});

/** What calibrate() needs beyond the caller's options: quantizeModel keeps batches to measure its outputs. */
type CalibrateOptions = QuantizeModelOptions & { keepOutputs?: boolean };

/** Lists every quantizable layer in AMCT's config form; with `configFile` also writes it (Node/Deno). */

export async function createQuantConfig(model: ModelSource, options: CreateQuantConfigOptions = {}): Promise<QuantConfig> {
  checkOptions(options, 'createQuantConfig');
  const { model: copy, layers, hint } = prepare(await privateCopy(model));
  const logFed = layersFeedingLog(copy.graph!, layers);
  const wide = logFed.size && opsetBlocker(copy, INT16_OPSET) !== undefined ? 'float' : 16;
  const precise = new Map([...logFed].map((name) => [name, wide] as const));
  const config = buildQuantConfig(layers, options, { perChannelReachable: opsetBlocker(copy, PER_CHANNEL_OPSET) === undefined, precise, hint });
  if (options.configFile) await writeFileAtomic(options.configFile, JSON.stringify(config, null, 2) + '\n');
  return config;
}

/** A JSON file a user may have edited (config or record); malformed JSON is a QuantConfigError naming the file. */
export async function readJsonFile(file: string | URL): Promise<unknown> {
  const text = new TextDecoder().decode(await readFileBytes(file));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new QuantConfigError([`not valid JSON: ${(e as Error).message}`], String(file));
  }
}

/** Reads and validates a config a user may have edited; all problems are reported at once. */
export async function loadQuantConfig(source: string | URL | QuantConfig, model: ModelSource): Promise<QuantConfig> {
  const fromFile = typeof source === 'string' || source instanceof URL;
  const config = fromFile ? await readJsonFile(source) : source;
  const where = fromFile ? String(source) : 'config object';
  const { layers, hint } = prepare(await privateCopy(model));
  validateQuantConfig(config, layers, where, hint);
  return config;
}

export interface QuantizeModelOptions extends CreateSessionOptions {
  /** Cancels calibration, as in `fetch` (checked before every batch; the callback is abandoned): rejects with an AbortedError. */
  signal?: AbortSignal;
  /** Factors from an earlier run; layers found there are not calibrated again. */
  record?: QuantRecord | string | URL;
  /**
   * Called after each calibration batch. `message` never repeats the phase: show it as
   * `${phase}: ${message}` ("calibration: batch 1/2", "calibration: activation equalization, batch 1/2").
   */
  onProgress?: (event: QuantizeProgressEvent) => void;
  /** Kernels to use (defaults to the SIMD Wasm kernels). */
  kernels?: Kernels;
  /** Also measure each quantized layer's output error (`QuantizeResult.layerErrors`; one more pass over the batches). */
  layerErrors?: boolean;
}

export interface QuantizeProgressEvent {
  phase: 'calibration';
  /** Which pass over the batches: the calibration itself, or activation equalization's measuring pass before it. */
  step: 'calibration' | 'activation equalization';
  message: string;
  pass: number;
  batch: number;
  batchNum: number;
}

export interface LayerReport {
  name: string;
  opType: string;
  quantized: boolean;
  /** Why a layer or node was left in float. */
  reason?: string;
  /** For a quantized layer with a weight: one scale per output channel, or one for the tensor. */
  weights?: 'per-channel' | 'per-tensor';
  /** Why a quantized layer's weight is per tensor. */
  weightsReason?: string;
  /** What the automatic calibration changed to keep the layer quantized rather than in float (see `repairs`). */
  repair?: string;
  /** Whether the quantized layer's bias was corrected (`bias_correction`; the shifts are in the record). */
  biasCorrected?: boolean;
  /** Why a quantized layer is set up as it is, where the default chose for it (e.g. 16-bit activations before a Log). */
  note?: string;
}

/** A layer's output error, fake-quant against float, the layer alone on float inputs (see `layerErrors`). */
export interface LayerError {
  layer: string;
  cosine: number;
  /** Signal-to-quantization-noise ratio in dB (Infinity when exact). */
  sqnr: number;
}

export interface QuantizeResult {
  record: QuantRecord;
  /** With `layerErrors: true`: each quantized layer's output error (one more pass over the batches). */
  layerErrors?: LayerError[];
  config: QuantConfig;
  fakeQuantModel: Uint8Array;
  deployModel: Uint8Array;
  layers: LayerReport[];
  /**
   * What the user should know: heavy nodes left float, counted by reason (LEFT_FLOAT), no layer
   * quantized at all (NOTHING_QUANTIZED), a model output far from float (LOW_FIDELITY).
   */
  warnings: QuantWarning[];
  /**
   * Per float32 model output: cosine and SQNR (dB) of the fake-quant model to float on the first
   * calibration batches (up to 8, within 64 MiB). Empty when no layer is quantized or no data ran
   * (a record that covered every layer).
   */
  outputFidelity: OutputFidelity[];
  fusedBatchNorms: FoldedPair[];
  /** Constant Mul/Add nodes folded into the Conv before them (with `do_fusion`). */
  fusedAffines: FoldedAffine[];
  /**
   * Hard-swish activations (x · relu6(x + 3) / 6 as four ops, or x · HardSigmoid(x)) written as one
   * HardSwish op (with `do_fusion`; the models are then at opset 14 at least), named by output tensor.
   */
  fusedHardSwish: string[];
  /** Layer pairs balanced by cross-layer equalization (`cross_layer_equalization`). */
  equalized: EqualizedPair[];
  /** Depthwise layers whose input channels activation equalization rescaled (`activation_equalization`). */
  activationEqualized: ActivationEqualized[];
  /** Dense layers whose input channels were split into copies (`channel_splitting`). */
  channelSplits: ChannelSplit[];
  /** What adaptive rounding did (`weight_rounding: 'adaptive'`), when it ran. */
  adaptiveRounding?: RoundingSummary;
  calibration: CalibrationStats | undefined;
  /**
   * The model's own nodes written differently in the fake-quant model so that onnxruntime-web's
   * WebGPU backend runs them (attribute-form Clip at opsets 8-10 becomes Max and Min; exact).
   */
  gpuRewrites: string[];
}

/** A model ready to be quantized: private copy, stable names, BN folded per the config. */
export interface RoundingSummary {
  /** Layers whose adaptive rounding was kept, in graph order. */
  layers: string[];
  /** Layers it was tried on (2-D Conv, Gemm and MatMul with at most 1024 inputs per output). */
  considered: number;
  /** 1 − cosine of the model's first output to float on the first calibration batches, with nearest rounding and after. */
  errorBefore: number;
  errorAfter: number;
}

export interface QuantizationSession {
  /** The working model (fused); never the caller's. */
  work: ModelProto;
  /** The model before any rewrite (BN folding included), encoded: what "the float model" means. */
  original: Uint8Array;
  config: QuantConfig;
  /** Layers as the config lists them (before fusion) and after fusion (weights renamed). */
  declared: LayerInfo[];
  layers: LayerInfo[];
  skipped: SkippedNode[];
  /** Heavy nodes no config can quantize (see coverage.ts). */
  floatOnly: FloatOnlyNode[];
  fused: FoldedPair[];
  affines: FoldedAffine[];
  /** Tensors now computed by one HardSwish op. */
  hardSwish: string[];
  /** Layer pairs whose channels were rescaled (cross-layer equalization). */
  equalized: EqualizedPair[];
  /**
   * Depthwise layers whose input channels were rescaled (activation equalization); set by the first
   * calibration, which variants of the session share (the working model is the same object).
   */
  activationEqualized?: ActivationEqualized[];
  /** Dense layers whose input channels were split (channel splitting); set with activationEqualized. */
  channelSplits?: ChannelSplit[];
  kernels: Kernels;
  /** The first calibration batch, kept to choose which layer outputs to quantize. */
  samples?: Sample[];
  /** Estimated relative error (Σ(fq(x) − x)² / Σx²) of each layer's calibrated output factors, where its observer knows it. */
  outputNoise?: Map<string, number>;
  /** With `keepOutputs`: the first calibration batches and the float outputs on them (see KeptBatch). */
  kept?: KeptBatch[];
}

function layerConfig(config: QuantConfig, name: string): LayerQuantConfig | undefined {
  const entry = config[name];
  return typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? (entry as LayerQuantConfig) : undefined;
}

/** Validates the config against the model and prepares the working copy. */
async function prepareQuantization(
  model: ModelSource,
  config: QuantConfig,
  kernels?: Kernels,
  configSource = 'quantizeModel config',
): Promise<QuantizationSession> {
  const { model: work, layers: declared, skipped, coverage, hint } = prepare(await privateCopy(model));
  validateQuantConfig(config, declared, configSource, hint);
  const cfg = structuredClone(config);
  const original = encodeModel(work);
  const skip = new Set(cfg.skip_fusion_layers ?? []);
  const fused = cfg.do_fusion !== false ? foldBatchNorms(work.graph!, skip) : [];
  const affines = cfg.do_fusion !== false ? foldAffines(work.graph!, skip) : [];
  const hardSwish = cfg.do_fusion !== false ? fuseHardSwishes(work) : [];
  // After the fusions, so that the weights balanced are the ones quantized.
  const equalized = cfg.cross_layer_equalization !== false ? equalizeChannels(work.graph!) : [];
  const { layers } = scanLayers(work.graph!);
  return { work, original, config: cfg, declared, layers, skipped, floatOnly: coverage.floatOnly, fused, affines, hardSwish, equalized, kernels: kernels ?? (await getKernels()) };
}

/**
 * Fails now, with the list of nodes in the way, when the deploy model of `layers` would need an
 * opset the model cannot be raised to: better before calibration than after a long search.
 */
function checkDeployable(q: QuantizationSession, layers: readonly LayerInfo[], activationBits?: 8 | 16): void {
  let need = 10;
  for (const l of layers) {
    const c = layerConfig(q.config, l.name)!;
    if ((activationBits ?? c.activation_quant_params.num_bits) === 16) need = Math.max(need, 21);
    if (c.weight_quant_params?.channel_wise && l.weight && l.weight.channelAxis >= 0) need = Math.max(need, 13);
  }
  if (layers.length > 0 && (opsetVersion(q.work) ?? 1) < need) upgradeOpset(decodeModel(q.original), need);
}

/** Layers whose config says quant_enable. */
function enabledLayers(q: QuantizationSession): LayerInfo[] {
  return q.layers.filter((l) => layerConfig(q.config, l.name)?.quant_enable === true);
}

/**
 * Calibrates the activations of `layers` that `record` lacks (at the configured bit width) and
 * adds their factors to `record`.
 */
async function calibrateLayers(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: CalibrateOptions = {},
): Promise<CalibrationStats | undefined> {
  const observers: ObserverMap = new Map();
  const observe = (tensor: string, key: string, p: ActivationQuantParams) => {
    const list = observers.get(tensor) ?? new Map();
    list.set(key, createObserver(q.kernels, p, q.config.activation_offset));
    observers.set(tensor, list);
  };
  for (const l of layers) {
    const p = layerConfig(q.config, l.name)!.activation_quant_params;
    const known = record.layers[l.name];
    if (!(known && known.num_bits_d === p.num_bits)) observe(l.activation, l.name, p);
  }
  // Output factors, where no quantized reader of the output provides them (see outputs.ts).
  if (q.config.quantize_outputs !== false) {
    const graph = q.work.graph!;
    const readers = consumerMap(graph);
    // Graph outputs stay float (see outputs.ts), so they need no factors.
    const read = new Set([...layers.map((l) => l.activation), ...(graph.output ?? []).map((o) => o.name ?? '')]);
    for (const l of layers) {
      const p = layerConfig(q.config, l.name)!.activation_quant_params;
      const tensor = outputTensor(graph, l, readers);
      const known = record.layers[l.name];
      // A record that keeps the output float (output_quant false) needs no factors for it.
      if (p.num_bits !== 8 || read.has(tensor) || known?.scale_o !== undefined || known?.output_quant === false) continue;
      observe(tensor, OUTPUT_KEY + l.name, p);
    }
  }
  if (observers.size === 0) return undefined;
  const source = await batches();
  // quantizeModel saves no log file; its messages are printed when setLogLevel asks.
  const printLog = new RunLog();
  const { results, stats, samples, kept } = await calibrateActivations(q.work, observers, source.callback ?? source.feeds!, {
    batchNum: q.config.batch_num,
    executionProviders: options.executionProviders,
    graphOptimizationLevel: options.graphOptimizationLevel,
    engine: options.engine,
    signal: options.signal,
    kernels: q.kernels,
    keepOutputs: options.keepOutputs,
    onBatch: (b) => emitProgress(printLog, options.onProgress, { phase: 'calibration', step: 'calibration', message: `batch ${b.batch}/${b.batchNum}`, ...b }, `calibration batch ${b.batch}`, `calibration: batch ${b.batch}/${b.batchNum}`),
  });
  if (!q.samples?.length) q.samples = samples;
  if (kept.length) q.kept = kept;
  const outputResults: [string, ActivationResult][] = [];
  for (const [key, r] of results) {
    if (key.startsWith(OUTPUT_KEY)) {
      outputResults.push([key.slice(OUTPUT_KEY.length), r]);
      continue;
    }
    const bits = layerConfig(q.config, key)!.activation_quant_params.num_bits;
    record.layers[key] = { ...record.layers[key], scale_d: r.scale, offset_d: r.zeroPoint, num_bits_d: bits, clip_min_d: r.clipMin, clip_max_d: r.clipMax };
  }
  for (const [name, r] of outputResults) {
    Object.assign(record.layers[name]!, { scale_o: r.scale, offset_o: r.zeroPoint, clip_min_o: r.clipMin, clip_max_o: r.clipMax });
    if (r.noise !== undefined) (q.outputNoise ??= new Map()).set(name, r.noise);
  }
  return stats;
}

/**
 * Activation equalization (see activation-equalize.ts) and channel splitting (see channel-split.ts),
 * before the layers are calibrated: factors and splits from the record where it has them
 * (`equalize_d`, `split_d`), none for layers the record calibrated without them (its factors would
 * no longer fit), and from one pass over the batches for the rest. The working model changes in
 * place; the layers' node indices, activations and weight names are refreshed.
 */
async function equalizeActivations(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: QuantizeModelOptions,
): Promise<{ done: ActivationEqualized[]; splits: ChannelSplit[]; factors: Map<string, number[]>; choices: Map<string, SplitChoice>; passes: number }> {
  const graph = q.work.graph!;
  const recorded = layers.filter((l) => record.layers[l.name]?.equalize_d !== undefined);
  const recordedSplits = layers.filter((l) => record.layers[l.name]?.split_d !== undefined);
  const ratio = q.config.channel_splitting ?? 0;
  const none = { done: [], splits: [], factors: new Map(), choices: new Map(), passes: 0 };
  if (q.config.activation_equalization === false && ratio === 0 && recorded.length === 0 && recordedSplits.length === 0) return none;
  const perChannel = (name: string) => {
    const c = layerConfig(q.config, name);
    return c?.quant_enable !== true || c.weight_quant_params?.channel_wise === true;
  };
  const paths = findEqualizationPaths(graph, layers, perChannel);
  const byLayer = new Map(paths.map((p) => [p.layer.name, p]));
  const sites = findSplitSites(graph, layers, opsetVersion(q.work) ?? 1);
  const siteOf = new Map(sites.map((s) => [s.layer.name, s]));
  const misfits = recorded.flatMap((l) => {
    const path = byLayer.get(l.name);
    if (!path) return [`layer ${quoteName(l.name)} has equalize_d, but its input cannot be equalized exactly here (not a depthwise Conv behind a constant Mul, Div, BatchNormalization or a Conv with per-channel weights)`];
    const n = record.layers[l.name]!.equalize_d!.length;
    return n === path.channels ? [] : [`layer ${quoteName(l.name)}.equalize_d has ${n} factors; its input has ${path.channels} channels`];
  });
  for (const l of recordedSplits) {
    const site = siteOf.get(l.name);
    const n = record.layers[l.name]!.split_d!.length;
    if (!site) misfits.push(`layer ${quoteName(l.name)} has split_d, but its input channels cannot be split here (not a one-group Conv or ConvTranspose, or a Gemm or MatMul with a constant 2-D weight)`);
    else if (n !== site.channels) misfits.push(`layer ${quoteName(l.name)}.split_d has ${n} copy counts; its input has ${site.channels} channels`);
  }
  if (misfits.length) throw new QuantConfigError(misfits, 'record');
  const factors = new Map<string, number[]>();
  for (const l of recorded) factors.set(l.name, record.layers[l.name]!.equalize_d!);
  const choices = new Map<string, SplitChoice>();
  for (const l of recordedSplits) choices.set(l.name, { copies: record.layers[l.name]!.split_d!, step: record.layers[l.name]!.split_dither_d ?? 0 });
  const todo = q.config.activation_equalization === false ? [] : paths.filter((p) => record.layers[p.layer.name] === undefined);
  const todoSplits = sites.filter((s) => record.layers[s.layer.name] === undefined && Math.floor(ratio * s.channels) >= 1);
  if (todo.length || todoSplits.length) {
    const source = await batches();
    const printLog = new RunLog();
    const ranges = await channelRanges<ChannelSite>([...todo, ...todoSplits], q.kernels, async (fetch, onBatch) => {
      await replayBatches(q.work, fetch, source, { ...options, batchNum: q.config.batch_num }, (outputs, batch) => {
        onBatch(outputs);
        const message = `activation equalization, batch ${batch + 1}/${q.config.batch_num}`;
        emitProgress(printLog, options.onProgress, { phase: 'calibration', step: 'activation equalization', message, pass: 1, batch: batch + 1, batchNum: q.config.batch_num }, `equalization batch ${batch + 1}`, `calibration: ${message}`);
      });
    });
    for (const p of todo) {
      const r = ranges.get(p)!;
      const c = layerConfig(q.config, p.layer.name)!;
      const profile = weightProfile(graph, p, perChannel(p.layer.name));
      const a = c.activation_quant_params;
      const f = chooseFactors(r, profile, { symmetric: !(a.asymmetric ?? q.config.activation_offset), levels: 2 ** a.num_bits - 1 });
      if (f) factors.set(p.layer.name, Array.from(f));
    }
    for (const s of todoSplits) {
      const r = ranges.get(s);
      if (!r) continue;
      const a = layerConfig(q.config, s.layer.name)!.activation_quant_params;
      const choice = chooseSplit(r.likelyLo ?? r.lo, r.likelyHi ?? r.hi, ratio, 2 ** a.num_bits - 1);
      if (choice) choices.set(s.layer.name, choice);
    }
  }
  const passes = todo.length || todoSplits.length ? 1 : 0;
  if (factors.size === 0 && choices.size === 0) return { ...none, passes };
  const editor = new GraphEditor(graph);
  // Factors first: a split layer may be the Conv that absorbs a depthwise layer's factors, and the
  // split reads the weight as it then is.
  const done = paths.filter((p) => factors.has(p.layer.name)).map((p) => applyFactors(graph, p, factors.get(p.layer.name)!, editor));
  const splits = sites.filter((s) => choices.has(s.layer.name)).map((s) => applySplit(graph, s, choices.get(s.layer.name)!, editor));
  editor.commit();
  // Constants the edits orphaned are gone, so node indices moved: refresh every layer in place.
  const fresh = new Map(scanLayers(graph).layers.map((l) => [l.name, l]));
  for (const l of q.layers) Object.assign(l, fresh.get(l.name));
  return { done, splits, factors, choices, passes };
}

/** Observer keys of output factors; NUL cannot start a layer name read from a config file's keys in practice. */
const OUTPUT_KEY = '\0output:';

/**
 * Empirical bias correction (as NNCF's fast bias correction): quantizing a layer's input and weights
 * shifts the mean of each output channel. Each layer with a constant bias runs alone, in float and
 * fake-quantized, on the float input activations of the calibration batches (see layerwise.ts); the
 * mean difference per output channel is recorded as `bias_shift` and subtracted from the bias the
 * quantized layer uses (the float model's bias is left as it is). Layers whose record already has a
 * shift keep it. One more pass over the batches; memory as for the ranking.
 *
 * Off unless `bias_correction` is true. Measured (deploy cosine to float, AMCT's form, bench/deploy.mjs
 * inputs): PP-OCR classifier 0.9927 → 0.9974, recognizer 0.9571 → 0.9689, detector 0.9917 → 0.9899,
 * MNIST CNN 0.99998 → 0.99994; on other held-out lines the classifier went 0.99717 → 0.99633. The
 * mean error includes what clipping outliers adds, which does not carry over between data sets the
 * way a weight error does, and a check on the calibration batches cannot tell (it favours the
 * correction on the data the shifts came from). Correcting only the weights' part was no steadier
 * (classifier +0.001, detector +0.001, recognizer −0.007).
 */
async function correctBiases(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: CreateSessionOptions & { activationBytes?: ReadonlyMap<string, number>; signal?: AbortSignal },
): Promise<number> {
  const todo = new Set(layers.filter((l) => l.bias && record.layers[l.name] && record.layers[l.name]!.bias_shift === undefined).map((l) => l.name));
  const plan = planLayers(q, layers.filter((l) => todo.has(l.name)), record).filter((p) => p.bias);
  if (plan.length === 0) return 0;
  const sums = new Map<string, { sum: Float64Array; n: number }>();
  await compareLayers(q.work, plan, await batches(), { ...options, batchNum: q.config.batch_num, memoryBudgetBytes: DEFAULT_CALIBRATION_MEMORY }, (p, float, fake, dims) => {
    // Output channels: axis 1 of a Conv's output, the last axis of a Gemm's or MatMul's.
    const axis = p.layer.opType === 'Conv' || p.layer.opType === 'ConvTranspose' ? 1 : dims.length - 1;
    const channels = dims[axis]!;
    const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const entry = sums.get(p.layer.name) ?? { sum: new Float64Array(channels), n: 0 };
    for (let base = 0; base < float.length; base += channels * inner) {
      for (let c = 0; c < channels; c++) {
        let d = 0;
        for (let i = base + c * inner, end = i + inner; i < end; i++) d += fake[i]! - float[i]!;
        entry.sum[c] = entry.sum[c]! + d;
      }
    }
    entry.n += float.length / channels;
    sums.set(p.layer.name, entry);
  });
  for (const [name, { sum, n }] of sums) record.layers[name]!.bias_shift = Array.from(sum, (v) => v / n);
  return sums.size;
}

/**
 * Adaptive rounding (rounding.ts, rounding-search.ts) of the enabled layers whose record has no
 * `round_w` yet; records the choice (a layer that keeps nearest rounding gets ""). Returns the
 * layers kept and the model-output error before and after, on the first calibration batches.
 */
async function roundWeights(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: RoundingPassOptions,
): Promise<RoundingSummary | undefined> {
  const todo = new Set(layers.filter((l) => l.weight && record.layers[l.name] && record.layers[l.name]!.round_w === undefined).map((l) => l.name));
  if (todo.size === 0) return undefined;
  return chooseInto(q, planLayers(q, layers, record), todo, record, await batches(), options);
}

type RoundingPassOptions = CreateSessionOptions & { activationBytes?: ReadonlyMap<string, number>; signal?: AbortSignal };

/**
 * Chooses the rounding of the `todo` layers of `plan` (see rounding-search.ts) and writes it into
 * `record`: `round_w` for each of them ("" where nearest stays, so a reused record needs no data)
 * and, with `bias_correction`, the `bias_shift` that goes with it.
 */
async function chooseInto(q: QuantizationSession, plan: readonly LayerQuantization[], todo: ReadonlySet<string>, record: QuantRecord, source: BatchSource, options: RoundingPassOptions): Promise<RoundingSummary> {
  const choice = await chooseRoundings(q.work, plan, todo, source, q.kernels, {
    ...options,
    batchNum: q.config.batch_num,
    biasCorrection: q.config.bias_correction === true,
  });
  for (const p of plan) {
    if (!todo.has(p.layer.name) || !p.weight) continue;
    const chosen = choice.kept.get(p.layer.name);
    const rec = record.layers[p.layer.name]!;
    rec.round_w = chosen ? encodeRounding(chosen.q, p.weight.q) : '';
    // The layer's whole mean error with this rounding: it replaces a shift the record may hold.
    if (chosen?.shift) rec.bias_shift = Array.from(chosen.shift);
  }
  // A layer whose chosen rounding is nearest (its bias shifted only) does not count as rounded.
  const layers = [...choice.kept.keys()].filter((n) => record.layers[n]!.round_w !== '');
  return { layers, considered: choice.considered.length, errorBefore: choice.errorBefore, errorAfter: choice.errorAfter };
}

/** The quantization of each layer from the record's activation factors and the layer's weights. */
function planLayers(q: QuantizationSession, layers: readonly LayerInfo[], record: QuantRecord): LayerQuantization[] {
  return layers.map((l) => {
    const rec = record.layers[l.name];
    if (!rec) throw new CalibrationError(`layer '${l.name}' has no calibration result`);
    const lq: LayerQuantization = { layer: l, activation: { scale: rec.scale_d, zeroPoint: rec.offset_d, bits: rec.num_bits_d } };
    // Output factors: calibrated for this layer. An output read by a quantized layer takes that
    // reader's factors where the plan has the reader (see outputs.ts); a plan without it (a layer
    // fallen back to float) must leave the output float, or the fallen-back layer's input would still
    // be rounded on its int8 grid.
    if (rec.output_quant === false) lq.keepOutputFloat = true;
    else if (rec.scale_o !== undefined && rec.offset_o !== undefined) lq.output = { scale: rec.scale_o, zeroPoint: rec.offset_o, bits: 8 };
    if (l.weight) {
      const w = readTensorAsFloat32(getConstant(q.work.graph!, l.weight.name)!);
      const axis = layerConfig(q.config, l.name)?.weight_quant_params?.channel_wise ? l.weight.channelAxis : -1;
      const channels = axis < 0 ? 1 : l.weight.dims[axis]!;
      const bias = l.bias ? getConstant(q.work.graph!, l.bias)! : undefined;
      const biasDims = bias ? tensorDims(bias) : [];
      // A per-channel bias scale needs the channels on the bias's last axis; otherwise the bias stays float.
      let values: Float32Array | undefined;
      if (bias && (channels === 1 || biasDims[biasDims.length - 1] === channels)) {
        values = readTensorAsFloat32(bias);
        const shift = rec.bias_shift;
        // The shift is per output channel, which a bias carries on its last axis.
        if (shift?.length) values = values.map((v, i) => v - shift[i % shift.length]!);
      }
      lq.weight = quantizeWeight(q.kernels, w, l.weight.dims, axis, values && biasScaleFloor(values, channels, rec.scale_d));
      if (rec.round_w) {
        const bits = decodeRounding(rec.round_w);
        const chosen = bits ? applyRounding(w, lq.weight.q, l.weight.dims, axis, lq.weight.scale, bits) : 'is not base64';
        if (typeof chosen === 'string') throw new QuantConfigError([`layer ${quoteName(l.name)}: round_w ${chosen}`], 'the record');
        lq.weight = { ...lq.weight, q: chosen, fq: dequantizeWeight(q.kernels, chosen, lq.weight.scale, axis, l.weight.dims) };
      }
      rec.scale_w = Array.from(lq.weight.scale);
      rec.offset_w = rec.scale_w.map(() => 0);
      if (values) lq.bias = quantizeBias(values, biasDims, rec.scale_d, lq.weight.scale);
    }
    return lq;
  });
}

/** Relative growth of the output error (1 − cosine to float) that quantizing layer outputs may cause. */
const OUTPUT_TOLERANCE = 0.1;
/** Absolute slack on that error, so models quantized almost losslessly are not held to zero. */
const OUTPUT_SLACK = 1e-5;

/**
 * Decides, on the first calibration batch (SAMPLE_BATCHES), which calibrated output quantizations
 * (see outputs.ts) to keep, and marks the others `output_quant: false` in the record. The error is
 * 1 − cosine between the float model's output (saved during calibration) and the fake-quant model's;
 * the kept set may raise it by at most OUTPUT_TOLERANCE. The candidates are ordered by the noise their
 * observer estimates (least first; graph order where it cannot tell) and the longest prefix within
 * the bound is kept, found by bisection, so the kept set passed as a whole (single effects are
 * noise-sized and not additive). All candidates are switches in one session (see writeFakeQuant), so
 * each test is one forward pass: 2 when all pass, 2 + ceil(log2 candidates) at most.
 */
async function selectOutputs(
  q: QuantizationSession,
  plan: readonly LayerQuantization[],
  record: QuantRecord,
  options: CreateSessionOptions = {},
): Promise<void> {
  const samples = q.samples ?? [];
  if (samples.length === 0) return;
  const candidates = outputCandidates(q, plan, record);
  if (candidates.length === 0) return;
  const run = async (session: InferenceSession, extra: Feeds = {}): Promise<Float32Array[]> => {
    const all: Float32Array[] = [];
    for (const { feeds } of samples) {
      const out = await session.run({ ...feeds, ...extra });
      all.push(out[session.outputNames[0]!]!.data as Float32Array);
    }
    return all;
  };
  const once = async (bytes: Uint8Array) => {
    const session = await createSession(bytes, options);
    try {
      return await run(session);
    } finally {
      await session.release();
    }
  };
  const reference = samples.every((s) => s.output) ? samples.map((s) => s.output!) : await once(encodeModel(q.work));
  const errorOf = (got: Float32Array[]) => got.reduce((sum, o, i) => sum + 1 - q.kernels.cosine(reference[i]!, o), 0) / got.length;
  // One session with a switch per output (Where needs opset 9), else a model per test.
  let error: (chosen: readonly OutputQuantization[]) => Promise<number>;
  let switchboard: InferenceSession | undefined;
  if ((opsetVersion(q.work) ?? 1) >= 9) {
    const fake = clone(q.work);
    const flags = writeFakeQuant(fake, plan, candidates, true);
    switchboard = await createSession(encodeModel(fake), options);
    const board = switchboard;
    error = async (chosen) => {
      const on = new Set(chosen.map((o) => o.layer));
      const extra = Object.fromEntries([...flags].map(([layer, flag]) => [flag, new Tensor('bool', [on.has(layer)], [])]));
      return errorOf(await run(board, extra));
    };
  } else {
    error = async (chosen) => {
      const fake = clone(q.work);
      writeFakeQuant(fake, plan, chosen);
      return errorOf(await once(encodeModel(fake)));
    };
  }
  const noise = (o: OutputQuantization) => q.outputNoise?.get(o.layer) ?? Infinity;
  // Stable: equal noise (unknown) keeps graph order.
  const order = [...candidates].sort((a, b) => noise(a) - noise(b));
  try {
    const n = await longestPassingPrefix(order, error);
    order.forEach((o, i) => (record.layers[o.layer]!.output_quant = i < n));
  } finally {
    await switchboard?.release();
  }
}

/** The calibrated output quantizations `plan` allows that the record has not decided on yet. */
function outputCandidates(q: QuantizationSession, plan: readonly LayerQuantization[], record: QuantRecord): OutputQuantization[] {
  if (q.config.quantize_outputs === false) return [];
  return placeOutputs(q.work.graph!, plan, true).outputs.filter((o) => !o.exact && record.layers[o.layer]?.output_quant === undefined);
}

/**
 * Keeps every calibrated output quantization `plan` allows (marks them in the record), for callers
 * whose own evaluation decides, as the automatic calibration does.
 */
function keepAllOutputs(q: QuantizationSession, plan: readonly LayerQuantization[], record: QuantRecord): void {
  for (const o of outputCandidates(q, plan, record)) record.layers[o.layer]!.output_quant = true;
}

/** The largest n such that the first n of `order` stay within the bound (bisection; monotone in practice). */
async function longestPassingPrefix(order: OutputQuantization[], error: (chosen: readonly OutputQuantization[]) => Promise<number>): Promise<number> {
  const bound = (await error([])) * (1 + OUTPUT_TOLERANCE) + OUTPUT_SLACK;
  if ((await error(order)) <= bound) return order.length;
  let lo = 0;
  let hi = order.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((await error(order.slice(0, mid))) <= bound) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Which layer outputs get quantized for `plan` (the same in both model forms; see outputs.ts). */
function outputPlacement(q: QuantizationSession, plan: readonly LayerQuantization[]): OutputPlacement {
  const opset = Math.max(opsetVersion(q.work) ?? 1, plan.length ? requiredDeployOpset(plan) : 0);
  return placeOutputs(q.work.graph!, plan, q.config.quantize_outputs !== false, opset >= 13);
}

/**
 * The fake-quant model (standard ops) for a plan. The model's own attribute-form Clip nodes are
 * rewritten too (exactly, see portable.ts), so the whole graph stays on the GPU in onnxruntime-web;
 * `gpuRewrites` names them.
 */
function fakeQuantModelProto(q: QuantizationSession, plan: readonly LayerQuantization[]): { model: ModelProto; gpuRewrites: string[] } {
  const fake = clone(q.work);
  writeFakeQuant(fake, plan, outputPlacement(q, plan).outputs);
  return { model: fake, gpuRewrites: replaceAttributeClips(fake) };
}

/** The deployable QDQ model for a plan, with the opset raised as far as the plan needs. */
function buildDeployModel(q: QuantizationSession, plan: readonly LayerQuantization[]): Uint8Array {
  const deploy = clone(q.work);
  const need = requiredDeployOpset(plan);
  if (plan.length > 0 && (opsetVersion(deploy) ?? 1) < need) upgradeOpset(deploy, need);
  writeDeploy(deploy, plan, outputPlacement(q, plan));
  return encodeModel(deploy);
}

/**
 * Hard-swish as one HardSwish op in the working model (see hardswish.ts), raising its opset to 14
 * when needed and possible; both model forms and the calibration then see the same graph.
 */
function fuseHardSwishes(work: ModelProto): string[] {
  if (fuseHardSwish(work, { dryRun: true }).length === 0) return [];
  if ((opsetVersion(work) ?? 1) >= HARD_SWISH_OPSET) return fuseHardSwish(work);
  const raised = clone(work);
  try {
    upgradeOpset(raised, HARD_SWISH_OPSET);
  } catch {
    return []; // a node cannot be raised to opset 14: keep hard-swish as it is
  }
  const fused = fuseHardSwish(raised);
  work.graph = raised.graph;
  work.opsetImport = raised.opsetImport;
  return fused;
}

/** Per layer, whether it is quantized and, if not, why. */
function layerReport(q: QuantizationSession, quantized: ReadonlySet<string>, reasonFor?: (name: string) => string | undefined, record?: QuantRecord): LayerReport[] {
  let blocker: string | undefined | null = null;
  const fusedBias = new Set(q.layers.filter((l) => l.bias).map((l) => l.name));
  const weights = (l: LayerInfo): Partial<LayerReport> => {
    if (!l.weight) return {};
    const corrected = fusedBias.has(l.name) && record?.layers[l.name]?.bias_shift?.length ? { biasCorrected: true } : {};
    if (layerConfig(q.config, l.name)?.weight_quant_params?.channel_wise && l.weight.channelAxis >= 0) return { weights: 'per-channel', ...corrected };
    if (l.weight.channelAxis < 0) return { weights: 'per-tensor', weightsReason: `a ${l.opType} with groups has no per-output-channel weight axis` };
    if (blocker === null) blocker = perChannelBlocker(decodeModel(q.original));
    const weightsReason = blocker
      ? `channel_wise is false: per-channel weights need opset ${PER_CHANNEL_OPSET}, and autoquant ${blocker}`
      : 'channel_wise is false in the config';
    return { weights: 'per-tensor', weightsReason, ...corrected };
  };
  const logFed = layersFeedingLog(q.work.graph!, q.layers);
  const note = (l: LayerInfo): Partial<LayerReport> =>
    logFed.has(l.name) && layerConfig(q.config, l.name)?.activation_quant_params.num_bits === 16 ? { note: LOG_INPUT_NOTE } : {};
  const disabled = (l: LayerInfo) =>
    logFed.has(l.name) ? 'quant_enable is false in the config (the default where a layer feeds a Log and the model cannot reach opset 21 for 16-bit activations)' : 'quant_enable is false in the config';
  return [
    ...q.declared.map((l) => {
      const on = quantized.has(l.name);
      const reason = on ? undefined : reasonFor?.(l.name) ?? disabled(l);
      return { name: l.name, opType: l.opType, quantized: on, ...(reason ? { reason } : { ...weights(l), ...note(l) }) };
    }),
    ...q.skipped.map((s) => ({ name: s.name, opType: s.opType, quantized: false, reason: s.reason })),
  ];
}

/** Keeps only the factors of layers that exist, so a record matches its config. */
function pruneRecord(q: QuantizationSession, record: QuantRecord): QuantRecord {
  const known = new Set(q.layers.map((l) => l.name));
  for (const name of Object.keys(record.layers)) if (!known.has(name)) delete record.layers[name];
  return record;
}

async function readRecord(r: QuantizeModelOptions['record']): Promise<QuantRecord | undefined> {
  if (r === undefined) return undefined;
  if (typeof r === 'string' || r instanceof URL) return validateRecord(await readJsonFile(r), String(r));
  return validateRecord(r);
}

/**
 * The staged PTQ both entry points compose: a model prepared for quantization with its record, that
 * is calibrated once and then builds a fake-quant or deploy model for any plan (all enabled layers,
 * or those left after fallbacks). `quantizeModel` is create → calibrate → chooseOutputs → build;
 * the automatic calibration is create → calibrate → keepAllOutputs → build per search step.
 */
export class PreparedQuantization {
  private constructor(
    /** The working model, config, layers and kernels. */
    readonly session: QuantizationSession,
    /** Factors so far: from the caller's record, then from calibration. */
    readonly record: QuantRecord,
    /** Layers whose config says quant_enable. */
    readonly enabled: LayerInfo[],
    /** Whether the caller gave a record (then calibration data may be empty). */
    private readonly fromRecord = false,
  ) {}

  /**
   * Validates `config` against `model`, prepares a private working copy (fusions per the config) and
   * reads `options.record`; fails now, not after calibration, when the deploy opset is out of reach.
   */
  static async create(
    model: ModelSource,
    config: QuantConfig,
    options: { record?: QuantizeModelOptions['record']; kernels?: Kernels; configSource?: string; activationBits?: 8 | 16 } = {},
  ): Promise<PreparedQuantization> {
    const q = await prepareQuantization(model, config, options.kernels, options.configSource);
    const enabled = enabledLayers(q);
    checkDeployable(q, enabled, options.activationBits);
    const record = await readRecord(options.record);
    return new PreparedQuantization(q, record ?? emptyRecord(), enabled, record !== undefined);
  }

  /** The same prepared model and layers with `bits`-bit activations everywhere and an empty record. */
  withActivationBits(bits: 8 | 16): PreparedQuantization {
    const config = structuredClone(this.session.config);
    for (const l of this.enabled) (config[l.name] as LayerQuantConfig).activation_quant_params.num_bits = bits;
    return new PreparedQuantization({ ...this.session, config, samples: undefined, outputNoise: undefined }, emptyRecord(), this.enabled);
  }

  /**
   * Only `layers`, with their config entries changed by `edit` (and no output quantizations): a
   * repair candidate for them. Its record starts with their entries from this one when `keepFactors`
   * (the activation factors stay valid, e.g. for a weight-only change), else empty, so `calibrate`
   * computes them anew. Fails like `create` when the edited layers' deploy opset is out of reach.
   */
  variant(layers: readonly string[], edit: (entry: LayerQuantConfig) => void, keepFactors = false): PreparedQuantization {
    const config = structuredClone(this.session.config);
    config.quantize_outputs = false;
    // A repair is judged by the user's evaluator on its own; adaptive rounding's pass per candidate would cost more than the repair.
    if (config.weight_rounding !== undefined) config.weight_rounding = 'nearest';
    for (const name of layers) edit(config[name] as LayerQuantConfig);
    const only = new Set(layers);
    const enabled = this.enabled.filter((l) => only.has(l.name));
    const session = { ...this.session, config, samples: undefined, outputNoise: undefined };
    checkDeployable(session, enabled);
    const record = emptyRecord();
    if (keepFactors) {
      for (const name of layers) {
        const { scale_d, offset_d, num_bits_d, clip_min_d, clip_max_d } = this.record.layers[name]!;
        record.layers[name] = { scale_d, offset_d, num_bits_d, clip_min_d, clip_max_d };
      }
    }
    return new PreparedQuantization(session, record, enabled);
  }

  get config(): QuantConfig {
    return this.session.config;
  }

  /** Calibrates the enabled layers the record lacks, in one pass over `calibration`. */
  async calibrate(calibration: CalibrationSource, options: CalibrateOptions = {}): Promise<CalibrationStats | undefined> {
    // Taken once, so that bias correction can replay a one-shot iterable too; and only when needed,
    // so that a record covering everything needs no data.
    let taken: BatchSource | undefined;
    const batches = async () => (taken ??= await toBatchSource(calibration, this.session.config.batch_num, declaredInputs(this.session.work)));
    this.source = batches;
    // Data is checked before anything runs, even where nothing will need it; only a reused record
    // (which may cover every layer) can come with no data.
    if (typeof calibration !== 'function' && !this.fromRecord) await batches();
    let factors = new Map<string, number[]>();
    let passes = 0;
    let choices = new Map<string, SplitChoice>();
    if (!this.session.activationEqualized) {
      const eq = await equalizeActivations(this.session, this.enabled, this.record, batches, options);
      this.session.activationEqualized = eq.done;
      this.session.channelSplits = eq.splits;
      ({ factors, choices, passes } = eq);
    }
    const stats = await calibrateLayers(this.session, this.enabled, this.record, batches, options);
    if (stats) stats.passes += passes;
    for (const [name, f] of factors) this.record.layers[name]!.equalize_d = f;
    for (const [name, c] of choices) Object.assign(this.record.layers[name]!, { split_d: c.copies, split_dither_d: c.step });
    // The passes after calibration: the same runtime, and the activation sizes calibration measured.
    const passOptions = (this.passOptions = {
      executionProviders: options.executionProviders,
      graphOptimizationLevel: options.graphOptimizationLevel,
      engine: options.engine,
      signal: options.signal,
      activationBytes: stats?.activationBytes,
    });
    if (this.session.config.weight_rounding === 'adaptive') {
      const rounding = await roundWeights(this.session, this.enabled, this.record, batches, passOptions);
      if (rounding) this.rounding = rounding;
    }
    if (this.session.config.bias_correction === true) {
      await correctBiases(this.session, this.enabled, this.record, batches, passOptions);
    }
    return stats;
  }

  /** The calibration batches, once calibrate() has taken them (replayable). */
  private source?: () => Promise<BatchSource>;

  /** What adaptive rounding did in calibrate(), when it ran. */
  rounding?: RoundingSummary;

  /** The runtime options calibrate() ran with, for the passes that replay its batches later. */
  private passOptions?: RoundingPassOptions;

  /**
   * Adaptive rounding (see rounding-search.ts) of `layers`, in graph order, in the model with every
   * enabled layer quantized: the layers rounded other than nearest, each with its plan entry and
   * record entry (`round_w`, and `bias_shift` under `bias_correction`). Only layers still at nearest
   * rounding are tried. Per layer, one run of each calibration batch; needs calibrate() first.
   */
  async roundingRepairs(layers: readonly string[]): Promise<Map<string, { quantization: LayerQuantization; record: QuantRecord['layers'][string] }>> {
    if (!this.source) throw new CalibrationError('adaptive rounding needs the calibration batches: call calibrate() first');
    const todo = new Set(layers.filter((n) => this.enabled.some((l) => l.name === n && l.weight) && !this.record.layers[n]?.round_w));
    if (todo.size === 0) return new Map();
    const record = structuredClone(this.record);
    for (const n of todo) delete record.layers[n]!.round_w;
    const summary = await chooseInto(this.session, planLayers(this.session, this.enabled, record), todo, record, await this.source(), this.passOptions ?? {});
    const kept = new Set(summary.layers);
    const plan = planLayers(this.session, this.enabled.filter((l) => kept.has(l.name)), record);
    return new Map(plan.map((quantization) => [quantization.layer.name, { quantization, record: record.layers[quantization.layer.name]! }]));
  }

  /**
   * Per layer of `plan`: the cosine and SQNR (dB) of its fake-quant output against its float output,
   * each layer alone on the float activations of the calibration batches (means over batches). One
   * more pass over the batches; needs calibrate() first.
   */
  async layerErrors(plan: readonly LayerQuantization[], options: CreateSessionOptions & { signal?: AbortSignal } = {}): Promise<LayerError[]> {
    if (!this.source) throw new CalibrationError('layerErrors needs the calibration batches: call calibrate() first');
    const k = this.session.kernels;
    const sums = new Map<string, { cosine: number; sqnr: number; n: number }>();
    await compareLayers(this.session.work, plan, await this.source(), { ...options, batchNum: this.config.batch_num, memoryBudgetBytes: DEFAULT_CALIBRATION_MEMORY }, (p, float, fake) => {
      const e = sums.get(p.layer.name) ?? { cosine: 0, sqnr: 0, n: 0 };
      e.cosine += k.cosine(float, fake);
      e.sqnr += k.sqnr(float, fake);
      e.n++;
      sums.set(p.layer.name, e);
    });
    return plan.map((p) => {
      const e = sums.get(p.layer.name)!;
      return { layer: p.layer.name, cosine: e.cosine / e.n, sqnr: e.sqnr / e.n };
    });
  }

  /** Keeps the calibrated output quantizations that stay within fidelity on the sample (see selectOutputs). */
  chooseOutputs(options: CreateSessionOptions = {}): Promise<void> {
    return selectOutputs(this.session, this.plan(), this.record, options);
  }

  /** Keeps every calibrated output quantization; returns how many the record now keeps. */
  keepAllOutputs(): number {
    keepAllOutputs(this.session, this.plan(), this.record);
    // Those a reused record already kept count too: dropOutputs turns them all back.
    return Object.values(this.record.layers).filter((l) => l.output_quant === true).length;
  }

  /** Turns every kept output quantization back to float (AMCT's form); returns how many. */
  dropOutputs(): number {
    const kept = Object.values(this.record.layers).filter((l) => l.output_quant === true);
    for (const l of kept) l.output_quant = false;
    return kept.length;
  }

  /**
   * Takes `entry`, calibrated by a variant or withActivationBits session, as `layer`'s record entry,
   * with what only this session's record knows: the activation equalization factors the shared
   * working model already carries (without them a reuse would not equalize, and the entry's factors
   * were calibrated on the equalized input), and, under adaptive rounding, that the variant's weights
   * were rounded to nearest (without it a reuse would choose a rounding, from data).
   */
  adoptRecord(layer: string, entry: QuantRecord['layers'][string]): void {
    const own = this.record.layers[layer];
    const adopted = { ...entry };
    if (adopted.equalize_d === undefined && own?.equalize_d) adopted.equalize_d = own.equalize_d;
    if (adopted.split_d === undefined && own?.split_d) Object.assign(adopted, { split_d: own.split_d, split_dither_d: own.split_dither_d });
    const weighted = this.enabled.some((l) => l.name === layer && l.weight);
    if (adopted.round_w === undefined && weighted && this.session.config.weight_rounding === 'adaptive') adopted.round_w = '';
    this.record.layers[layer] = adopted;
  }

  /**
   * Marks `output_quant: false` for the layers of `plan` whose output the plan leaves float and whose
   * record has no output factors: a plan from this record would leave them float too, and saying so
   * keeps a reuse of the record with the layers `plan` left out disabled (the automatic calibration's
   * fallbacks) from calibrating those outputs, which needs data. Outputs the plan quantizes (with a
   * quantized reader's factors) keep their entry.
   */
  settleOutputs(plan: readonly LayerQuantization[]): void {
    const placed = new Set(outputPlacement(this.session, plan).outputs.map((o) => o.layer));
    for (const p of plan) {
      const l = this.record.layers[p.layer.name];
      if (l && !placed.has(p.layer.name) && l.scale_o === undefined && l.output_quant !== false) l.output_quant = false;
    }
  }

  /** The plan of every enabled layer, from the record. */
  plan(): LayerQuantization[] {
    return planLayers(this.session, this.enabled, this.record);
  }

  fakeQuantModel(plan: readonly LayerQuantization[]): { model: Uint8Array; gpuRewrites: string[] } {
    const fake = fakeQuantModelProto(this.session, plan);
    return { model: encodeModel(fake.model), gpuRewrites: fake.gpuRewrites };
  }

  deployModel(plan: readonly LayerQuantization[]): Uint8Array {
    return buildDeployModel(this.session, plan);
  }

  /** Per layer, whether `quantized` has it and, if not, why. */
  layerReport(quantized: ReadonlySet<string>, reasonFor?: (name: string) => string | undefined): LayerReport[] {
    return layerReport(this.session, quantized, reasonFor, this.record);
  }

  /** What stays float and why, counted (see coverage.ts), for a result whose layers are `layers`. */
  warnings(layers: readonly LayerReport[], search = false): QuantWarning[] {
    return coverageWarnings(layers, this.session.skipped, this.session.floatOnly, search);
  }

  /** The record restricted to layers that exist. */
  prunedRecord(): QuantRecord {
    return pruneRecord(this.session, this.record);
  }
}

/**
 * Calibrates (unless a record covers every enabled layer) and quantizes each enabled layer,
 * returning the fake-quant model, the deployable int8 model and the record.
 */
export async function quantizeModel(
  model: ModelSource,
  config: QuantConfig,
  calibration: CalibrationSource,
  options: QuantizeModelOptions = {},
): Promise<QuantizeResult> {
  checkOptionKeys(options, QUANTIZE_OPTION_KEYS, 'quantizeModel');
  const p = await PreparedQuantization.create(model, config, options);
  const stats = await p.calibrate(calibration, { ...options, keepOutputs: true });
  await p.chooseOutputs(options);
  const plan = p.plan();
  const fake = p.fakeQuantModel(plan);
  const q = p.session;
  const layerErrors = options.layerErrors ? await p.layerErrors(plan, options) : undefined;
  const layers = p.layerReport(new Set(p.enabled.map((l) => l.name)));
  // Nothing quantized means the models are the float model: there is nothing to measure.
  const outputFidelity = plan.length && q.kept ? await measureFidelity(fake.model, q.kept, options) : [];
  const warnings = [...p.warnings(layers), ...fidelityWarnings(outputFidelity)];
  // Printed where setLogLevel asks for warnings; the result carries them either way.
  const log = new RunLog();
  for (const w of warnings) log.log('warn', `warning: ${w.message}`);
  return {
    outputFidelity,
    ...(layerErrors ? { layerErrors } : {}),
    record: p.prunedRecord(),
    config: q.config,
    fakeQuantModel: fake.model,
    deployModel: p.deployModel(plan),
    layers,
    warnings,
    fusedBatchNorms: q.fused,
    fusedAffines: q.affines,
    fusedHardSwish: q.hardSwish,
    equalized: q.equalized,
    activationEqualized: q.activationEqualized ?? [],
    channelSplits: q.channelSplits ?? [],
    ...(p.rounding ? { adaptiveRounding: p.rounding } : {}),
    calibration: stats,
    gpuRewrites: fake.gpuRewrites,
  };
}

/**
 * Writes `{prefix}_fake_quant_model.onnx`, `{prefix}_deploy_model.onnx` and `{prefix}_record.json`
 * (Node/Deno), each to a temporary name first and then renamed.
 */
export async function saveModel(result: Pick<QuantizeResult, 'fakeQuantModel' | 'deployModel' | 'record'>, prefix: string): Promise<string[]> {
  if (typeof result !== 'object' || result === null || !(result.fakeQuantModel instanceof Uint8Array) || !(result.deployModel instanceof Uint8Array) || typeof result.record !== 'object') {
    throw new OptionsError(`saveModel needs quantizeModel's result ({ fakeQuantModel, deployModel, record }), got ${describeValue(result)}`, 'SAVE_ARGUMENTS');
  }
  if (typeof prefix !== 'string' || prefix === '') throw new OptionsError(`saveModel needs a non-empty path prefix, got ${describeValue(prefix)}`, 'SAVE_ARGUMENTS');
  const files = [`${prefix}_fake_quant_model.onnx`, `${prefix}_deploy_model.onnx`, `${prefix}_record.json`];
  await checkWritable(files);
  await writeFileAtomic(files[0]!, result.fakeQuantModel);
  await writeFileAtomic(files[1]!, result.deployModel);
  await writeFileAtomic(files[2]!, JSON.stringify(result.record, null, 2) + '\n');
  return files;
}
