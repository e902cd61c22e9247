/**
 * What stays float, counted by why. A model whose Conv and LSTM layers all sit inside an `If` (Silero
 * VAD) used to come back with 0 quantized layers and no word of it; here every heavy node that stays
 * float is found, including those in control-flow bodies and those of types no rule quantizes yet,
 * and each reason becomes one warning with the nodes it covers. The same scan tells a user who names
 * a layer that is not in the config where that name actually is.
 */
import { getConstant, nodeNames } from '../../onnx/graph.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import { didYouMean, quoteName } from '../../text.js';
import type { SkippedNode } from './registry.js';

/** Node types that carry most of a model's weights or multiply-adds. */
export const HEAVY_OPS: ReadonlySet<string> = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Gather', 'LSTM', 'GRU', 'RNN', 'Einsum']);

/** Types no rule quantizes yet, even in the main graph. */
const NO_KERNEL_YET: ReadonlySet<string> = new Set(['Gather', 'LSTM', 'GRU', 'RNN', 'Einsum']);

/** A heavy node that stays float whatever the config says, and why. */
export interface FloatOnlyNode {
  name: string;
  opType: string;
  /** 'inside an If body', 'no kernel for this op yet', … (what warnings count by). */
  reason: string;
  /** For nodes inside control flow: the main-graph node holding them and the attribute (e.g. then_branch). */
  parent?: { name: string; opType: string; attribute: string };
}

/** Where a node of the model is, for telling a user what a name they gave is. */
interface NodePlace {
  opType: string;
  parent?: FloatOnlyNode['parent'];
}

export interface CoverageScan {
  /** Heavy nodes no config can quantize today. */
  floatOnly: FloatOnlyNode[];
  /** Every node name of the model, subgraphs included. */
  places: Map<string, NodePlace>;
}

/** A Gather reads a weight (an embedding table) when its data input is a float constant. */
function gathersWeight(graph: GraphProto, node: NodeProto, outer: readonly GraphProto[]): boolean {
  const data = node.input?.[0];
  if (!data) return false;
  for (const g of [graph, ...outer]) {
    const t = getConstant(g, data);
    if (t) return t.dataType === 1 && (t.dims?.length ?? 0) >= 2;
  }
  return false;
}

function isHeavy(graph: GraphProto, node: NodeProto, outer: readonly GraphProto[]): boolean {
  const op = node.opType ?? '';
  if (node.domain && node.domain !== 'ai.onnx') return false;
  if (!HEAVY_OPS.has(op)) return false;
  return op !== 'Gather' || gathersWeight(graph, node, outer);
}

/**
 * Scans the main graph (names as `nodeNames` gives them) and every control-flow body in it;
 * `layers` are the nodes a rule quantizes (embeddings, recurrent layers and If-branch layers among
 * them). In If branches the main graph's rule holds (what no rule quantizes stays float); in Loop
 * and Scan bodies every heavy node stays float.
 */
export function scanCoverage(graph: GraphProto, layers: ReadonlySet<string> = new Set()): CoverageScan {
  const floatOnly: FloatOnlyNode[] = [];
  const places = new Map<string, NodePlace>();
  const names = nodeNames(graph);
  const noKernel = (g: GraphProto, node: NodeProto, name: string, outer: readonly GraphProto[]) =>
    NO_KERNEL_YET.has(node.opType ?? '') && !layers.has(name) && isHeavy(g, node, outer);
  const visitBody = (body: GraphProto, parent: NonNullable<FloatOnlyNode['parent']>, outer: readonly GraphProto[], loop: boolean) => {
    (body.node ?? []).forEach((node, i) => {
      const name = node.name || `${parent.name}/${parent.attribute}/${node.opType}_${i}`;
      places.set(name, { opType: node.opType ?? '', parent });
      if (loop ? isHeavy(body, node, outer) : noKernel(body, node, name, outer)) {
        floatOnly.push({ name, opType: node.opType ?? '', reason: loop ? `inside ${article(parent.opType)} ${parent.opType} body` : 'no kernel for this op yet', parent });
      }
      // Nested bodies are reported as inside the outermost control-flow node: that is the one a user can see in the main graph.
      for (const a of node.attribute ?? []) for (const g of [a.g, ...(a.graphs ?? [])]) if (g) visitBody(g as GraphProto, parent, [body, ...outer], loop || node.opType !== 'If');
    });
  };
  (graph.node ?? []).forEach((node, i) => {
    const name = names[i]!;
    const opType = node.opType ?? '';
    places.set(name, { opType });
    if (noKernel(graph, node, name, [])) floatOnly.push({ name, opType, reason: 'no kernel for this op yet' });
    for (const a of node.attribute ?? []) {
      for (const g of [a.g, ...(a.graphs ?? [])]) if (g) visitBody(g as GraphProto, { name, opType, attribute: a.name ?? '' }, [graph], opType !== 'If');
    }
  });
  return { floatOnly, places };
}

const article = (word: string) => (/^[AEIOU]/.test(word) ? 'an' : 'a');

