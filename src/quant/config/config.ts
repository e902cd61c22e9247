/**
 * The quantization config in AMCT's JSON form: global settings plus one entry per quantizable
 * layer keyed by node name. Overrides apply by precedence name > type > common > defaults.
 */
import { QuantConfigError } from '../../errors.js';
import { describeValue, didYouMean, quoteName } from '../../text.js';
import type { LayerInfo, QuantizableType } from '../prepare/registry.js';
import { QUANTIZABLE_TYPES } from '../prepare/registry.js';

export const ACTIVATION_ALGOS = Object.freeze(['ifmr', 'hfmg', 'minmax', 'percentile'] as const);
export type ActivationAlgo = (typeof ACTIVATION_ALGOS)[number];

export interface ActivationQuantParams {
  num_bits: 8 | 16;
  act_algo: ActivationAlgo;
  /** Asymmetric (with offset) or symmetric; defaults to the global `activation_offset`. */
  asymmetric?: boolean;
  /** IFMR and percentile: quantiles that seed the range. */
  max_percentile?: number;
  min_percentile?: number;
  /** IFMR: the clip-ratio interval [lo, hi) searched with `search_step`. */
  search_range?: [number, number];
  search_step?: number;
  /** HFMG: histogram bins. */
  num_of_bins?: number;
}

export interface WeightQuantParams {
  /** 4 only where the deploy target quantizes the layer in blocks (see `deploy_target`). */
  num_bits: 8 | 4;
  wts_algo: 'arq_quantize';
  channel_wise: boolean;
  /**
   * Weights per scale along the reduction axis, for the block forms of the 'webgpu' target
   * (MatMulNBits, GatherBlockQuantized): a power of two from 16 to 256; default 32.
   */
  block_size?: number;
}

export const DEPLOY_TARGETS = Object.freeze(['cpu', 'webgpu', 'wasm'] as const);
/**
 * The runtime the deploy model is made for (see prepare/target.ts): 'cpu' (default), int8 QDQ that
 * native ONNX Runtime fuses into integer kernels; 'webgpu', weight-only forms that onnxruntime-web's
 * WebGPU backend runs on the GPU (activations stay float); 'wasm', onnxruntime-web's wasm backend,
 * the same weight-only forms, which it runs at about float speed where its int8 QDQ runs slower
 * than float (measured: bench/wasm-target.mjs).
 */
export type DeployTarget = (typeof DEPLOY_TARGETS)[number];
/** The targets that quantize weights only ('webgpu', 'wasm'): their MatMul, Gemm and embeddings go in blocks of 4 or 8 bits. */
export const isWeightOnlyTarget = (target: DeployTarget | undefined): boolean => target === 'webgpu' || target === 'wasm';

/**
 * The bit width a block-quantized layer takes by default under `target` when 4 bits are asked for: 8
 * for an embedding under 'webgpu', because the JSEP WebGPU kernel of GatherBlockQuantized in Chromium's
 * default onnxruntime-web bundle (1.30) computes another table at 4 bits (the token classifier's
 * embedding: parity 0.14 against the fake-quant model) and the right one at 8 (parity 1.000000),
 * test/browser/suite.js. The wasm kernel and the WebGPU EP build are right at both; a config can
 * still say 4 for such a layer, and parity then tells on the runtime it ships to.
 */
export function defaultBlockBits(l: LayerInfo, target: DeployTarget | undefined, asked: 4 | 8): 4 | 8 {
  return asked === 4 && target === 'webgpu' && l.opType === 'Gather' ? 8 : asked;
}
/** MatMulNBits and GatherBlockQuantized take power-of-two blocks of at least 16. */
export const BLOCK_SIZES: readonly number[] = Object.freeze([16, 32, 64, 128, 256]);
export const DEFAULT_BLOCK_SIZE = 32;

export interface LayerQuantConfig {
  quant_enable: boolean;
  /** Absent for weight-only layers (a Gather from a constant embedding table). */
  activation_quant_params?: ActivationQuantParams;
  /** Absent for layers without weights (AveragePool). */
  weight_quant_params?: WeightQuantParams;
}

