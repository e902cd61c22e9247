/**
 * Weight-only layers: embedding tables (a Gather from a constant float table) and the W and R
 * weights of LSTM, GRU and RNN, quantized to symmetric int8 with one scale per row (a table's row,
 * a gate's output channel in one direction); their inputs and states stay float. Data-free, so
 * nothing is calibrated or recorded: the scales follow from the weights, and a config rebuilds them.
 *
 * Deploy forms, chosen so that the runtime does not pay for them on every run:
 * - an embedding looks rows up in the int8 table and dequantizes only those:
 *   `Gather(q, ids) → Cast → Mul(Gather(scales, ids))`, so the table is held as int8 (a quarter of the
 *   float bytes) rather than dequantized whole on every run, as a DequantizeLinear before it would be;
 * - a recurrent layer reads `Cast(q) → Mul(scales)`, which ONNX Runtime folds into a float constant
 *   when it loads the model: the file stores int8 and the layer runs the float kernel, on every
 *   runtime (integer recurrent kernels exist only in onnxruntime's CPU contrib ops).
 * Either way the values are exactly the fake-quant model's: float32(q) · scale.
 */
import { intAttr, GraphEditor } from '../../onnx/editor.js';
import { allNames, byGraph, constantAt } from '../../onnx/scope.js';
import { DataType, makeTensor, readTensorAsFloat32 } from '../../onnx/tensor.js';
import { onnx, type GraphProto, type ModelProto, type NodeProto } from '../../onnx/types.js';
import type { LayerInfo, WeightSpec } from '../prepare/registry.js';
import { type QuantizationSession, layerConfig } from '../types.js';
import { quantizeWeight, type QuantizedWeight } from './weights.js';

export interface WeightOnlyQuantization {
  layer: LayerInfo;
  /** Per weight input of the node (0: the table or W; 1: R), its quantization. */
  weights: Map<number, { spec: WeightSpec; q: QuantizedWeight }>;
}

/** One scale per row: every axis but the last is a row index. */
function quantizeRows(q: QuantizationSession, layer: LayerInfo, spec: WeightSpec, perRow: boolean): QuantizedWeight {
  const w = readTensorAsFloat32(constantAt(q.work.graph!, layer.scope, spec.name)!);
  const cols = spec.dims[spec.dims.length - 1]!;
  return quantizeWeight(q.kernels, w, [w.length / cols, cols], perRow ? 0 : -1);
}

/** Quantized weights per working model: the search builds many models from one. */
const cache = new WeakMap<QuantizationSession['work'], Map<string, WeightOnlyQuantization>>();

/** The weight-only layers the config enables, with their quantized weights. */
export function planWeightOnly(q: QuantizationSession): WeightOnlyQuantization[] {
  let known = cache.get(q.work);
  if (!known) cache.set(q.work, (known = new Map()));
  const out: WeightOnlyQuantization[] = [];
  for (const layer of q.weightOnly) {
    const c = layerConfig(q.config, layer.name);
    if (c?.quant_enable !== true) continue;
    const perRow = c.weight_quant_params?.channel_wise !== false;
    const key = `${layer.name}|${perRow}`;
    let e = known.get(key);
    if (!e) {
      const specs: [number, WeightSpec | undefined][] = [[layer.opType === 'Gather' ? 0 : 1, layer.weight], [2, layer.recurrence]];
      e = { layer, weights: new Map(specs.filter((s): s is [number, WeightSpec] => s[1] !== undefined).map(([i, spec]) => [i, { spec, q: quantizeRows(q, layer, spec, perRow) }])) };
      known.set(key, e);
    }
    out.push(e);
  }
  return out;
}

/** The plan by the graph each layer is in (the main graph, an If branch), with an editor for it. */
function editorsByGraph(model: ModelProto, plan: readonly WeightOnlyQuantization[]): { graph: GraphProto; editor: () => GraphEditor; plan: WeightOnlyQuantization[] }[] {
  const groups = byGraph(model.graph!, plan, (p) => p.layer.scope, (p) => `layer '${p.layer.name}'`);
  // Editors are made one after another's commit, so each sees the names the others added.
  return [...groups].map(([graph, plan]) => ({ graph, plan, editor: () => new GraphEditor(graph, graph === model.graph ? [] : allNames(model.graph!)) }));
}

