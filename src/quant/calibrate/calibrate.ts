/**
 * Runs the user's calibration batches through a copy of the model that also outputs the input
 * activation of every layer being calibrated, and hands each activation to its observers, in one
 * pass. Memory: the observers hold fixed-size statistics (histograms, see observers/), so it does
 * not grow with `batch_num`; one batch's activations are alive at a time.
 */
import { AutoquantError, CalibrationError, ValidationError } from '../../errors.js';
import { checkSignal, withDeadline } from '../../runtime/deadline.js';
import { describeError, describeValue, quoteName } from '../../text.js';
import type { Kernels } from '../../kernels/types.js';
import { cloneModel } from '../../onnx/model.js';
import { threadOutputs } from '../../onnx/scope.js';
import type { ModelProto } from '../../onnx/types.js';
import { onnx } from '../../onnx/types.js';
import { createSession, runtimeName, Tensor, type CreateSessionOptions, type InferenceSession, type OrtTensor } from '../../runtime/ort.js';
import { checkFeeds, declaredInputs, type DeclaredInput } from '../../onnx/inputs.js';
import type { ActivationObserver, ActivationResult } from './observers/index.js';

export type Feeds = Record<string, OrtTensor>;

/** What a calibration callback receives: the parts of an onnxruntime-web InferenceSession it needs. */
export interface CalibrationSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Feeds): Promise<Record<string, OrtTensor>>;
}

export type CalibrationCallback = (session: CalibrationSession) => Promise<void> | void;
export type CalibrationSource = CalibrationCallback | Iterable<Feeds> | AsyncIterable<Feeds>;

export interface CalibrationOptions extends CreateSessionOptions {
  batchNum: number;
  onBatch?: (info: { pass: number; batch: number; batchNum: number }) => void;
  /** Checks each activation for NaN and ±Infinity (see calibrateActivations). */
  kernels: Kernels;
  signal?: AbortSignal;
  /** Also keep the first batches' feeds and the model's own float outputs on them (see KeptBatch). */
  keepOutputs?: boolean;
  /**
   * Values inside If branches whose only question is whether any batch computed them (a branch
   * layer's output, where its input comes from outside the branch); the unreached are returned.
   */
  probes?: readonly string[];
  /**
   * Tensors whose size per batch is recorded in `activationBytes` without observing them (the inputs
   * of weight-only layers, so that running them alone later can be grouped within a memory budget).
   */
  sizes?: readonly string[];
}

/** Per activation, the observers of the layers reading it, keyed by layer name. */
export type ObserverMap = Map<string, Map<string, ActivationObserver>>;

export interface CalibrationStats {
  batches: number;
  /** Passes over the batches (always 1). */
  passes: number;
  /** Largest number of bytes the observers held at once. */
  peakObserverBytes: number;
  /** Bytes of one batch of each calibrated activation (the sensitivity ranking plans its groups with them). */
  activationBytes: Map<string, number>;
  /** Layers whose input no batch reached (inside an If branch no batch took): they stay float. */
  unreached?: string[];
}

/** Default bound on the activations the sensitivity ranking holds per group of layers. */
export const DEFAULT_CALIBRATION_MEMORY = 512 * 2 ** 20;

/** Takes the first `n` feeds of an (async) iterable, so every pass (calibration, ranking) sees the same batches. */
async function firstFeeds(source: Iterable<Feeds> | AsyncIterable<Feeds>, n: number): Promise<Feeds[]> {
  const out: Feeds[] = [];
  for await (const feeds of source as AsyncIterable<Feeds>) {
    out.push(feeds);
    if (out.length >= n) break;
  }
  return out;
}

/**
 * `model` with `names` as outputs too; a value inside an If branch comes out under another name
 * (`threaded`: output → value), with no elements from a run that took another branch.
 */
function withOutputs(model: ModelProto, names: readonly string[]): { model: ModelProto; threaded: Map<string, string> } {
  const copy = cloneModel(model);
  const threaded = threadOutputs(copy, names);
  const graph = copy.graph!;
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  const inBodies = new Set(threaded.values());
  graph.output = [...(graph.output ?? []), ...names.filter((n) => !existing.has(n) && !inBodies.has(n)).map((name) => onnx.ValueInfoProto.create({ name }))];
  return { model: copy, threaded };
}

export interface BatchSource {
  /** The user's callback, or the first `batchNum` feeds of an iterable (taken once, replayed per pass). */
  callback?: CalibrationCallback;
  feeds?: Feeds[];
}

/**
 * Normalizes a calibration source so that it can be replayed pass after pass. Feeds given as data
 * are checked against `inputs` here, every batch, before any session exists.
 */
export async function toBatchSource(source: CalibrationSource, batchNum: number, inputs?: readonly DeclaredInput[]): Promise<BatchSource> {
  if (typeof source === 'function') return { callback: source };
  const iterable = typeof source === 'object' && source !== null && (Symbol.iterator in source || Symbol.asyncIterator in source);
  if (!iterable) {
    throw new CalibrationError(`calibration must be a callback (session) => …, or an array or (async) iterable of feeds, got ${describeValue(source)}`);
  }
  let feeds: Feeds[];
  try {
    feeds = await firstFeeds(source, batchNum);
  } catch (cause) {
    throw new CalibrationError(`reading the calibration data failed: ${describeError(cause)}`, { cause });
  }
  if (feeds.length === 0) throw new ValidationError('the calibration data is empty: at least one batch of feeds is needed');
  if (inputs) feeds.forEach((f, i) => checkFeeds(f, inputs, `calibration batch ${i + 1}`));
  return { feeds };
}