export interface QuantConfigGlobals {
  version: 1;
  batch_num: number;
  activation_offset: boolean;
  do_fusion: boolean;
  skip_fusion_layers: string[];
  /**
   * Also quantize layer outputs that feed float operators, so ONNX Runtime runs those layers as
   * integer kernels: faster deploy models; the outputs are kept only as far as together they raise
   * the error to float by at most 10% on the first calibration batches. Default (absent) true;
   * false gives AMCT's form, where only layer inputs and weights are quantized (outputs that reach
   * only quantized layers are fused anyway).
   */
  quantize_outputs?: boolean;
  /**
   * Cross-layer equalization before calibration (see equalize.ts): channels of two weighted layers
   * joined through Relu-like ops are rescaled so both weight ranges balance; the float function is
   * unchanged. Default (absent) true; false gives AMCT's form.
   */
  cross_layer_equalization?: boolean;
  /**
   * Empirical bias correction after calibration (see decide/bias-correction.ts): each quantized layer's bias loses
   * the mean output shift quantization adds, per output channel, measured on the calibration
   * batches (one more pass over them). Default (absent) false, AMCT's form: measured gains and
   * losses on the PP-OCR models depend on the data (see correctBiases).
   */
  bias_correction?: boolean;
  /**
   * Activation equalization before calibration (see activation-equalize.ts): the input channels of
   * depthwise convolutions are rescaled by powers of two, measured on the calibration batches (one
   * more pass), so that one int8 scale fits them all; the float function and the int8 weights are
   * unchanged. Default (absent) true; false gives AMCT's form.
   */
  activation_equalization?: boolean;
  /**
   * Channel splitting before calibration (see channel-split.ts): the widest input channels of
   * one-group Conv, ConvTranspose, Gemm and MatMul layers are split into copies (and their weight
   * columns repeated), so that one int8 scale resolves the rest; the float function and the int8
   * weights are unchanged. The share of extra input channels a layer may get, in [0, 1]: 0 or absent
   * (default, AMCT's form) turns it off; 1/16 is what was measured (the deploy model grows and slows
   * by a few percent, see channel-split.ts).
   */
  channel_splitting?: number;
  /**
   * Whether createQuantConfig left float, by default, the layers that onnxruntime's CPU runs slower
   * in int8 than in float (depthwise and grouped Conv, Conv with dot products under 16 terms,
   * AveragePool; see prepare/cpu-cost.ts): their entries have `quant_enable: false`, which an edit
   * can turn back on. Default (absent in older configs: no layer was left float for it) true.
   */
  skip_slow_layers?: boolean;
  /**
   * How weights are rounded to int8 (see rounding.ts): 'nearest' (default, AMCT's), or 'adaptive':
   * each weight rounded down or up so that each layer's output on the input the quantized model
   * feeds it comes closest to float's, kept per layer only where the model's output on the first
   * calibration batches gets closer to float (one more pass, plus one forward pass per layer).
   */
  weight_rounding?: WeightRounding;
  /** See DeployTarget. Default (absent) 'cpu'. */
  deploy_target?: DeployTarget;
}

export const WEIGHT_ROUNDINGS = Object.freeze(['nearest', 'adaptive'] as const);
export type WeightRounding = (typeof WEIGHT_ROUNDINGS)[number];

/** Globals plus one `LayerQuantConfig` per layer name. */
export type QuantConfig = QuantConfigGlobals & { [layer: string]: LayerQuantConfig | QuantConfigGlobals[keyof QuantConfigGlobals] };

export interface LayerOverride {
  quant_enable?: boolean;
  activation_quant_params?: Partial<ActivationQuantParams>;
  weight_quant_params?: Partial<WeightQuantParams>;
}