/** What a layer report says of a layer, as far as warnings need it. */
export interface ReportedLayer {
  name: string;
  opType: string;
  quantized: boolean;
  reason?: string;
  floatByDefault?: true;
}

export type WarningCode = 'LEFT_FLOAT' | 'NOTHING_QUANTIZED' | 'LOW_FIDELITY' | 'LOW_PARITY';

/** Something the user should know about a result that is not an error. */
export interface QuantWarning {
  code: WarningCode;
  message: string;
  /** LEFT_FLOAT: the reason counted, the nodes it covers and how many of each type. */
  reason?: string;
  nodes?: string[];
  opTypes?: Record<string, number>;
  /** LOW_FIDELITY, LOW_PARITY: the model output it is about. */
  output?: string;
}

/** What a user can do about each reason, where there is something. */
const ADVICE: Record<string, string> = {
  'no kernel for this op yet': 'autoquant does not quantize these types yet',
  'activation × activation': 'a Gemm whose B is computed at run time; write it as a MatMul (MatMuls of two activations are quantized)',
  'weight computed at run time': 'the weight is computed at run time; only constant weights are quantized',
  'quant_enable is false in the config': 'set quant_enable to true to quantize them',
};

function adviceFor(reason: string): string {
  if (reason.startsWith('inside ')) return 'layers inside Loop and Scan bodies are left in float';
  if (reason.startsWith('no calibration batch took')) return 'without calibration data that takes the branch they have no calibrated range; give batches that do';
  return ADVICE[reason] ?? '';
}

const countTypes = (nodes: readonly { opType: string }[]) => {
  const counts: Record<string, number> = {};
  for (const n of nodes) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  return counts;
};

const typesText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([t, n]) => `${t} ×${n}`)
    .join(', ');

/**
 * One LEFT_FLOAT warning per reason that heavy nodes stay float for (most nodes first), and, unless
 * `search` (the automatic calibration, whose fallbacks are its own report), a NOTHING_QUANTIZED
 * warning first when no layer is quantized at all.
 */
export function coverageWarnings(layers: readonly ReportedLayer[], skipped: readonly SkippedNode[], floatOnly: readonly FloatOnlyNode[], search = false): QuantWarning[] {
  const kindOf = new Map(skipped.map((s) => [s.name, s.kind as string]));
  const byReason = new Map<string, { name: string; opType: string }[]>();
  const add = (reason: string, node: { name: string; opType: string }) => byReason.set(reason, [...(byReason.get(reason) ?? []), node]);
  for (const l of layers) {
    if (l.quantized || !HEAVY_OPS.has(l.opType) || (search && !kindOf.has(l.name))) continue;
    // A weight-only target keeps activation products float by design: the layer report says so.
    if (kindOf.get(l.name) === 'no weight (weight-only target)') continue;
    // So does the default config where int8 would be slower or needs an opset the model lacks.
    if (l.floatByDefault) continue;
    add(kindOf.get(l.name) ?? l.reason ?? 'left in float', l);
  }
  for (const n of floatOnly) add(n.reason, n);
  const warnings: QuantWarning[] = [...byReason]
    .sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]))
    .map(([reason, nodes]) => {
      const opTypes = countTypes(nodes);
      const advice = adviceFor(reason);
      const message = `${nodes.length} heavy node${nodes.length === 1 ? '' : 's'} stay${nodes.length === 1 ? 's' : ''} float, ${reason} (${typesText(opTypes)})${advice ? `: ${advice}` : ''}`;
      return { code: 'LEFT_FLOAT' as const, message, reason, nodes: nodes.map((n) => n.name), opTypes };
    });
  if (!search && !layers.some((l) => l.quantized)) {
    const why = warnings.length ? `; ${warnings.map((w) => `${w.nodes!.length} ${w.reason}`).join(', ')}` : '';
    warnings.unshift({ code: 'NOTHING_QUANTIZED', message: `no layer was quantized: the models written are the float model${why}` });
  }
  return warnings;
}

/**
 * What to add after "no quantizable layer named 'x'" for a name a config or option gave: what the
 * name is instead (a node inside an If body, a node of another type), else the layer names it is
 * closest to, else a few of the config's layers.
 */
export function whereIsName(name: string, scan: CoverageScan, layerNames: readonly string[]): string {
  const place = scan.places.get(name);
  if (place?.parent) {
    const p = place.parent;
    const why = p.opType === 'If' ? `no rule quantizes ${article(place.opType)} ${place.opType} there` : `layers inside ${p.opType} bodies are left in float (they are not in the config)`;
    return `: it is ${article(place.opType)} ${place.opType} inside the ${p.attribute} of ${p.opType} node ${quoteName(p.name)}, and ${why}`;
  }
  if (place) return `: it is ${article(place.opType)} ${place.opType} node${didYouMean(name, layerNames)}`;
  const hint = didYouMean(name, layerNames);
  if (hint) return hint;
  return layerNames.length ? `; the config's layers are ${layerNames.slice(0, 5).map(quoteName).join(', ')}${layerNames.length > 5 ? `, … (${layerNames.length} in all)` : ''}` : '; the model has no quantizable layer';
}
