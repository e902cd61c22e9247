/**
 * What the app's worker does with a job, apart from messaging: the user's files made into feeds and
 * an evaluator, the automatic calibration run, and its result made into a summary and downloads named
 * as the CLI names its files. Runs wherever the library runs (the worker, or a test in Node).
 */
import { accuracyBasedAutoCalibration, autoCalibrationFiles, type AutoCalibrationResult, type AutoProgressEvent } from '../auto/auto-calibration.js';
import type { AutoCalibrationEvaluator } from '../auto/evaluator.js';
import { ClassificationEvaluator, FidelityEvaluator } from '../auto/evaluators.js';
import { feedsFromBytes } from '../data/feeds.js';
import { parseNpy } from '../data/npy.js';
import { UsageError } from '../errors.js';
import { declaredInputs, type DeclaredInput } from '../onnx/inputs.js';
import { adoptModel } from '../onnx/model.js';
import type { Feeds } from '../quant/calibrate/calibrate.js';
import { isWeightOnlyTarget, layerEntries, type DeployTarget } from '../quant/config/config.js';
import { createQuantConfig } from '../quant/quantize.js';
import { imageFeeds, suggestImageSettings } from './images.js';
import type { Job, ModelSummary, NamedBytes, OutputDownload, RunSummary } from './protocol.js';

/** Calibration batches at most: the rest of the data is only evaluated. */
const MAX_CALIBRATION_BATCHES = 4;
const NUMPY = /\.(npy|npz)$/i;

/** `model.onnx` → `model`: the prefix of the files, as `--save model` gives them in the CLI. */
export function filePrefix(modelName: string): string {
  return modelName.replace(/^.*[\\/]/, '').replace(/\.onnx$/i, '') || 'model';
}

export async function inspectModel(file: NamedBytes, target: DeployTarget, allLayers = false): Promise<ModelSummary> {
  const model = await adoptModel(new Uint8Array(file.bytes));
  const config = await createQuantConfig(model, { deployTarget: target, ...(allLayers ? { skipSlowLayers: false } : {}) });
  const layers = layerEntries(config);
  const inputs = declaredInputs(model);
  return {
    name: file.name,
    bytes: file.bytes.byteLength,
    inputs: inputs.map((i) => ({ name: i.name, ...(i.type ? { type: i.type } : {}), ...(i.dims ? { dims: [...i.dims] } : {}) })),
    nodes: model.graph?.node?.length ?? 0,
    layers: layers.length,
    enabled: layers.filter(([, l]) => l.quant_enable).length,
    ...(inputs.length === 1 && suggestImageSettings(inputs[0]!) ? { images: suggestImageSettings(inputs[0]!) } : {}),
  };
}

/** The job's data as batches of feeds: one .npy/.npz, or images for a model of one image input. */
export async function jobFeeds(job: Job, inputs: readonly DeclaredInput[]): Promise<Feeds[]> {
  if (job.data.length === 0) throw new UsageError('no calibration data: choose a .npy (one input), a .npz (one array per input) or images');
  const numpy = job.data.filter((f) => NUMPY.test(f.name));
  if (numpy.length) {
    if (job.data.length > 1) throw new UsageError(`give one .npy or .npz file, or images only (got ${job.data.length} files: ${job.data.slice(0, 4).map((f) => f.name).join(', ')}${job.data.length > 4 ? ', …' : ''})`);
    return feedsFromBytes(numpy[0]!.name, new Uint8Array(numpy[0]!.bytes), inputs, { batchSize: job.batchSize });
  }
  if (inputs.length !== 1) throw new UsageError(`the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); images feed a model of one input: give a .npz with one array per input`);
  const settings = job.images ?? suggestImageSettings(inputs[0]!);
  if (!settings) throw new UsageError(`input '${inputs[0]!.name}' is not an image input ([N, C, H, W] or [N, H, W, C] with 1 or 3 channels): give its data as a .npy`);
  return imageFeeds(job.data, inputs[0]!, settings, job.batchSize);
}

/** One class per row: a .npy of whole numbers, or text with one number per line (or separated by commas or spaces). */
export function parseLabels(file: NamedBytes): number[] {
  let values: number[];
  if (/\.npy$/i.test(file.name)) {
    const a = parseNpy(new Uint8Array(file.bytes), file.name);
    values = Array.from(a.data as ArrayLike<number | bigint>, Number);
  } else {
    const text = new TextDecoder().decode(file.bytes).trim();
    values = text === '' ? [] : text.split(/[\s,;]+/).map(Number);
  }
  const bad = values.findIndex((v) => !Number.isInteger(v) || v < 0);
  if (bad >= 0) throw new UsageError(`${file.name}: label ${bad + 1} is not a class index (a whole number >= 0)`);
  if (values.length === 0) throw new UsageError(`${file.name}: no labels`);
  return values;
}