/**
 * One pass over the calibration batches through `model` extended with the outputs `fetch`: for each
 * of the first `batchNum` batches, `onBatch` receives all outputs (awaited before the next batch, so
 * only one batch's activations are alive). The caller's callback sees only the model's own outputs.
 * Returns how many batches were handed to `onBatch`.
 * @throws CalibrationError when no batch ran, feeds are wrong, or the runtime rejects them.
 */
export async function replayBatches(
  model: ModelProto,
  fetch: readonly string[],
  source: BatchSource,
  options: CreateSessionOptions & { batchNum: number; signal?: AbortSignal },
  onBatch: (outputs: Record<string, OrtTensor>, batch: number, feeds: Feeds) => Promise<void> | void,
): Promise<number> {
  const userOutputs = (model.graph?.output ?? []).map((o) => o.name ?? '');
  const inputs = declaredInputs(model);
  const extended = withOutputs(model, fetch);
  const session: InferenceSession = await createSession(extended.model, options);
  let batch = 0;
  const wrapper: CalibrationSession = {
    inputNames: session.inputNames,
    outputNames: userOutputs,
    run: async (feeds: Feeds) => {
      checkSignal(options.signal, `calibration batch ${batch + 1}`);
      checkFeeds(feeds, inputs, `calibration batch ${batch + 1}`);
      let out: Record<string, OrtTensor>;
      try {
        out = (await session.run(feeds)) as Record<string, OrtTensor>;
      } catch (cause) {
        throw new CalibrationError(`${runtimeName(session)} could not run calibration batch ${batch + 1}: ${describeError(cause)}`, { cause });
      }
      for (const [output, value] of extended.threaded) out[value] = out[output]!;
      if (batch < options.batchNum) await onBatch(out, batch++, feeds);
      const result: Record<string, OrtTensor> = {};
      for (const n of userOutputs) if (out[n]) result[n] = out[n];
      return result;
    },
  };
  try {
    if (source.feeds) {
      for (const feeds of source.feeds) await wrapper.run(feeds);
    } else {
      await withDeadline(
        () => source.callback!(wrapper),
        (cause) => (cause instanceof AutoquantError ? cause : new CalibrationError(`the calibration callback failed: ${describeError(cause)}`, { cause })),
        { signal: options.signal, what: 'the calibration callback' },
      );
    }
  } finally {
    await session.release();
  }
  if (batch === 0) {
    throw new CalibrationError(`the calibration callback ran no batch: it must call session.run(feeds) batch_num (${options.batchNum}) times`);
  }
  // Fewer batches than asked for would quietly calibrate on less data than the config says.
  if (batch < options.batchNum) {
    throw new CalibrationError(
      `the calibration data gave ${batch} batch${batch === 1 ? '' : 'es'} but batch_num is ${options.batchNum}: give ${options.batchNum} batches, or set batch_num to ${batch}`,
    );
  }
  return batch;
}

/** The float32 data of an activation output, or a CalibrationError naming it. */
export function activationData(outputs: Record<string, OrtTensor>, name: string): Float32Array {
  const t = outputs[name];
  if (!t || t.type !== 'float32') {
    throw new CalibrationError(`activation '${name}' is ${t ? t.type : 'missing from the outputs'}; only float32 activations can be calibrated`);
  }
  return t.data as Float32Array;
}

/** One bound on a pass: the bytes each name needs, and how many the pass may hold. */
export interface Budget {
  bytesOf: (name: string) => number;
  budget: number;
}

/**
 * Greedy admission of activations into one pass: in order, while the bytes they need stay within
 * every budget (the first is always admitted, so every pass makes progress).
 */
export function admitWithinBudget(names: readonly string[], bytesOf: (name: string) => number, budget: number, ...more: readonly Budget[]): Set<string> {
  const budgets = [{ bytesOf, budget }, ...more];
  const chosen = new Set<string>();
  const used = budgets.map(() => 0);
  for (const name of names) {
    const need = budgets.map((b) => b.bytesOf(name));
    if (chosen.size > 0 && budgets.some((b, i) => need[i]! > 0 && !(used[i]! + need[i]! <= b.budget))) continue;
    chosen.add(name);
    need.forEach((n, i) => (used[i]! += n));
  }
  return chosen;
}

/**
 * Calibration batches kept for later checks on real inputs (the choice of output quantizations),
 * with the model's first output on each: only the first, so memory stays bounded whatever
 * `batch_num` is.
 */
export const SAMPLE_BATCHES = 1;

/**
 * A calibration batch kept to measure the quantized model's outputs against float afterwards: the
 * feeds (copied: a callback may refill its buffers) and the float32 model outputs on them. Kept
 * while they fit KEPT_BYTES, at most KEPT_BATCHES and always the first, so memory stays bounded
 * whatever `batch_num` is.
 */