export interface CreateQuantConfigOptions {
  /** Node names to leave in float (`quant_enable: false`). */
  skipLayers?: string[];
  batchNum?: number;
  activationOffset?: boolean;
  doFusion?: boolean;
  /** See `quantize_outputs` (default true). */
  quantizeOutputs?: boolean;
  /** See `cross_layer_equalization` (default true). */
  crossLayerEqualization?: boolean;
  /** See `activation_equalization` (default true). */
  activationEqualization?: boolean;
  /** See `channel_splitting` (default 0: off; 1/16 measured). */
  channelSplitting?: number;
  /** See `bias_correction` (default false). */
  biasCorrection?: boolean;
  /** See `skip_slow_layers` (default true). */
  skipSlowLayers?: boolean;
  /** See `weight_rounding` (default 'nearest'). */
  weightRounding?: WeightRounding;
  activationAlgo?: ActivationAlgo;
  /** Activation bits: 8, or 16 for sensitive layers. */
  activationBits?: 8 | 16;
  /**
   * Weight bits: 8, or 4 for the layers the weight-only targets ('webgpu', 'wasm') quantize in
   * blocks (MatMul, Gemm, embeddings; their Conv weights stay 8-bit).
   */
  weightBits?: 8 | 4;
  /** See `deploy_target` (default 'cpu'). */
  deployTarget?: DeployTarget;
  /**
   * Per-output-channel weights for every layer that has an output-channel axis (Conv, ConvTranspose
   * with one group, Gemm, MatMul). Default: true when the model is at opset 13 or can be raised to it
   * (per-axis DequantizeLinear needs 13), else false (`layers` in the result says why).
   */
  channelWise?: boolean;
  /** Applies to every layer. */
  common?: LayerOverride;
  byType?: Partial<Record<QuantizableType, LayerOverride>>;
  byName?: Record<string, LayerOverride>;
  /** Node/Deno: also write the JSON to this path. */
  configFile?: string;
}

/**
 * The global settings in both spellings, with their defaults, in the order config files list them:
 * the config key (AMCT's snake_case), the createQuantConfig option (camelCase; none where the
 * setting has no option) and the value createQuantConfig writes when the option is absent.
 */
export const GLOBAL_SETTINGS = Object.freeze([
  ['batch_num', 'batchNum', 1],
  ['activation_offset', 'activationOffset', true],
  ['do_fusion', 'doFusion', true],
  ['skip_fusion_layers', undefined, []],
  ['quantize_outputs', 'quantizeOutputs', true],
  ['cross_layer_equalization', 'crossLayerEqualization', true],
  ['activation_equalization', 'activationEqualization', true],
  ['channel_splitting', 'channelSplitting', 0],
  ['bias_correction', 'biasCorrection', false],
  ['weight_rounding', 'weightRounding', 'nearest'],
  ['skip_slow_layers', 'skipSlowLayers', true],
  // Written only when asked for: configs without it are for the CPU.
  ['deploy_target', 'deployTarget', undefined],
] as const satisfies readonly (readonly [keyof QuantConfigGlobals, keyof CreateQuantConfigOptions | undefined, unknown])[]);

export const GLOBAL_KEYS: ReadonlySet<string> = new Set(['version', ...GLOBAL_SETTINGS.map(([key]) => key)]);

export const IFMR_DEFAULTS = Object.freeze({
  max_percentile: 0.999999,
  min_percentile: 0.999999,
  search_range: [0.7, 1.3] as [number, number],
  search_step: 0.01,
});
export const HFMG_DEFAULTS = Object.freeze({ num_of_bins: 4096 });
/** Upper bounds a config may ask for: more would only run for hours or exhaust memory. */
export const MAX_BATCH_NUM = 100_000;
export const MAX_IFMR_CANDIDATES = 10_000;
export const PERCENTILE_DEFAULTS = Object.freeze({ max_percentile: 0.99999, min_percentile: 0.99999 });

export function defaultActivation(algo: ActivationAlgo, bits: 8 | 16): ActivationQuantParams {
  switch (algo) {
    case 'ifmr':
      return { num_bits: bits, act_algo: algo, ...IFMR_DEFAULTS, search_range: [...IFMR_DEFAULTS.search_range] };
    case 'hfmg':
      return { num_bits: bits, act_algo: algo, ...HFMG_DEFAULTS };
    case 'percentile':
      return { num_bits: bits, act_algo: algo, ...PERCENTILE_DEFAULTS };
    case 'minmax':
      return { num_bits: bits, act_algo: algo };
  }
}

