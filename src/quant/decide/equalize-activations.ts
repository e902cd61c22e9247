/**
 * The pass before calibration: activation equalization and channel splitting, from the record or from one measuring pass over the batches.
 */
import { QuantConfigError } from '../../errors.js';
import { GraphEditor } from '../../onnx/editor.js';
import { opsetVersion } from '../../onnx/graph.js';
import { RunLog, emitProgress } from '../../runtime/log.js';
import { quoteName } from '../../text.js';
import { type BatchSource, replayBatches } from '../calibrate/calibrate.js';
import { type QuantRecord } from '../config/record.js';
import { type LayerInfo, scanLayers } from '../prepare/registry.js';
import { type QuantizationSession, type QuantizeModelOptions, layerConfig } from '../types.js';
import { type ActivationEqualized, type ChannelSite, applyFactors, channelRanges, chooseFactors, findEqualizationPaths, weightProfile } from './activation-equalize.js';
import { type ChannelSplit, type SplitChoice, applySplit, chooseSplit, findSplitSites } from './channel-split.js';
import { ALPHAS, MIN_SMOOTHING_GAIN, type SmoothingSite, applySmoothing, findSmoothingSites, migrationFactors, siteProfile } from './smooth-linear.js';

/**
 * Activation equalization (depthwise layers: activation-equalize.ts; linear layers behind a
 * normalization: smooth-linear.ts) and channel splitting (see channel-split.ts),
 * before the layers are calibrated: factors and splits from the record where it has them
 * (`equalize_d`, `split_d`), none for layers the record calibrated without them (its factors would
 * no longer fit), and from one pass over the batches for the rest. The working model changes in
 * place; the layers' node indices, activations and weight names are refreshed.
 */
