/**
 * Calibration of the enabled layers' activation (and output) factors in one pass over the batches, into the record.
 */
import { consumerMap } from '../../onnx/graph.js';
import { graphAt } from '../../onnx/scope.js';
import { RunLog, emitProgress } from '../../runtime/log.js';
import { type ActivationQuantParams } from '../config/config.js';
import { type QuantRecord } from '../config/record.js';
import { outputTensor } from '../decide/outputs.js';
import { type LayerInfo } from '../prepare/registry.js';
import { type CalibrateOptions, type QuantizationSession, layerConfig } from '../types.js';
import { type BatchSource, type CalibrationStats, type ObserverMap, calibrateActivations } from './calibrate.js';
import { type ActivationResult, createObserver } from './observers/index.js';

/**
 * Calibrates the activations of `layers` that `record` lacks (at the configured bit width) and
 * adds their factors to `record`.
 */
export async function calibrateLayers(
  q: QuantizationSession,
  layers: readonly LayerInfo[],
  record: QuantRecord,
  batches: () => Promise<BatchSource>,
  options: CalibrateOptions = {},
  /** Run the batches even with nothing to observe, to keep outputs (weight-only models: their parity and fidelity). */
  keepAnyway = false,
): Promise<CalibrationStats | undefined> {
  const observers: ObserverMap = new Map();
  const observe = (tensor: string, key: string, p: ActivationQuantParams) => {
    const list = observers.get(tensor) ?? new Map();
    list.set(key, createObserver(q.kernels, p, q.config.activation_offset));
    observers.set(tensor, list);
  };
  for (const l of layers) {
    const p = layerConfig(q.config, l.name)!.activation_quant_params!;
    const known = record.layers[l.name];
    const fresh = !(known && known.num_bits_d === p.num_bits);
    if (fresh) observe(l.activation, l.name, p);
    if (l.second && (fresh || known?.scale_d2 === undefined)) observe(l.second, SECOND_KEY + l.name, p);
  }
  // Output factors, where no quantized reader of the output provides them (see decide/outputs.ts).
  if (q.config.quantize_outputs !== false) {
    const graph = q.work.graph!;
    const readers = consumerMap(graph);
    // Graph outputs stay float (see decide/outputs.ts), so they need no factors.
    const read = new Set([...layers.map((l) => l.activation), ...(graph.output ?? []).map((o) => o.name ?? '')]);
    for (const l of layers) {
      // Outputs of layers in If branches stay float (see decide/outputs.ts).
      if (l.scope) continue;
      const p = layerConfig(q.config, l.name)!.activation_quant_params!;
      const tensor = outputTensor(graph, l, readers);
      const known = record.layers[l.name];
      // A record that keeps the output float (output_quant false) needs no factors for it.
      if (p.num_bits !== 8 || read.has(tensor) || known?.scale_o !== undefined || known?.output_quant === false) continue;
      observe(tensor, OUTPUT_KEY + l.name, p);
    }
  }
  // A branch layer reading a value from outside its branch is calibrated whichever branch runs; its
  // output tells whether its own branch ever did.
  const probes = new Map<string, string>();
  for (const l of layers) {
    if (!l.scope || !observers.has(l.activation) || producedIn(q, l, l.activation)) continue;
    const output = graphAt(q.work.graph!, l.scope)?.node?.[l.nodeIndex]?.output?.[0];
    if (output) probes.set(output, l.name);
  }
  if (observers.size === 0 && !(keepAnyway && options.keepOutputs)) return undefined;
  const source = await batches();
  // quantizeModel saves no log file; its messages are printed when setLogLevel asks.
  const printLog = new RunLog();
  const { results, stats, samples, kept, unreached } = await calibrateActivations(q.work, observers, source.callback ?? source.feeds!, {
    batchNum: q.config.batch_num,
    executionProviders: options.executionProviders,
    graphOptimizationLevel: options.graphOptimizationLevel,
    engine: options.engine,
    signal: options.signal,
    kernels: q.kernels,
    keepOutputs: options.keepOutputs,
    probes: [...probes.keys()],
    // Weight-only layers run alone later (ranking, layer errors): their inputs' sizes group them.
    sizes: keepAnyway ? [...new Set(q.weightOnly.filter((l) => !l.scope).map((l) => l.activation))] : [],
    onBatch: (b) => emitProgress(printLog, options.onProgress, { phase: 'calibration', stage: 'calibration', step: 'calibration', message: `batch ${b.batch}/${b.batchNum}`, ...b, done: b.batch, total: b.batchNum }, `calibration batch ${b.batch}`, `calibration: batch ${b.batch}/${b.batchNum}`),
  });
  if (!q.samples?.length) q.samples = samples;
  if (kept.length) q.kept = kept;
  const outputResults: [string, ActivationResult][] = [];
  const secondResults: [string, ActivationResult][] = [];
  for (const [key, r] of results) {
    if (key.startsWith(OUTPUT_KEY)) {
      outputResults.push([key.slice(OUTPUT_KEY.length), r]);
      continue;
    }
    if (key.startsWith(SECOND_KEY)) {
      secondResults.push([key.slice(SECOND_KEY.length), r]);
      continue;
    }
    const bits = layerConfig(q.config, key)!.activation_quant_params!.num_bits;
    record.layers[key] = { ...record.layers[key], scale_d: r.scale, offset_d: r.zeroPoint, num_bits_d: bits, clip_min_d: r.clipMin, clip_max_d: r.clipMax };
  }
  // A layer whose input no batch reached (in an If branch never taken) has nothing to be quantized with.
  const missed = new Set(unreached.filter((k) => !k.startsWith(OUTPUT_KEY)).map((k) => probes.get(k) ?? (k.startsWith(SECOND_KEY) ? k.slice(SECOND_KEY.length) : k)));
  for (const name of missed) delete record.layers[name];
  stats.unreached = [...missed];
  for (const [name, r] of secondResults.filter(([n]) => !missed.has(n))) {
    Object.assign(record.layers[name]!, { scale_d2: r.scale, offset_d2: r.zeroPoint, clip_min_d2: r.clipMin, clip_max_d2: r.clipMax });
  }
  for (const [name, r] of outputResults) {
    Object.assign(record.layers[name]!, { scale_o: r.scale, offset_o: r.zeroPoint, clip_min_o: r.clipMin, clip_max_o: r.clipMax });
    if (r.noise !== undefined) (q.outputNoise ??= new Map()).set(name, r.noise);
  }
  return stats;
}
/** Whether `tensor` is computed inside the branch `layer` is in (not read from the graphs around it). */
function producedIn(q: QuantizationSession, layer: LayerInfo, tensor: string): boolean {
  return (graphAt(q.work.graph!, layer.scope)?.node ?? []).some((n) => n.output?.includes(tensor));
}
/** Observer keys of output factors; NUL cannot start a layer name read from a config file's keys in practice. */
export const OUTPUT_KEY = '\0output:';
/** Observer keys of a MatMul's second activation (LayerInfo.second). */
const SECOND_KEY = '\0second:';