function applyOverride(layer: LayerQuantConfig, o: LayerOverride | undefined): LayerQuantConfig {
  if (!o) return layer;
  let act = layer.activation_quant_params;
  if (act && o.activation_quant_params) {
    // A new algorithm brings its own defaults; explicit fields still win.
    const algo = o.activation_quant_params.act_algo;
    const base = algo && algo !== act.act_algo ? defaultActivation(algo, act.num_bits) : act;
    act = { ...base, ...o.activation_quant_params } as ActivationQuantParams;
  }
  const wts = layer.weight_quant_params && o.weight_quant_params
    ? ({ ...layer.weight_quant_params, ...o.weight_quant_params } as WeightQuantParams)
    : layer.weight_quant_params;
  const out: LayerQuantConfig = { quant_enable: o.quant_enable ?? layer.quant_enable, activation_quant_params: act };
  if (wts) out.weight_quant_params = wts;
  return out;
}

/** Builds the config for the given layers; unknown names in options are reported as errors. */
const OPTION_KEYS: ReadonlySet<string> = new Set([
  'skipLayers', ...GLOBAL_SETTINGS.flatMap(([, option]) => (option ? [option] : [])),
  'activationAlgo', 'activationBits', 'weightBits', 'channelWise', 'common', 'byType', 'byName', 'configFile',
]);

const OVERRIDE_KEYS: readonly string[] = ['quant_enable', 'activation_quant_params', 'weight_quant_params'];

/** The options themselves, each problem once (not once per layer it would reach). */
function checkOptions(options: CreateQuantConfigOptions, problems: string[]): void {
  for (const k of Object.keys(options)) {
    if (!OPTION_KEYS.has(k)) problems.push(`unknown option ${quoteName(k)}${didYouMean(k, OPTION_KEYS) || ` (options: ${[...OPTION_KEYS].join(', ')})`}`);
  }
  const overrides: [string, unknown][] = [['common', options.common], ...Object.entries(options.byType ?? {}).map(([t, o]) => [`byType.${t}`, o] as [string, unknown]), ...Object.entries(options.byName ?? {}).map(([n, o]) => [`byName[${quoteName(n)}]`, o] as [string, unknown])];
  for (const [where, o] of overrides) {
    if (o === undefined) continue;
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      problems.push(`${where} must be an object such as { quant_enable, activation_quant_params, weight_quant_params }, got ${describeValue(o)}`);
      continue;
    }
    for (const k of Object.keys(o)) {
      if (!OVERRIDE_KEYS.includes(k)) problems.push(`${where}: unknown key ${quoteName(k)}${didYouMean(k, OVERRIDE_KEYS) || ` (keys: ${OVERRIDE_KEYS.join(', ')})`}; an override uses the config file's keys, e.g. { activation_quant_params: { num_bits: 16 } }`);
    }
  }
  if (options.activationAlgo !== undefined && !(ACTIVATION_ALGOS as readonly unknown[]).includes(options.activationAlgo)) {
    problems.push(`activationAlgo must be one of ${ACTIVATION_ALGOS.join(', ')}, got ${describeValue(options.activationAlgo)}`);
  }
  if (options.weightRounding !== undefined && !(WEIGHT_ROUNDINGS as readonly unknown[]).includes(options.weightRounding)) {
    problems.push(`weightRounding must be one of ${WEIGHT_ROUNDINGS.join(', ')}, got ${describeValue(options.weightRounding)}`);
  }
  if (options.activationBits !== undefined && options.activationBits !== 8 && options.activationBits !== 16) problems.push(`activationBits must be 8 or 16, got ${describeValue(options.activationBits)}`);
  if (options.weightBits !== undefined && options.weightBits !== 8 && options.weightBits !== 4) problems.push(`weightBits must be 8 or 4, got ${describeValue(options.weightBits)}`);
  if (options.deployTarget !== undefined && !(DEPLOY_TARGETS as readonly unknown[]).includes(options.deployTarget)) {
    problems.push(`deployTarget must be one of ${DEPLOY_TARGETS.map((t) => `'${t}'`).join(', ')}, got ${describeValue(options.deployTarget)}`);
  }
  if (options.weightBits === 4 && !isWeightOnlyTarget(options.deployTarget)) {
    problems.push("weightBits 4 needs deployTarget 'webgpu' or 'wasm' (the CPU target's int8 kernels take 8-bit weights)");
  }
  for (const k of ['activationOffset', 'doFusion', 'quantizeOutputs', 'crossLayerEqualization', 'activationEqualization', 'biasCorrection', 'skipSlowLayers', 'channelWise'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') problems.push(`${k} must be a boolean, got ${describeValue(options[k])}`);
  }
  if (options.channelSplitting !== undefined && !(typeof options.channelSplitting === 'number' && options.channelSplitting >= 0 && options.channelSplitting <= 1)) {
    problems.push(`channelSplitting must be a number in [0, 1], got ${describeValue(options.channelSplitting)}`);
  }
  if (options.skipLayers !== undefined && !(Array.isArray(options.skipLayers) && options.skipLayers.every((n) => typeof n === 'string'))) {
    problems.push(`skipLayers must be a list of layer names, got ${describeValue(options.skipLayers)}`);
  }
}