export interface KeptBatch {
  feeds: Feeds;
  outputs: Record<string, Float32Array>;
}

export const KEPT_BATCHES = 8;
export const KEPT_BYTES = 64 * 2 ** 20;

function copyTensor(t: OrtTensor): OrtTensor {
  const data = (t.data as unknown as { slice(): Float32Array }).slice();
  return new Tensor(t.type as 'float32', data, t.dims);
}

export interface Sample {
  feeds: Feeds;
  /** The calibrated model's first output (float32) on these feeds. */
  output?: Float32Array;
}

/**
 * Feeds every observer with the first `batchNum` batches, in one pass, and returns each layer's
 * result, the pass's statistics and the first batches (see SAMPLE_BATCHES). Observers whose
 * activation had no element in any batch (inside an If branch no batch took) give no result: their
 * keys are `unreached`.
 */
export async function calibrateActivations(
  model: ModelProto,
  observers: ObserverMap,
  source: CalibrationSource,
  options: CalibrationOptions,
): Promise<{ results: Map<string, ActivationResult>; stats: CalibrationStats; samples: Sample[]; kept: KeptBatch[]; unreached: string[] }> {
  const results = new Map<string, ActivationResult>();
  const samples: Sample[] = [];
  const kept: KeptBatch[] = [];
  let keptBytes = 0;
  const userOutputs = (model.graph?.output ?? []).map((o) => o.name ?? '');
  const firstOutput = model.graph?.output?.[0]?.name ?? '';
  const batches = await toBatchSource(source, options.batchNum);
  const stats: CalibrationStats = { batches: 0, passes: 1, peakObserverBytes: 0, activationBytes: new Map() };
  const fetched = [...observers.keys()];
  const probes = (options.probes ?? []).filter((p) => !observers.has(p));
  const sized = (options.sizes ?? []).filter((t) => !observers.has(t) && !probes.includes(t));
  const reached = new Set<string>();
  stats.batches = await replayBatches(model, [...fetched, ...probes, ...sized], batches, options, (out, batch, feeds) => {
    for (const p of probes) if ((out[p]?.size ?? 0) > 0) reached.add(p);
    for (const t of sized) {
      const x = out[t]?.data as { byteLength?: number } | undefined;
      if (x?.byteLength && !stats.activationBytes.has(t)) stats.activationBytes.set(t, x.byteLength);
    }
    if (samples.length < SAMPLE_BATCHES) {
      const o = out[firstOutput];
      // Copied: the runtime may reuse its output buffers.
      samples.push({ feeds, output: o?.type === 'float32' ? (o.data as Float32Array).slice() : undefined });
    }
    if (options.keepOutputs && kept.length < KEPT_BATCHES) {
      const outputs: Record<string, Float32Array> = {};
      let bytes = 0;
      for (const n of userOutputs) {
        const t = out[n];
        if (t?.type === 'float32') bytes += (outputs[n] = (t.data as Float32Array).slice()).byteLength;
      }
      for (const t of Object.values(feeds)) bytes += (t.data as { byteLength?: number }).byteLength ?? 0;
      if (kept.length === 0 || keptBytes + bytes <= KEPT_BYTES) {
        kept.push({ feeds: Object.fromEntries(Object.entries(feeds).map(([n, t]) => [n, copyTensor(t)])), outputs });
        keptBytes += bytes;
      }
    }
    for (const name of fetched) {
      const x = activationData(out, name);
      // No elements: a value in an If branch this batch did not take (see threadOutputs).
      if (x.length === 0) continue;
      reached.add(name);
      // Policy: non-finite values fail calibration, naming where. Skipping them would hide a broken
      // input pipeline, and no observer can place a range around an infinity.
      const { min, max } = x.length ? options.kernels.minMax(x) : { min: 0, max: 0 };
      if (!Number.isFinite(min) || !Number.isFinite(max)) {
        const readers = [...observers.get(name)!.keys()].map((k) => quoteName(k.replace(/^\0output:/, ''))).join(', ');
        throw new CalibrationError(
          `activation ${quoteName(name)} (calibrated for layer ${readers}) holds non-finite values (min ${min}, max ${max}) in calibration batch ${batch + 1}; ` +
            'calibration data must give finite activations',
        );
      }
      if (!stats.activationBytes.has(name)) stats.activationBytes.set(name, x.byteLength);
      for (const o of observers.get(name)!.values()) o.observe(x);
    }
    let held = 0;
    for (const list of observers.values()) for (const o of list.values()) held += o.bytesHeld;
    stats.peakObserverBytes = Math.max(stats.peakObserverBytes, held);
    options.onBatch?.({ pass: 1, batch: batch + 1, batchNum: options.batchNum });
  });
  const unreached: string[] = probes.filter((p) => !reached.has(p));
  for (const [name, list] of observers) {
    if (!reached.has(name)) unreached.push(...list.keys());
    else for (const [layer, o] of list) results.set(layer, o.compute());
  }
  return { results, stats, samples, kept, unreached };
}
