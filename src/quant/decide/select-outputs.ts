/**
 * Which calibrated output quantizations stay: those that keep the first calibration batch within fidelity.
 */
import type { ModelProto } from '../../onnx/types.js';
import { opsetVersion } from '../../onnx/graph.js';
import { type CreateSessionOptions, type InferenceSession, Tensor, createSession } from '../../runtime/ort.js';
import { type Feeds } from '../calibrate/calibrate.js';
import { type QuantRecord } from '../config/record.js';
import { type LayerQuantization, writeFakeQuant } from '../export/rewrite.js';
import { clone } from '../prepare/prepare.js';
import { type QuantizationSession } from '../types.js';
import { type OutputQuantization, placeOutputs } from './outputs.js';

/** Relative growth of the output error (1 − cosine to float) that quantizing layer outputs may cause. */
export const OUTPUT_TOLERANCE = 0.1;
/** Absolute slack on that error, so models quantized almost losslessly are not held to zero. */
export const OUTPUT_SLACK = 1e-5;
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
export async function selectOutputs(
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
  const once = async (model: ModelProto) => {
    const session = await createSession(model, options);
    try {
      return await run(session);
    } finally {
      await session.release();
    }
  };
  const reference = samples.every((s) => s.output) ? samples.map((s) => s.output!) : await once(q.work);
  const errorOf = (got: Float32Array[]) => got.reduce((sum, o, i) => sum + 1 - q.kernels.cosine(reference[i]!, o), 0) / got.length;
  // One session with a switch per output (Where needs opset 9), else a model per test.
  let error: (chosen: readonly OutputQuantization[]) => Promise<number>;
  let switchboard: InferenceSession | undefined;
  if ((opsetVersion(q.work) ?? 1) >= 9) {
    const fake = clone(q.work);
    const flags = writeFakeQuant(fake, plan, candidates, true);
    switchboard = await createSession(fake, options);
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
      return errorOf(await once(fake));
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
export function outputCandidates(q: QuantizationSession, plan: readonly LayerQuantization[], record: QuantRecord): OutputQuantization[] {
  if (q.config.quantize_outputs === false) return [];
  return placeOutputs(q.work.graph!, plan, true).outputs.filter((o) => !o.exact && record.layers[o.layer]?.output_quant === undefined);
}
/**
 * Keeps every calibrated output quantization `plan` allows (marks them in the record), for callers
 * whose own evaluation decides, as the automatic calibration does.
 */
export function keepAllOutputs(q: QuantizationSession, plan: readonly LayerQuantization[], record: QuantRecord): void {
  for (const o of outputCandidates(q, plan, record)) record.layers[o.layer]!.output_quant = true;
}
/** The largest n such that the first n of `order` stay within the bound (bisection; monotone in practice). */
export async function longestPassingPrefix(order: OutputQuantization[], error: (chosen: readonly OutputQuantization[]) => Promise<number>): Promise<number> {
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