/**
 * What to add after "no quantizable layer named 'x'": where the name is instead, or the layers it is
 * closest to (see coverage.ts's whereIsName, which knows the whole model).
 */
export type NameHint = (name: string) => string;

/** Whether the layer's weights are quantized in blocks (see LayerInfo.blocked). */
const blockwise = (layer: LayerInfo) => layer.blocked === true;

const plainHint = (layers: readonly LayerInfo[]): NameHint => (name) => didYouMean(name, layers.map((l) => l.name));

/** What createQuantConfig knows of the model beyond its layers. */
export interface ModelFacts {
  /** Whether the model can reach opset 13, which per-channel weights need (default true). */
  perChannelReachable?: boolean;
  /** Layers that need precise activations by default: 16 bits, or 'float' where 16 bits cannot be deployed. */
  precise?: ReadonlyMap<string, 16 | 'float'>;
  /** Layers slower in int8 than in float on onnxruntime's CPU (see prepare/cpu-cost.ts), float where skipSlowLayers is on. */
  slow?: ReadonlyMap<string, string>;
  hint?: NameHint;
}

export function buildQuantConfig(layers: readonly LayerInfo[], options: CreateQuantConfigOptions = {}, facts: ModelFacts = {}): QuantConfig {
  const { perChannelReachable = true, precise = new Map(), slow = new Map(), hint = plainHint(layers) } = facts;
  const problems: string[] = [];
  checkOptions(options, problems);
  if (problems.length) throw new QuantConfigError(problems, 'createQuantConfig options');
  const known = new Set(layers.map((l) => l.name));
  for (const n of options.skipLayers ?? []) if (!known.has(n)) problems.push(`skipLayers: no quantizable layer named ${quoteName(n)}${hint(n)}`);
  for (const n of Object.keys(options.byName ?? {})) if (!known.has(n)) problems.push(`byName: no quantizable layer named ${quoteName(n)}${hint(n)}`);
  for (const t of Object.keys(options.byType ?? {})) {
    if (!(QUANTIZABLE_TYPES as readonly string[]).includes(t)) problems.push(`byType: '${t}' is not a quantizable type (${QUANTIZABLE_TYPES.join(', ')})`);
  }
  if (problems.length) throw new QuantConfigError(problems, 'createQuantConfig options');

  const config: Record<string, unknown> = { version: 1 };
  for (const [key, option, fallback] of GLOBAL_SETTINGS) {
    const given = option === undefined ? undefined : options[option];
    const value = given ?? (Array.isArray(fallback) ? [...fallback] : fallback);
    if (value !== undefined) config[key] = value;
  }
  const skip = new Set(options.skipLayers ?? []);
  const skipSlow = options.skipSlowLayers ?? true;
  for (const layer of layers) {
    const channelWise = layer.weight && layer.weight.channelAxis >= 0 ? options.channelWise ?? perChannelReachable : false;
    // An explicit activationBits wins over the model's needs; so do overrides below.
    const needs = options.activationBits === undefined ? precise.get(layer.name) : undefined;
    let entry: LayerQuantConfig = {
      quant_enable: !skip.has(layer.name) && needs !== 'float' && !(skipSlow && slow.has(layer.name)),
      activation_quant_params: defaultActivation(options.activationAlgo ?? 'ifmr', options.activationBits ?? (needs === 16 ? 16 : 8)),
    };
    // Weight-only rows are dequantized by Cast and Mul (export/weight-only.ts), which need no opset 13.
    const rows = layer.weightOnly ? options.channelWise ?? true : channelWise;
    if (layer.weight) {
      entry.weight_quant_params = { num_bits: blockwise(layer) ? defaultBlockBits(layer, options.deployTarget, options.weightBits ?? 8) : 8, wts_algo: 'arq_quantize', channel_wise: rows };
      if (blockwise(layer)) entry.weight_quant_params.block_size = DEFAULT_BLOCK_SIZE;
    }
    entry = applyOverride(entry, options.common);
    entry = applyOverride(entry, options.byType?.[layer.opType]);
    entry = applyOverride(entry, options.byName?.[layer.name]);
    if (layer.weightOnly) delete entry.activation_quant_params;
    if (skip.has(layer.name)) entry.quant_enable = false;
    config[layer.name] = entry;
  }
  const result = config as QuantConfig;
  validateQuantConfig(result, layers, 'createQuantConfig options');
  return result;
}