function evaluatorFor(job: Job, feeds: Feeds[]): { evaluator: AutoCalibrationEvaluator; metricName: string } {
  const common = { maxDrop: job.maxDrop, batchNum: Math.min(feeds.length, MAX_CALIBRATION_BATCHES) };
  if (!job.labels) return { evaluator: new FidelityEvaluator(feeds, common), metricName: 'agreement with float' };
  const labels = parseLabels(job.labels);
  if (Math.ceil(labels.length / job.batchSize) !== feeds.length) {
    throw new UsageError(`${job.labels.name}: ${labels.length} labels, but the data gives ${feeds.length} batch(es) of up to ${job.batchSize} rows: give one label per row of the data`);
  }
  const data = feeds.map((f, i) => ({ feeds: f, labels: labels.slice(i * job.batchSize, (i + 1) * job.batchSize) }));
  return { evaluator: new ClassificationEvaluator(data, common), metricName: 'top-1 accuracy' };
}

/** The file kind a download button is for, from the file name the CLI would give it. */
function kindOf(file: string): string {
  const m = /_(fake_quant_model|deploy_model|quant_config|record|auto_calibration|report)\.\w+$/.exec(file);
  return ({ fake_quant_model: 'fake-quant', deploy_model: 'deploy', quant_config: 'config', record: 'record', auto_calibration: 'summary', report: 'report' } as Record<string, string>)[m?.[1] ?? ''] ?? 'file';
}

/** The bytes as an ArrayBuffer of their own, to hand to the page without a copy where they already are one. */
function ownBuffer(a: Uint8Array): ArrayBuffer {
  const whole = a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer;
  return whole ? (a.buffer as ArrayBuffer) : (a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength) as ArrayBuffer);
}

export interface JobRun {
  summary: RunSummary;
  files: OutputDownload[];
  result: AutoCalibrationResult;
}

export async function runJob(
  job: Job,
  options: { executionProviders: string[]; backend: string; signal?: AbortSignal; onProgress: (e: AutoProgressEvent) => void },
): Promise<JobRun> {
  const t0 = performance.now();
  if (!(job.maxDrop >= 0 && job.maxDrop <= 1)) throw new UsageError(`the largest drop must be a number from 0 to 1, got ${job.maxDrop}`);
  if (!Number.isInteger(job.batchSize) || job.batchSize < 1) throw new UsageError(`the batch size must be a whole number >= 1, got ${job.batchSize}`);
  if (job.precision !== '8' && !isWeightOnlyTarget(job.target)) throw new UsageError(`${job.precision === '4' ? '4-bit' : 'mixed 4/8-bit'} weights need the WebGPU or wasm target (the CPU target's int8 kernels take 8-bit weights)`);
  // One parse, over the file's own bytes (the worker owns them): the entry points copy a parsed model
  // structurally, so the run holds the float weights once.
  const model = await adoptModel(new Uint8Array(job.model.bytes));
  const feeds = await jobFeeds(job, declaredInputs(model));
  const { evaluator, metricName } = evaluatorFor(job, feeds);
  const batchNum = Math.min(feeds.length, MAX_CALIBRATION_BATCHES);
  const weightBits = job.precision === '4,8' ? ([4, 8] as const) : job.precision === '4' ? 4 : 8;
  // The mixed search starts from a config at 4 bits, as the CLI's --weight-bits 4,8 does.
  const config = await createQuantConfig(model, { batchNum, deployTarget: job.target, ...(weightBits !== 8 ? { weightBits: 4 as const } : {}), ...(job.allLayers ? { skipSlowLayers: false } : {}) });
  const result = await accuracyBasedAutoCalibration(model, evaluator, {
    config,
    ...(Array.isArray(weightBits) ? { weightBits } : {}),
    executionProviders: options.executionProviders,
    signal: options.signal,
    layerErrors: true,
    onProgress: options.onProgress,
  });
  const modelBytes = job.model.bytes.byteLength;
  const files = autoCalibrationFiles(result, filePrefix(job.model.name), { floatModelBytes: modelBytes }).map(({ file, data }) => ({
    kind: kindOf(file),
    file,
    data: typeof data === 'string' ? data : ownBuffer(data),
  }));
  const summary: RunSummary = {
    passed: result.passed,
    message: result.message,
    originalMetric: result.originalMetric,
    quantizedMetric: result.quantizedMetric,
    metricName,
    evaluations: result.evaluations,
    layers: result.layers.map((l) => ({
      name: l.name,
      opType: l.opType,
      quantized: l.quantized,
      detail: l.quantized ? [l.weightBits && `${l.weightBits}-bit weights`, l.weights, l.repair && `repaired: ${l.repair}`, l.note].filter(Boolean).join(', ') : (l.reason ?? ''),
    })),
    modelBytes,
    ...(result.deployModel ? { deployBytes: result.deployModel.length } : {}),
    seconds: (performance.now() - t0) / 1000,
    backend: options.backend,
  };
  return { summary, files, result };
}
