/**
 * Graph preparation, the first stage: a private copy of the model with stable node names, opset raised where needed, the exact fusions and cross-layer equalization; and the checks that fail before calibration (the deploy opset is reachable).
 */
import { OnnxFormatError } from '../../errors.js';
import { type Kernels } from '../../kernels/types.js';
import { getKernels } from '../../kernels/wasm.js';
import { assignStableNames, opsetVersion } from '../../onnx/graph.js';
import { cloneModel, loadModel } from '../../onnx/model.js';
import { upgradeOpset } from '../../onnx/opset.js';
import { nameBodyNodes } from '../../onnx/scope.js';
import { onnx, type ModelProto } from '../../onnx/types.js';
import { GLOBAL_KEYS, type NameHint, type QuantConfig, validateQuantConfig } from '../config/config.js';
import { type ModelSource, type QuantizationSession, layerConfig } from '../types.js';
import { type CoverageScan, scanCoverage, whereIsName } from './coverage.js';
import { equalizeChannels } from './equalize.js';
import { foldRecurrentWeights } from './fold-weights.js';
import { foldAffines, foldBatchNorms } from './fusion.js';
import { HARD_SWISH_OPSET, fuseHardSwish } from './hardswish.js';
import { type LayerInfo, type SkippedNode, scanLayers } from './registry.js';
import { configTarget, forTarget } from './target.js';

export function isModelProto(m: ModelSource): m is ModelProto {
  return typeof m === 'object' && m !== null && !(m instanceof Uint8Array) && !(m instanceof ArrayBuffer) && !(m instanceof URL);
}
/**
 * The package's own copy, which the stages rewrite: the caller's model is never modified. A parsed
 * model is copied structurally (its tensors' bytes are shared, and nothing in the package writes into
 * them: see cloneModel), so a large model passed parsed costs no second copy of its weights.
 */
export async function privateCopy(model: ModelSource): Promise<ModelProto> {
  if (isModelProto(model)) return cloneModel(model);
  // loadModel copies bytes before decoding, so the caller's buffer is never aliased.
  return loadModel(model);
}
export const clone = cloneModel;
/** Opset of per-axis DequantizeLinear, which per-channel weights need in the deploy model. */
export const PER_CHANNEL_OPSET = 13;
/** Opset of 16-bit QuantizeLinear/DequantizeLinear, which 16-bit activations need in the deploy model. */
export const INT16_OPSET = 21;
/** Why the model cannot have per-channel weights (its opset cannot be raised to 13), or undefined. */
export function perChannelBlocker(model: ModelProto): string | undefined {
  return opsetBlocker(model, PER_CHANNEL_OPSET);
}
/** Why the model's opset cannot be raised to `opset`, or undefined when it can. */
export function opsetBlocker(model: ModelProto, opset: number): string | undefined {
  if ((opsetVersion(model) ?? 1) >= opset) return undefined;
  try {
    upgradeOpset(clone(model), opset);
    return undefined;
  } catch (e) {
    // One line: "cannot raise the model from opset 9 to 13: <node>: <why>; <node>: <why>".
    return (e as Error).message.replace(/:\n\s*- /, ': ').replace(/\n\s*- /g, '; ');
  }
}
/**
 * Node names a config cannot key a layer by: its own global keys, and `__proto__`, which would set
 * the object's prototype. Such nodes are listed as `{name}_node` (see nodeNames).
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([...GLOBAL_KEYS, '__proto__']);
/** The model as the quantizer sees it: stable node names, optionally with BN folded. */
export interface Prepared {
  model: ModelProto;
  /** Layers before fusion (what a config must list). */
  layers: LayerInfo[];
  skipped: SkippedNode[];
  /** Heavy nodes no config can quantize (control-flow bodies, types without a rule), and every node's place. */
  coverage: CoverageScan;
  /** What to tell a user who names a layer that is not in the config. */
  hint: NameHint;
}
/** The oldest opset ONNX Runtime runs; older models are raised to it before anything else. */
export const RUNNABLE_OPSET = 7;
export function prepare(model: ModelProto): Prepared {
  if (!model.graph) throw new OnnxFormatError('the model has no graph');
  if ((opsetVersion(model) ?? 1) < RUNNABLE_OPSET) upgradeOpset(model, RUNNABLE_OPSET);
  assignStableNames(model.graph, RESERVED_NAMES);
  nameBodyNodes(model.graph);
  foldRecurrentWeights(model.graph, opsetVersion(model) ?? 1);
  const scan = scanLayers(model.graph);
  // What a config lists: every layer, weight-only ones included, in graph order (a body's where its If is).
  const layers = byOrder([...scan.layers, ...scan.weightOnly]);
  const skipped = scan.skipped;
  const coverage = scanCoverage(model.graph, new Set(layers.map((l) => l.name)));
  const names = layers.map((l) => l.name);
  return { model, layers, skipped, coverage, hint: (name) => whereIsName(name, coverage, names) };
}
/** Layers in model order (see LayerInfo.order). */
export const byOrder = (layers: LayerInfo[]) => layers.sort((a, b) => (a.order ?? a.nodeIndex) - (b.order ?? b.nodeIndex));
/**
 * Validates the config against the model and prepares the working copy. `config` may be a function
 * of the prepared model (the default config), so that the model is read and parsed once.
 */