export function layerEntries(config: QuantConfig): [string, LayerQuantConfig][] {
  return Object.entries(config).filter(([k]) => !GLOBAL_KEYS.has(k)) as [string, LayerQuantConfig][];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkActivation(where: string, p: unknown, problems: string[]): void {
  if (!isObj(p)) {
    problems.push(`${where}.activation_quant_params must be an object`);
    return;
  }
  const allowed = new Set(['num_bits', 'act_algo', 'asymmetric', 'max_percentile', 'min_percentile', 'search_range', 'search_step', 'num_of_bins']);
  for (const k of Object.keys(p)) if (!allowed.has(k)) problems.push(`${where}.activation_quant_params.${k} is not a known field`);
  if (p.num_bits !== 8 && p.num_bits !== 16) problems.push(`${where}.activation_quant_params.num_bits must be 8 or 16, got ${describeValue(p.num_bits)}`);
  if (!(ACTIVATION_ALGOS as readonly unknown[]).includes(p.act_algo)) {
    problems.push(`${where}.activation_quant_params.act_algo must be one of ${ACTIVATION_ALGOS.join(', ')}, got ${describeValue(p.act_algo)}`);
  }
  if (p.asymmetric !== undefined && typeof p.asymmetric !== 'boolean') problems.push(`${where}.activation_quant_params.asymmetric must be a boolean`);
  for (const k of ['max_percentile', 'min_percentile'] as const) {
    const v = p[k];
    if (v !== undefined && !(typeof v === 'number' && v > 0.5 && v <= 1)) problems.push(`${where}.activation_quant_params.${k} must be a number in (0.5, 1], got ${describeValue(v)}`);
  }
  if (p.search_range !== undefined) {
    const r = p.search_range;
    if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0) || !(r[0] < r[1])) {
      problems.push(`${where}.activation_quant_params.search_range must be [lo, hi] with 0 < lo < hi, got ${describeValue(r)}`);
    }
  }
  if (p.search_step !== undefined && !(typeof p.search_step === 'number' && p.search_step > 0 && p.search_step <= 1)) {
    problems.push(`${where}.activation_quant_params.search_step must be a number in (0, 1], got ${describeValue(p.search_step)}`);
  } else if (p.act_algo === 'ifmr') {
    // Each candidate costs a pass over the layer's histogram: bound how many a config can ask for.
    const range = Array.isArray(p.search_range) && p.search_range.every((x) => typeof x === 'number') ? (p.search_range as number[]) : IFMR_DEFAULTS.search_range;
    const step = typeof p.search_step === 'number' ? p.search_step : IFMR_DEFAULTS.search_step;
    const candidates = (range[1]! - range[0]!) / step;
    if (candidates > MAX_IFMR_CANDIDATES) {
      problems.push(`${where}.activation_quant_params: search_range ${describeValue(p.search_range ?? IFMR_DEFAULTS.search_range)} with search_step ${describeValue(p.search_step ?? IFMR_DEFAULTS.search_step)} gives ${candidates.toPrecision(3)} candidates; at most ${MAX_IFMR_CANDIDATES}`);
    }
  }
  if (p.num_of_bins !== undefined && !(Number.isInteger(p.num_of_bins) && (p.num_of_bins as number) >= 256 && (p.num_of_bins as number) <= 65536)) {
    problems.push(`${where}.activation_quant_params.num_of_bins must be an integer in [256, 65536], got ${describeValue(p.num_of_bins)}`);
  }
}

