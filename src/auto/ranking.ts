/**
 * The rankings the search can use, as one shape: given the calibrated plan and the calibration
 * batches, the layers ordered most sensitive first (see sensitivity.ts for the two measures).
 */
import { EvaluationError } from '../errors.js';
import type { ModelProto } from '../onnx/types.js';
import type { CreateSessionOptions } from '../runtime/ort.js';
import { replayBatches, type BatchSource, type Sample } from '../quant/calibrate/calibrate.js';
import type { Compared } from '../quant/calibrate/layerwise.js';
import type { LayerQuantization } from '../quant/export/rewrite.js';
import type { WeightOnlyQuantization } from '../quant/export/weight-only.js';
import type { PreparedQuantization } from '../quant/prepared.js';
import { rankByModelOutput, rankLayers, type LayerScore, type RankingName, type RankingOptions, type SensitivityFunction } from './sensitivity.js';

export interface RankingContext {
  p: PreparedQuantization;
  plan: readonly LayerQuantization[];
  /** The searched weight-only layers (the 'webgpu' target's), ranked with the rest. */
  weightOnly?: readonly WeightOnlyQuantization[];
  batches: BatchSource;
  similarity: SensitivityFunction;
  options: RankingOptions;
  /** Progress of the ranking: steps done of total, and the layer just scored where a step scores one. */
  onStep: (done: number, total: number, what: string, scored?: LayerScore) => void;
}

export type Ranking = (ctx: RankingContext) => Promise<LayerScore[]>;

/** Calibration batches the model-output ranking compares on: enough to steady the order, few enough to keep. */
export const RANKING_BATCHES = 4;

export const RANKING: Readonly<Record<RankingName, Ranking>> = Object.freeze({
  'model-output': async ({ p, plan, weightOnly = [], batches, similarity, options, onStep }) =>
    rankByModelOutput<Compared>([...plan, ...weightOnly], (only) => ('weights' in only ? p.fakeQuantProto([], [only]) : p.fakeQuantProto([only], [])).model, await rankingSamples(p.session.work, batches, options), similarity, {
      ...options,
      onLayer: (done, total, scored) => onStep(done, total, `layer ${done}/${total}`, scored),
    }),
  'layer-output': ({ p, plan, weightOnly = [], batches, similarity, options, onStep }) =>
    rankLayers(p.session.work, [...plan, ...weightOnly], batches, similarity, {
      ...options,
      onBatch: (b) => onStep(b.batch, options.batchNum, `group ${b.group}/${b.groups}, batch ${b.batch}/${options.batchNum}`),
    }),
});

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