export async function equalizeActivations(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: QuantizeModelOptions,
): Promise<{ done: ActivationEqualized[]; splits: ChannelSplit[]; factors: Map<string, number[]>; choices: Map<string, SplitChoice>; passes: number; off?: true }> {
  const graph = q.work.graph!;
  const recorded = layers.filter((l) => record.layers[l.name]?.equalize_d !== undefined);
  const recordedSplits = layers.filter((l) => record.layers[l.name]?.split_d !== undefined);
  const ratio = q.config.channel_splitting ?? 0;
  const none = { done: [], splits: [], factors: new Map(), choices: new Map(), passes: 0 };
  if (q.config.activation_equalization === false && ratio === 0 && recorded.length === 0 && recordedSplits.length === 0) return { ...none, off: true };
  const perChannel = (name: string) => {
    const c = layerConfig(q.config, name);
    return c?.quant_enable !== true || c.weight_quant_params?.channel_wise === true;
  };
  const paths = findEqualizationPaths(graph, layers, perChannel);
  const byLayer = new Map(paths.map((p) => [p.layer.name, p]));
  const smoothing = findSmoothingSites(graph, layers, perChannel);
  const siteOfReader = new Map(smoothing.flatMap((s) => s.readers.map((r) => [r.layer.name, s] as const)));
  const sites = findSplitSites(graph, layers, opsetVersion(q.work) ?? 1);
  const siteOf = new Map(sites.map((s) => [s.layer.name, s]));
  const misfits = recorded.flatMap((l) => {
    const site = siteOfReader.get(l.name);
    if (site) {
      const own = record.layers[l.name]!.equalize_d!;
      if (own.length !== site.channels) return [`layer ${quoteName(l.name)}.equalize_d has ${own.length} factors; its input has ${site.channels} channels`];
      // The readers of one tensor share its factors.
      const other = site.readers.find((r) => String(record.layers[r.layer.name]?.equalize_d ?? '') !== String(own));
      return other ? [`layers ${quoteName(l.name)} and ${quoteName(other.layer.name)} read one input, so their equalize_d must be the same factors`] : [];
    }
    const path = byLayer.get(l.name);
    if (!path) return [`layer ${quoteName(l.name)} has equalize_d, but its input cannot be equalized exactly here (not a depthwise Conv behind a constant Mul, Div, BatchNormalization or a Conv with per-channel weights, nor a MatMul or Gemm with per-channel weights behind a normalization whose other readers are such layers too)`];
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
  // A site is measured only when the record has none of its readers (which then keep its factors or none).
  const todoSites = q.config.activation_equalization === false ? [] : smoothing.filter((s) => s.readers.every((r) => record.layers[r.layer.name] === undefined));
  const todoSplits = sites.filter((s) => record.layers[s.layer.name] === undefined && Math.floor(ratio * s.channels) >= 1);
  if (todo.length || todoSites.length || todoSplits.length) {
    const source = await batches();
    const printLog = new RunLog();
    const ranges = await channelRanges<ChannelSite>([...todo, ...todoSites, ...todoSplits], q.kernels, async (fetch, onBatch) => {
      await replayBatches(q.work, fetch, source, { ...options, batchNum: q.config.batch_num }, (outputs, batch) => {
        onBatch(outputs);
        const message = `activation equalization, batch ${batch + 1}/${q.config.batch_num}`;
        emitProgress(printLog, options.onProgress, { phase: 'calibration', stage: 'calibration', step: 'activation equalization', message, pass: 1, batch: batch + 1, batchNum: q.config.batch_num, done: batch + 1, total: q.config.batch_num }, `equalization batch ${batch + 1}`, `calibration: ${message}`);
      });
    });
    for (const p of todo) {
      const r = ranges.get(p)!;
      const c = layerConfig(q.config, p.layer.name)!;
      const profile = weightProfile(graph, p, perChannel(p.layer.name));
      const a = c.activation_quant_params!;
      const f = chooseFactors(r, profile, { symmetric: !(a.asymmetric ?? q.config.activation_offset), levels: 2 ** a.num_bits - 1 });
      if (f) factors.set(p.layer.name, Array.from(f));
    }
    for (const site of todoSites) {
      const r = ranges.get(site);
      if (!r) continue;
      const a = layerConfig(q.config, site.layer.name)!.activation_quant_params!;
      const profile = siteProfile(graph, site);
      const f = chooseFactors(r, profile, {
        symmetric: !(a.asymmetric ?? q.config.activation_offset),
        levels: 2 ** a.num_bits - 1,
        candidates: ALPHAS.map((alpha) => migrationFactors(r, profile, alpha)),
        minGain: MIN_SMOOTHING_GAIN,
      });
      if (f) for (const reader of site.readers) factors.set(reader.layer.name, Array.from(f));
    }
    for (const s of todoSplits) {
      const r = ranges.get(s);
      if (!r) continue;
      const a = layerConfig(q.config, s.layer.name)!.activation_quant_params!;
      const choice = chooseSplit(r.likelyLo ?? r.lo, r.likelyHi ?? r.hi, ratio, 2 ** a.num_bits - 1);
      if (choice) choices.set(s.layer.name, choice);
    }
  }
  // A split chosen on the ranges before smoothing would no longer fit them, and both answer the same
  // wide channels: a smoothed layer is not split.
  for (const site of todoSites) if (factors.has(site.layer.name)) for (const r of site.readers) if (todoSplits.some((s) => s.layer.name === r.layer.name)) choices.delete(r.layer.name);
  const passes = todo.length || todoSites.length || todoSplits.length ? 1 : 0;
  if (factors.size === 0 && choices.size === 0) return { ...none, passes };
  const editor = new GraphEditor(graph);
  // Factors first: a split layer may be the Conv that absorbs a depthwise layer's factors, and the
  // split reads the weight as it then is.
  const done = paths.filter((p) => factors.has(p.layer.name)).map((p) => applyFactors(graph, p, factors.get(p.layer.name)!, editor));
  for (const site of smoothing) {
    const f = factors.get(site.layer.name);
    if (f) done.push(...applySmoothing(graph, site, f, editor));
  }
  const splits = sites.filter((s) => choices.has(s.layer.name)).map((s) => applySplit(graph, s, choices.get(s.layer.name)!, editor));
  editor.commit();
  // Constants the edits orphaned are gone, so node indices moved: refresh every layer in place.
  const fresh = new Map(scanLayers(graph).layers.map((l) => [l.name, l]));
  for (const l of q.layers) Object.assign(l, fresh.get(l.name));
  return { done, splits, factors, choices, passes };
}