function checkWeight(where: string, p: unknown, layer: LayerInfo | undefined, problems: string[]): void {
  if (!isObj(p)) {
    problems.push(`${where}.weight_quant_params must be an object`);
    return;
  }
  for (const k of Object.keys(p)) if (!['num_bits', 'wts_algo', 'channel_wise', 'block_size'].includes(k)) problems.push(`${where}.weight_quant_params.${k} is not a known field`);
  const blocks = layer !== undefined && blockwise(layer);
  if (blocks ? p.num_bits !== 8 && p.num_bits !== 4 : p.num_bits !== 8) {
    const why = blocks || layer?.weightOnly || !(layer?.opType === 'MatMul' || layer?.opType === 'Gemm') ? '' : " (4 needs deploy_target 'webgpu' or 'wasm', where this layer is quantized in blocks)";
    problems.push(`${where}.weight_quant_params.num_bits must be ${blocks ? '8 or 4' : '8'}, got ${describeValue(p.num_bits)}${why}`);
  }
  if (p.block_size !== undefined) {
    if (!blocks) problems.push(`${where}.weight_quant_params.block_size applies only to the block forms of the 'webgpu' and 'wasm' targets (MatMul, Gemm, embeddings): remove it`);
    else if (!BLOCK_SIZES.includes(p.block_size as number)) problems.push(`${where}.weight_quant_params.block_size must be one of ${BLOCK_SIZES.join(', ')}, got ${describeValue(p.block_size)}`);
  }
  if (p.wts_algo !== 'arq_quantize') problems.push(`${where}.weight_quant_params.wts_algo must be "arq_quantize", got ${describeValue(p.wts_algo)}`);
  if (typeof p.channel_wise !== 'boolean') problems.push(`${where}.weight_quant_params.channel_wise must be a boolean`);
  else if (p.channel_wise && layer?.weight && layer.weight.channelAxis < 0) {
    problems.push(`${where}.weight_quant_params.channel_wise is true but a ${layer.opType} with groups has no per-channel weight axis`);
  }
}

/**
 * Checks a config against the model's layers and collects every problem before throwing one
 * QuantConfigError, so a user fixes an edited file in one go.
 */