const nodeIn = (graph: GraphProto, layer: LayerInfo) => graph.node!.find((n) => n.name === layer.name)!;

/** Fake-quant form: the layer reads the dequantized weights. */
export function writeFakeQuantWeightOnly(model: ModelProto, plan: readonly WeightOnlyQuantization[]): void {
  for (const { graph, editor: make, plan: layers } of editorsByGraph(model, plan)) {
    const editor = make();
    for (const { layer, weights } of layers) {
      const node = nodeIn(graph, layer);
      for (const [input, { spec, q }] of weights) node.input![input] = editor.addInitializer(makeTensor(`${spec.name}_fake_quant`, DataType.FLOAT, spec.dims, q.fq));
    }
    editor.commit();
  }
}

/** The scale tensor of `spec`'s rows, shaped to broadcast against the weight (or against a looked-up row). */
function rowScale(editor: GraphEditor, spec: WeightSpec, q: QuantizedWeight, dims: readonly number[]): string {
  return editor.addInitializer(makeTensor(`${spec.name}_scale`, DataType.FLOAT, q.axis < 0 ? [] : dims, q.scale));
}

/** Deploy form (see the module comment). */
export function writeDeployWeightOnly(model: ModelProto, plan: readonly WeightOnlyQuantization[]): void {
  for (const group of editorsByGraph(model, plan)) deployGraph(group.graph, group.editor(), group.plan);
}

function deployGraph(graph: GraphProto, editor: GraphEditor, plan: readonly WeightOnlyQuantization[]): void {
  const before = new Map<NodeProto, NodeProto[]>();
  const after = new Map<NodeProto, NodeProto[]>();
  const node = (opType: string, base: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) =>
    onnx.NodeProto.create({ name: editor.name(`${base}/${opType}`), opType, input, output, attribute: attribute.map((a) => onnx.AttributeProto.create(a)) });
  const toFloat = [intAttr('to', DataType.FLOAT)];
  for (const { layer, weights } of plan) {
    const target = nodeIn(graph, layer);
    for (const [input, { spec, q }] of weights) {
      const qName = editor.addInitializer(makeTensor(`${spec.name}_quantized`, DataType.INT8, spec.dims, q.q));
      if (layer.opType === 'Gather') {
        const [, ids] = target.input!;
        const output = target.output![0]!;
        target.input![0] = qName;
        const rows = editor.name(`${output}_quantized`);
        target.output![0] = rows;
        const asFloat = editor.name(`${output}_int8_as_float`);
        const added = [node('Cast', layer.name, [rows], [asFloat], toFloat)];
        let scale = rowScale(editor, spec, q, [spec.dims[0]!, 1]);
        if (q.axis >= 0) {
          const looked = editor.name(`${output}_row_scale`);
          added.push(node('Gather', `${layer.name}/scale`, [scale, ids!], [looked], target.attribute?.filter((a) => a.name === 'axis') ?? []));
          scale = looked;
        }
        added.push(node('Mul', layer.name, [asFloat, scale], [output]));
        after.set(target, added);
      } else {
        const asFloat = editor.name(`${spec.name}_int8_as_float`);
        const value = editor.name(`${spec.name}_dequantized`);
        const scale = rowScale(editor, spec, q, [...spec.dims.slice(0, -1), 1]);
        before.set(target, [...(before.get(target) ?? []), node('Cast', spec.name, [qName], [asFloat], toFloat), node('Mul', spec.name, [asFloat, scale], [value])]);
        target.input![input] = value;
      }
    }
  }
  graph.node = graph.node!.flatMap((n) => [...(before.get(n) ?? []), n, ...(after.get(n) ?? [])]);
  editor.commit();
}
