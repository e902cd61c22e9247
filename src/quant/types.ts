/**
 * What post-training quantization takes and gives: its options, its result, and the session state the stages share.
 */
import { type Kernels } from '../kernels/types.js';
import { type ModelProto } from '../onnx/types.js';
import { type CreateSessionOptions } from '../runtime/ort.js';
import { type CalibrationStats, type KeptBatch, type Sample } from './calibrate/calibrate.js';
import { type LayerQuantConfig, type QuantConfig } from './config/config.js';
import { type QuantRecord } from './config/record.js';
import { type ActivationEqualized } from './decide/activation-equalize.js';
import { type ChannelSplit } from './decide/channel-split.js';
import { type OutputFidelity } from './export/fidelity.js';
import { type Parity } from './export/parity.js';
import { type FloatOnlyNode, type QuantWarning } from './prepare/coverage.js';
import { type EqualizedPair } from './prepare/equalize.js';
import { type FoldedAffine, type FoldedPair } from './prepare/fusion.js';
import { type LayerInfo, type SkippedNode } from './prepare/registry.js';

export type ModelSource = ModelProto | Uint8Array | ArrayBuffer | string | URL;
/** What calibrate() needs beyond the caller's options: quantizeModel keeps batches to measure its outputs. */
export type CalibrateOptions = QuantizeModelOptions & { keepOutputs?: boolean };

/** Lists every quantizable layer in AMCT's config form; with `configFile` also writes it (Node/Deno). */
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
  /** The same as `phase`; with `done` and `total`, what a renderer needs without reading `message`. */
  stage: 'calibration';
  done: number;
  total: number;
  /** Which pass over the batches: the calibration itself, or activation equalization's measuring pass before it. */
  step: 'calibration' | 'activation equalization' | 'weight scaling';
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
  /**
   * For a quantized layer with a weight: one scale per output channel, one for the tensor, or one per
   * block of `block_size` weights (the 'webgpu' target's MatMulNBits and GatherBlockQuantized).
   */
  weights?: 'per-channel' | 'per-tensor' | 'per-block';
  /** For a block-quantized layer: its weights' bits (4 or 8). */
  weightBits?: 4 | 8;
  /** Why a quantized layer's weight is per tensor. */
  weightsReason?: string;
  /** What the automatic calibration changed to keep the layer quantized rather than in float (see `repairs`). */
  repair?: string;
  /** Whether the quantized layer's bias was corrected (`bias_correction`; the shifts are in the record). */
  biasCorrected?: boolean;
  /** Why a quantized layer is set up as it is, where the default chose for it (e.g. 16-bit activations before a Log). */
  note?: string;
  /**
   * Left float by the default config (`skip_slow_layers`, or a layer feeding a Log where 16-bit
   * activations need an opset the model cannot reach): a choice made for speed or accuracy, which
   * `reason` explains, so it raises no LEFT_FLOAT warning.
   */
  floatByDefault?: true;
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
  /**
   * The deploy model against the fake-quant model on the kept calibration batches, on the runtime
   * calibration used (see export/parity.ts); below PARITY_MIN_COSINE (0.999) a LOW_PARITY warning
   * and saveModel refuses without `{ force: true }`. Absent where outputFidelity is empty.
   */
  parity?: Parity;
  /** The data passes that ran, in order (activation equalization and channel splitting, adaptive rounding, bias correction). */
  passes: PassRun[];
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
  /** Depthwise layers, and linear layers behind a normalization, whose input channels activation equalization rescaled (`activation_equalization`). */
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
  /** The 'webgpu' target: bytes of the weight-only layers' weights in the deploy model, and as float32. */
  weightBytes?: { quantized: number; float: number };
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
  /**
   * The model before any rewrite (BN folding included): what "the float model" means. A structural
   * copy (see cloneModel) that shares its unchanged tensors' bytes with `work`; never written to.
   */
  original: ModelProto;
  /** Its size encoded, in bytes. */
  originalBytes: number;
  config: QuantConfig;
  /** Layers as the config lists them (before fusion) and after fusion (weights renamed). */
  declared: LayerInfo[];
  /** Layers with a quantized activation in the working model (calibrated, searched, rewritten). */
  layers: LayerInfo[];
  /** Weight-only layers in the working model (embeddings, LSTM/GRU/RNN, and every weighted layer under a weight-only target; see export/weight-only.ts). */
  weightOnly: LayerInfo[];
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
  /** Layers in If branches that no calibration batch took, and why they stay float. */
  unreached?: Map<string, string>;
  /** Per block-quantized layer whose input channels were rescaled (decide/weight-scaling.ts), the factors; set with activationEqualized. */
  weightScaling?: Map<string, number[]>;
}
export function layerConfig(config: QuantConfig, name: string): LayerQuantConfig | undefined {
  const entry = config[name];
  return typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? (entry as LayerQuantConfig) : undefined;
}
export type RoundingPassOptions = CreateSessionOptions & { activationBytes?: ReadonlyMap<string, number>; signal?: AbortSignal };

/** When a data pass runs: before calibration (changing what it measures) or after it (refining quantized layers). */
export type PassStage = 'before-calibration' | 'after-calibration';

/** Which passes ran on a quantizeModel call, in order, with what they did where they report it. */
export interface PassRun {
  name: string;
  stage: PassStage;
  /** The config values it ran with (the record keeps the same, see PassRecord). */
  settings: Record<string, unknown>;
  measuringPasses: number;
}