export function validateQuantConfig(config: unknown, layers: readonly LayerInfo[], source?: string, hint: NameHint = plainHint(layers)): asserts config is QuantConfig {
  const problems: string[] = [];
  if (!isObj(config)) throw new QuantConfigError(['the config must be a JSON object'], source);
  if (config.version !== 1) problems.push(`version must be 1, got ${describeValue(config.version)}`);
  if (!(Number.isInteger(config.batch_num) && (config.batch_num as number) >= 1 && (config.batch_num as number) <= MAX_BATCH_NUM)) {
    problems.push(`batch_num must be an integer in [1, ${MAX_BATCH_NUM}], got ${describeValue(config.batch_num)}`);
  }
  if (typeof config.activation_offset !== 'boolean') problems.push(`activation_offset must be a boolean, got ${describeValue(config.activation_offset)}`);
  if (config.do_fusion !== undefined && typeof config.do_fusion !== 'boolean') problems.push(`do_fusion must be a boolean, got ${describeValue(config.do_fusion)}`);
  for (const k of ['quantize_outputs', 'cross_layer_equalization', 'bias_correction', 'activation_equalization', 'skip_slow_layers'] as const) {
    if (config[k] !== undefined && typeof config[k] !== 'boolean') problems.push(`${k} must be a boolean, got ${describeValue(config[k])}`);
  }
  if (config.channel_splitting !== undefined && !(typeof config.channel_splitting === 'number' && config.channel_splitting >= 0 && config.channel_splitting <= 1)) {
    problems.push(`channel_splitting must be a number in [0, 1] (the share of extra input channels a layer may get; 0 turns it off), got ${describeValue(config.channel_splitting)}`);
  }
  if (config.deploy_target !== undefined && !(DEPLOY_TARGETS as readonly unknown[]).includes(config.deploy_target)) {
    problems.push(`deploy_target must be one of ${DEPLOY_TARGETS.map((t) => `'${t}'`).join(', ')}, got ${describeValue(config.deploy_target)}`);
  }
  if (config.weight_rounding !== undefined && !(WEIGHT_ROUNDINGS as readonly unknown[]).includes(config.weight_rounding)) {
    problems.push(`weight_rounding must be one of ${WEIGHT_ROUNDINGS.map((r) => `'${r}'`).join(', ')}, got ${describeValue(config.weight_rounding)}`);
  }
  if (config.skip_fusion_layers !== undefined && !(Array.isArray(config.skip_fusion_layers) && config.skip_fusion_layers.every((s) => typeof s === 'string'))) {
    problems.push('skip_fusion_layers must be an array of layer names');
  }
  const byName = new Map(layers.map((l) => [l.name, l]));
  if (Array.isArray(config.skip_fusion_layers)) {
    for (const n of config.skip_fusion_layers) {
      if (typeof n === 'string' && byName.get(n)?.opType !== 'Conv') problems.push(`skip_fusion_layers: '${n}' is not a Conv layer of the model`);
    }
  }
  for (const [name, entry] of Object.entries(config)) {
    if (GLOBAL_KEYS.has(name)) continue;
    const where = `layer ${quoteName(name)}`;
    const layer = byName.get(name);
    if (!layer) {
      const global = didYouMean(name, GLOBAL_KEYS);
      problems.push(global ? `${quoteName(name)} is neither a setting nor a layer of the model${global}` : `${where} is not a quantizable layer of the model${hint(name)}`);
      continue;
    }
    if (!isObj(entry)) {
      problems.push(`${where} must be an object`);
      continue;
    }
    for (const k of Object.keys(entry)) {
      if (!['quant_enable', 'activation_quant_params', 'weight_quant_params'].includes(k)) problems.push(`${where}.${k} is not a known field`);
    }
    if (typeof entry.quant_enable !== 'boolean') problems.push(`${where}.quant_enable must be a boolean, got ${describeValue(entry.quant_enable)}`);
    if (!layer.weightOnly) checkActivation(where, entry.activation_quant_params, problems);
    else if (entry.activation_quant_params !== undefined) {
      problems.push(`${where} is ${layer.opType === 'Gather' ? 'a Gather from a constant table' : `an ${layer.opType}`}, quantized weight-only: remove activation_quant_params`);
    }
    if (layer.weight) checkWeight(where, entry.weight_quant_params, layer, problems);
    else if (entry.weight_quant_params !== undefined) problems.push(`${where} is a ${layer.opType} and has no weight: remove weight_quant_params`);
  }
  if (problems.length) throw new QuantConfigError(problems, source);
}

/** A deep copy, so callers can change `quant_enable` without touching the user's object. */
export function cloneQuantConfig(config: QuantConfig): QuantConfig {
  return structuredClone(config);
}