export async function prepareQuantization(
  model: ModelSource,
  configFor: QuantConfig | ((prepared: Prepared) => QuantConfig),
  kernels?: Kernels,
  configSource = 'quantizeModel config',
): Promise<QuantizationSession> {
  const prepared = prepare(await privateCopy(model));
  const { model: work, coverage, hint } = prepared;
  const config = typeof configFor === 'function' ? configFor(prepared) : configFor;
  const target = configTarget(config);
  const { layers: declared, dropped } = forTarget(prepared.layers, target);
  const skipped = [...prepared.skipped, ...dropped];
  validateQuantConfig(config, declared, configSource, hint);
  const cfg = structuredClone(config);
  const original = cloneModel(work);
  // The writer measures without copying the tensors; nothing is allocated for the bytes.
  const originalBytes = onnx.ModelProto.encode(work).len;
  const skip = new Set(cfg.skip_fusion_layers ?? []);
  const fused = cfg.do_fusion !== false ? foldBatchNorms(work.graph!, skip) : [];
  const affines = cfg.do_fusion !== false ? foldAffines(work.graph!, skip) : [];
  const hardSwish = cfg.do_fusion !== false ? fuseHardSwishes(work) : [];
  // After the fusions, so that the weights balanced are the ones quantized.
  const equalized = cfg.cross_layer_equalization !== false ? equalizeChannels(work.graph!) : [];
  const scan = scanLayers(work.graph!);
  const scanned = forTarget(byOrder([...scan.layers, ...scan.weightOnly]), target).layers;
  const layers = scanned.filter((l) => !l.weightOnly);
  const weightOnly = scanned.filter((l) => l.weightOnly);
  return { work, original, originalBytes, config: cfg, declared, layers, weightOnly, skipped, floatOnly: coverage.floatOnly, fused, affines, hardSwish, equalized, kernels: kernels ?? (await getKernels()) };
}
/**
 * Fails now, with the list of nodes in the way, when the deploy model of `layers` would need an
 * opset the model cannot be raised to: better before calibration than after a long search.
 */
export function checkDeployable(q: QuantizationSession, layers: readonly LayerInfo[], activationBits?: 8 | 16): void {
  let need = 10;
  for (const l of layers) {
    const c = layerConfig(q.config, l.name)!;
    if ((activationBits ?? c.activation_quant_params?.num_bits) === 16) need = Math.max(need, 21);
    if (c.weight_quant_params?.channel_wise && l.weight && l.weight.channelAxis >= 0) need = Math.max(need, 13);
  }
  if (layers.length > 0 && (opsetVersion(q.work) ?? 1) < need) upgradeOpset(cloneModel(q.original), need);
}
/** Layers whose config says quant_enable. */
export function enabledLayers(q: QuantizationSession): LayerInfo[] {
  return q.layers.filter((l) => layerConfig(q.config, l.name)?.quant_enable === true);
}
/**
 * Hard-swish as one HardSwish op in the working model (see hardswish.ts), raising its opset to 14
 * when needed and possible; both model forms and the calibration then see the same graph.
 */
export function fuseHardSwishes(work: ModelProto): string[] {
  if (fuseHardSwish(work, { dryRun: true }).length === 0) return [];
  if ((opsetVersion(work) ?? 1) >= HARD_SWISH_OPSET) return fuseHardSwish(work);
  const raised = clone(work);
  try {
    upgradeOpset(raised, HARD_SWISH_OPSET);
  } catch {
    return []; // a node cannot be raised to opset 14: keep hard-swish as it is
  }
  const fused = fuseHardSwish(raised);
  work.graph = raised.graph;
  work.opsetImport = raised.opsetImport;
  return fused;
}
