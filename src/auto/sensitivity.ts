/**
 * Layer sensitivity, two ways. AMCT's ('layer-output'): each quantized layer runs alone, in float and
 * fake-quantized, on the input activations the calibration batches produce (see quant/layerwise.ts),
 * and its two outputs are compared: one pass, whatever the number of layers. 'model-output': each
 * layer is quantized alone in the calibrated model and the model's output on the first calibration
 * batch is compared with float's, so a layer counts by what its error does to the output, downstream
 * amplification included: one session per layer. The lowest scores are the layers quantization hurts most.
 */
import type { Kernels } from '../kernels/types.js';
import type { ModelProto } from '../onnx/types.js';
import type { BatchSource, Sample } from '../quant/calibrate/calibrate.js';
import { checkSignal } from '../runtime/deadline.js';
import { createSession, type CreateSessionOptions } from '../runtime/ort.js';
import { compareLayers, type LayerwiseOptions } from '../quant/calibrate/layerwise.js';
import type { Compared } from '../quant/calibrate/layerwise.js';

/** Similarity of a layer's fake-quant output to its float output; higher is more similar. */
export type SensitivityFunction = (float: Float32Array, quantized: Float32Array) => number;
export type SensitivityName = 'cosine' | 'mse' | 'sqnr';
export const RANKINGS = Object.freeze(['layer-output', 'model-output'] as const);
export type RankingName = (typeof RANKINGS)[number];

export interface LayerScore {
  layer: string;
  score: number;
}

function isAllZero(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) return false;
  return true;
}

/** The built-in measures: AMCT's 0.5 + 0.5·cos (1 when the float output is all zero), −MSE, SQNR in dB. */
export function sensitivityFunction(k: Kernels, s: SensitivityName | SensitivityFunction): SensitivityFunction {
  if (typeof s === 'function') return s;
  switch (s) {
    case 'cosine':
      return (f, q) => (isAllZero(f) ? 1 : isAllZero(q) ? 0 : 0.5 + 0.5 * k.cosine(f, q));
    case 'mse':
      return (f, q) => -k.mse(f, q);
    case 'sqnr':
      return (f, q) => k.sqnr(f, q);
  }
}

export type RankingOptions = LayerwiseOptions;

/**
 * Scores every layer of `plan` (mean over the calibration batches) and returns them sorted
 * ascending: the first is the most sensitive.
 */
export async function rankLayers(
  work: ModelProto,
  plan: readonly Compared[],
  batches: BatchSource,
  similarity: SensitivityFunction,
  options: RankingOptions,
): Promise<LayerScore[]> {
  const totals = new Map<string, { sum: number; n: number }>();
  await compareLayers(work, plan, batches, options, (p, float, fake) => {
    const score = similarity(float, fake);
    const t = totals.get(p.layer.name) ?? { sum: 0, n: 0 };
    t.sum += score;
    t.n++;
    totals.set(p.layer.name, t);
  });
  return plan
    .map((p) => {
      const t = totals.get(p.layer.name)!;
      return { layer: p.layer.name, score: t.sum / t.n };
    })
    .sort((a, b) => a.score - b.score);
}

/**
 * Scores every layer of `plan` by the model's first output on `samples` with that layer alone
 * quantized (`modelWith` builds that fake-quant model), mean over the samples, sorted ascending.
 */
export async function rankByModelOutput<T extends Compared>(
  plan: readonly T[],
  modelWith: (only: T) => ModelProto,
  samples: readonly Required<Sample>[],
  similarity: SensitivityFunction,
  options: CreateSessionOptions & { signal?: AbortSignal; onLayer?: (done: number, total: number, score: LayerScore) => void },
): Promise<LayerScore[]> {
  const scores: LayerScore[] = [];
  for (const [i, p] of plan.entries()) {
    checkSignal(options.signal, `ranking layer ${i + 1}`);
    const session = await createSession(modelWith(p), options);
    try {
      let sum = 0;
      for (const sample of samples) {
        const out = await session.run(sample.feeds);
        sum += similarity(sample.output, out[session.outputNames[0]!]!.data as Float32Array);
      }
      scores.push({ layer: p.layer.name, score: sum / samples.length });
    } finally {
      await session.release();
    }
    options.onLayer?.(i + 1, plan.length, scores[scores.length - 1]!);
  }
  return scores.sort((a, b) => a.score - b.score);
}
