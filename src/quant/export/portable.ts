/**
 * Keeps graphs on the GPU in onnxruntime-web. Its WebGPU kernels (both the JSEP bundle and
 * `onnxruntime-web/webgpu`, 1.30) lack `Round` and the attribute form of `Clip` (opsets 6-10); such
 * a node runs on the CPU behind a GPU→CPU and a CPU→GPU copy, which costs more than the node itself.
 * Everything here is an exact rewrite into operators that do have WebGPU kernels.
 */
import { floatAttr, GraphEditor } from '../../onnx/editor.js';
import { findAttribute, opsetVersion } from '../../onnx/graph.js';
import { DataType, makeTensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';

/** 1.5 × 2^23: adding and subtracting it in float32 rounds a value of magnitude < 2^22 half to even. */
export const ROUNDING_MAGIC = 12582912;

/** Max and Min broadcast a scalar bound only from opset 8 on. */
const MIN_MAX_BROADCAST_OPSET = 8;

type Insert = GraphEditor['insertBefore'];

/**
 * Emits `clip(x, lo, hi)` before `anchor` with GPU-resident ops: Clip-11 with bound inputs, Max/Min
 * at opsets 8-10, and Clip's attribute form below 8 (the only exact choice there).
 */
export function emitClip(editor: GraphEditor, anchor: NodeProto, opset: number, base: string, x: string, lo: number, hi: number): string {
  const insert: Insert = editor.insertBefore.bind(editor);
  const bound = (suffix: string, v: number) => editor.addInitializer(makeTensor(`${base}.${suffix}`, DataType.FLOAT, [], [v]));
  if (opset >= 11) return insert(anchor, { opType: 'Clip', name: `${base}/Clip`, inputs: [x, bound('qmin', lo), bound('qmax', hi)] })[0]!;
  if (opset >= MIN_MAX_BROADCAST_OPSET) {
    const [low] = insert(anchor, { opType: 'Max', name: `${base}/ClipMin`, inputs: [x, bound('qmin', lo)] });
    return insert(anchor, { opType: 'Min', name: `${base}/ClipMax`, inputs: [low!, bound('qmax', hi)] })[0]!;
  }
  return insert(anchor, {
    opType: 'Clip', name: `${base}/Clip`, inputs: [x],
    attributes: [floatAttr('min', lo), floatAttr('max', hi)],
  })[0]!;
}

/**
 * Emits round-half-to-even of `x` as two float32 ops. Exact only for |x| < 2^22, which callers
 * guarantee by clipping to an integer range first; ONNX `Round` has no WebGPU kernel.
 */
export function emitRound(editor: GraphEditor, anchor: NodeProto, base: string, x: string): string {
  const m = editor.addInitializer(makeTensor(`${base}.round_magic`, DataType.FLOAT, [], [ROUNDING_MAGIC]));
  const [up] = editor.insertBefore(anchor, { opType: 'Add', name: `${base}/RoundAdd`, inputs: [x, m] });
  return editor.insertBefore(anchor, { opType: 'Sub', name: `${base}/RoundSub`, inputs: [up!, m] })[0]!;
}

const isDefault = (n: NodeProto) => !n.domain || n.domain === 'ai.onnx';

/**
 * Rewrites the model's own attribute-form Clip nodes (opsets 8-10) as Max then Min, in place, and
 * returns their names. The result equals Clip's for every number (NaN inputs are not promised).
 * Nodes inside subgraphs are left alone. Below opset 8 nothing changes (Max/Min cannot broadcast).
 */
export function replaceAttributeClips(model: ModelProto): string[] {
  const opset = opsetVersion(model) ?? 1;
  const graph = model.graph;
  if (!graph || opset >= 11 || opset < MIN_MAX_BROADCAST_OPSET) return [];
  const clips = (graph.node ?? []).filter((n) => n.opType === 'Clip' && isDefault(n) && n.input?.length === 1);
  if (clips.length === 0) return [];
  const editor = new GraphEditor(graph);
  const replaced: string[] = [];
  const drop = new Set<NodeProto>();
  for (const node of clips) {
    const lo = findAttribute(node, 'min')?.f ?? -3.4028234663852886e38;
    const hi = findAttribute(node, 'max')?.f ?? 3.4028234663852886e38;
    const name = node.name || node.output![0]!;
    const loName = editor.addInitializer(makeTensor(`${name}.min`, DataType.FLOAT, [], [lo]));
    const hiName = editor.addInitializer(makeTensor(`${name}.max`, DataType.FLOAT, [], [hi]));
    const [low] = editor.insertBefore(node, { opType: 'Max', name: `${name}/Max`, inputs: [node.input![0]!, loName] });
    editor.insertBefore(node, { opType: 'Min', name: `${name}/Min`, inputs: [low!, hiName], outputs: [node.output![0]!] });
    drop.add(node);
    replaced.push(name);
  }
  editor.commit();
  graph.node = graph.node!.filter((n) => !drop.has(n));
  return replaced;
}
