/**
 * The messages between the app's page and its worker. Only plain data crosses (structured clone);
 * files travel as ArrayBuffers handed over, not copied (the page keeps no copy of a model).
 */
import type { DeployTarget } from '../quant/config/config.js';

export interface NamedBytes {
  name: string;
  bytes: ArrayBuffer;
}

/** How images become a model input: resized to width × height, scaled to [0, 1], then (x − mean) / std per channel. */
export interface ImageSettings {
  width: number;
  height: number;
  /** 1: luminance; 3: RGB. */
  channels: 1 | 3;
  layout: 'NCHW' | 'NHWC';
  mean: number[];
  std: number[];
}

export type Precision = '8' | '4' | '4,8';

export interface Job {
  model: NamedBytes;
  /** One .npy or .npz, or images (decoded in the worker with `images`). */
  data: NamedBytes[];
  images?: ImageSettings;
  /** Labels (one integer per row, .npy or text): the metric is top-1 accuracy; without, fidelity to float. */
  labels?: NamedBytes;
  /** Largest drop of the metric (accuracy, or agreement with the float model) the result may have. */
  maxDrop: number;
  batchSize: number;
  target: DeployTarget;
  precision: Precision;
  /** Quantize the layers the default config leaves off as slower in int8 on the target (skip_slow_layers off). */
  allLayers?: boolean;
}

/** What the page learns of a model before a run: enough to suggest image settings and say what will be quantized. */
export interface ModelSummary {
  name: string;
  bytes: number;
  inputs: { name: string; type?: string; dims?: (number | string | undefined)[] }[];
  nodes: number;
  /** Layers the default config lists for the chosen target, and how many it turns on. */
  layers: number;
  enabled: number;
  /** Settings that fit the model's input, where it looks like an image input. */
  images?: ImageSettings;
}

export type ToWorker =
  | { type: 'inspect'; model: NamedBytes; target: DeployTarget; allLayers?: boolean }
  | { type: 'run'; job: Job };

export interface OutputDownload {
  /** What it is, for the page's hooks: deploy, fake-quant, config, record, summary, report. */
  kind: string;
  file: string;
  data: ArrayBuffer | string;
}

export interface RunSummary {
  passed: boolean;
  message: string;
  originalMetric: number;
  quantizedMetric: number;
  metricName: string;
  evaluations: number;
  layers: { name: string; opType: string; quantized: boolean; detail: string }[];
  modelBytes: number;
  deployBytes?: number;
  seconds: number;
  backend: string;
}

export type FromWorker =
  | { type: 'inspected'; summary: ModelSummary }
  | { type: 'progress'; phase: string; message: string; fraction: number }
  | { type: 'score'; layer: string; score: number; done: number; total: number }
  | { type: 'ranking'; scores: { layer: string; score: number }[] }
  | { type: 'done'; summary: RunSummary; files: OutputDownload[] }
  | { type: 'error'; code: string; message: string; during: 'inspect' | 'run' };
