/**
 * Writes a quantization plan into a graph, in one pass, in one of two forms:
 * - fake-quant: float weights replaced by their dequantized values and activations passed through
 *   Div → clip → round → Mul, which is QuantizeLinear∘DequantizeLinear written with ops that have
 *   WebGPU kernels in onnxruntime-web (QuantizeLinear, Round and Clip-6 have none, so they would
 *   bounce through the CPU; see portable.ts);
 * - deploy: int8 weights and int32 biases behind DequantizeLinear, Q/DQ around activations, the
 *   QDQ form runtimes fuse into integer kernels.
 * Both compute the same values: the chain rounds x / s half to even and saturates, as Q does.
 */
import { intAttr, GraphEditor } from '../../onnx/editor.js';
import { consumerMap, findAttribute, opsetVersion, type Consumer } from '../../onnx/graph.js';
import { allNames, byGraph } from '../../onnx/scope.js';
import { DataType, adoptTensor, makeTensor } from '../../onnx/tensor.js';
import { onnx, type GraphProto, type ModelProto, type NodeProto } from '../../onnx/types.js';
import type { OutputPlacement, OutputQuantization, QuantFactors } from '../decide/outputs.js';
import { activationRange } from '../calibrate/params.js';
import type { LayerInfo } from '../prepare/registry.js';
import type { Int8WeightType } from './int8-kernels.js';
import { emitClip, emitRound } from './portable.js';
import type { QuantizedBias, QuantizedWeight } from './weights.js';

export interface LayerQuantization {
  layer: LayerInfo;
  activation: QuantFactors;
  /** The factors of the second activation of a MatMul of two (layer.second). */
  second?: QuantFactors;
  /** Calibrated factors of the layer's output (see decide/outputs.ts), where known. */
  output?: QuantFactors;
  /** Only exact output placements (see decide/outputs.ts). */
  keepOutputFloat?: boolean;
  weight?: QuantizedWeight;
  bias?: QuantizedBias;
}

function nodesByName(graph: GraphProto): Map<string, NodeProto> {
  return new Map((graph.node ?? []).map((n) => [n.name ?? '', n]));
}

function scalar(name: string, value: number, dataType: number = DataType.FLOAT) {
  return makeTensor(name, dataType, [], [value]);
}

/** The lowest default-domain opset the deploy form of `plan` needs. */
export function requiredDeployOpset(plan: readonly LayerQuantization[]): number {
  let need = 10; // QuantizeLinear / DequantizeLinear
  for (const p of plan) {
    if (p.activation.bits === 16) need = Math.max(need, 21);
    if ((p.weight && p.weight.axis >= 0) || (p.bias && p.bias.scale.length > 1)) need = Math.max(need, 13);
  }
  return need;
}

/**
 * Where to insert the quantization of `tensor`: before its first reader, so that every reader,
 * including ones a later pass rewires to the quantized value, comes after it.
 */
function firstReader(readers: Map<string, Consumer[]>, tensor: string, fallback: NodeProto): NodeProto {
  const list = readers.get(tensor) ?? [];
  return list.length ? list.reduce((a, b) => (b.index < a.index ? b : a)).node : fallback;
}

/** QuantizeLinear∘DequantizeLinear of `x` as Div → clip → round → Mul, inserted before `anchor`. */
function fakeQuantChain(editor: GraphEditor, anchor: NodeProto, opset: number, base: string, x: string, f: QuantFactors): string {
  const { qmin, qmax } = activationRange(f.bits);
  const s = editor.addInitializer(scalar(`${base}.scale`, f.scale));
  const [div] = editor.insertBefore(anchor, { opType: 'Div', name: `${base}/Div`, inputs: [x, s] });
  // Clipping before rounding equals Q's saturation after it, because the bounds are integers;
  // it also keeps the rounding trick within its exact range.
  const clipped = emitClip(editor, anchor, opset, base, div!, qmin - f.zeroPoint, qmax - f.zeroPoint);
  const rounded = emitRound(editor, anchor, base, clipped);
  return editor.insertBefore(anchor, { opType: 'Mul', name: `${base}/Mul`, inputs: [rounded, s], outputs: [editor.name(`${base}_fake_quant`)] })[0]!;
}

/**
 * Deploy-model activations: 8-bit ones as uint8 with the zero point moved by 128 (the same values:
 * both Q and DQ shift by 128), which is what ONNX Runtime's x86 integer kernels take. It converts
 * int8 Q/DQ pairs itself, but only pairs with single scales, so an int8 Q that also feeds a per-axis
 * DequantizeLinear (see dequantizeLinear) would stay int8 and unfused.
 */
function activationType(f: QuantFactors): { dataType: number; zeroPoint: number; array: Uint8ArrayConstructor | Int16ArrayConstructor } {
  return f.bits === 8
    ? { dataType: DataType.UINT8, zeroPoint: f.zeroPoint + 128, array: Uint8Array }
    : { dataType: DataType.INT16, zeroPoint: f.zeroPoint, array: Int16Array };
}

/** QuantizeLinear of `x`, inserted before `anchor`; returns its output, scale and zero point. */
function quantizeLinear(editor: GraphEditor, anchor: NodeProto, base: string, x: string, f: QuantFactors): Quantized {
  const scale = editor.addInitializer(scalar(`${base}.scale`, f.scale));
  const t = activationType(f);
  const zeroPoint = editor.addInitializer(scalar(`${base}.zero_point`, t.zeroPoint, t.dataType));
  const [q] = editor.insertBefore(anchor, { opType: 'QuantizeLinear', name: `${base}/QuantizeLinear`, inputs: [x, scale, zeroPoint], outputs: [editor.name(`${base}_quantized`)] });
  return { q: q!, scale, zeroPoint };
}

interface Quantized {
  q: string;
  scale: string;
  zeroPoint: string;
}

/**
 * DequantizeLinear of `q`, inserted before `anchor`. With `perAxis` its one scale is repeated along
 * that axis (the channels, or a spatial axis for a single channel): the values are the same, but
 * ONNX Runtime fuses only a DequantizeLinear with a single scale into QLinearConv, and only such a
 * one makes it quantize a layer's (folded) float weights itself, per tensor (WeightBiasQuantization). That keeps a depthwise or single-channel
 * convolution, for which the integer kernel is several times slower, on its float kernel with our
 * weights even when a QuantizeLinear (the next layer's input) follows it.
 */
function dequantizeLinear(editor: GraphEditor, anchor: NodeProto, base: string, q: Quantized, f: QuantFactors, perAxis?: PerAxis): string {
  let scale = q.scale;
  let zeroPoint = q.zeroPoint;
  if (perAxis) {
    const n = perAxis.size;
    scale = editor.addInitializer(makeTensor(`${base}.axis_scale`, DataType.FLOAT, [n], new Float32Array(n).fill(f.scale)));
    const t = activationType(f);
    zeroPoint = editor.addInitializer(makeTensor(`${base}.axis_zero_point`, t.dataType, [n], new t.array(n).fill(t.zeroPoint)));
  }
  return editor.insertBefore(anchor, {
    opType: 'DequantizeLinear', name: `${base}/DequantizeLinear`, inputs: [q.q, scale, zeroPoint],
    outputs: [editor.name(`${base}_dequantized`)], attributes: perAxis ? [intAttr('axis', perAxis.axis)] : [],
  })[0]!;
}

/** QuantizeLinear → DequantizeLinear of `x`, inserted before `anchor`. */
function qdqPair(editor: GraphEditor, anchor: NodeProto, base: string, x: string, f: QuantFactors): string {
  return dequantizeLinear(editor, anchor, base, quantizeLinear(editor, anchor, base, x, f), f);
}

/**
 * The axis and size for the per-axis DequantizeLinear that keeps a layer on its float kernel (see
 * dequantizeLinear), or undefined where no layer is at risk or no axis is known to be longer than 1
 * (a scale of one element counts as a single scale).
 */
function keepFloatAxis(graph: GraphProto, node: NodeProto, layer: LayerInfo): PerAxis | undefined {
  if (!layer.weight || (layer.opType !== 'Conv' && layer.opType !== 'ConvTranspose')) return undefined;
  const dims = layer.weight.dims;
  const channels = layer.opType === 'Conv' ? dims[1]! * Number(findAttribute(node, 'group')?.i ?? 1) : dims[0]!;
  if (channels > 1) return { axis: 1, size: channels };
  // One input channel: any spatial axis of known length will do.
  const declared = [...(graph.input ?? []), ...(graph.valueInfo ?? [])].find((v) => v.name === node.input![0]);
  const shape = declared?.type?.tensorType?.shape?.dim ?? [];
  for (let axis = shape.length - 1; axis >= 2; axis--) {
    const size = Number(shape[axis]?.dimValue ?? 0);
    if (size > 1) return { axis, size };
  }
  return undefined;
}

interface PerAxis {
  axis: number;
  size: number;
}

type Quantizer = (editor: GraphEditor, anchor: NodeProto, base: string, x: string, f: QuantFactors) => string;

const factorKey = (tensor: string, f: QuantFactors) => `${tensor}|${f.scale}|${f.zeroPoint}|${f.bits}`;

/**
 * Second pass: quantizes layer outputs (see decide/outputs.ts). Every reader of the tensor that the first
 * pass left reading it (the model's own nodes) reads the quantized value instead; a Q/DQ the first
 * pass already put on that tensor with the same factors is reused.
 */
function quantizeOutputs(graph: GraphProto, outputs: readonly OutputQuantization[], made: Map<string, string>, quantize: Quantizer, ownNodes: ReadonlySet<NodeProto>): void {
  if (outputs.length === 0) return;
  const editor = new GraphEditor(graph);
  const readers = consumerMap(graph);
  for (const o of outputs) {
    const users = (readers.get(o.tensor) ?? []).filter((r) => ownNodes.has(r.node) && r.inputIndex >= 0);
    if (users.length === 0) continue;
    const key = factorKey(o.tensor, o.activation);
    let q = made.get(key);
    if (!q) {
      const first = users.reduce((a, b) => (b.index < a.index ? b : a));
      q = quantize(editor, first.node, `${o.layer}.output`, o.tensor, o.activation);
      made.set(key, q);
    }
    for (const u of users) u.node.input![u.inputIndex] = q;
  }
  editor.commit();
}

/**
 * `switches`: each calibrated output quantization is written as `Where(flag, fake-quant(x), x)`
 * with `flag` a new scalar bool graph input, so one session can evaluate any subset of them (needs
 * opset 9). Returns the flag input of each such output's layer.
 */
export function writeFakeQuant(
  model: ModelProto,
  plan: readonly LayerQuantization[],
  outputs: readonly OutputQuantization[] = [],
  switches = false,
): Map<string, string> {
  const graph = model.graph!;
  const opset = opsetVersion(model) ?? 1;
  const { main, bodies } = splitByGraph(model, plan);
  const ownNodes = new Set(graph.node ?? []);
  const chains = fakeQuantLayers(new GraphEditor(graph), opset, main);
  for (const [body, layers] of bodies) fakeQuantLayers(new GraphEditor(body, allNames(graph)), opset, layers);
  // Exact output placements change no value, so the fake-quant model leaves them out.
  const flags = new Map<string, string>();
  const fakeQuant: Quantizer = (e, anchor, base, x, f) => fakeQuantChain(e, anchor, opset, base, x, f);
  const switched = (layer: string): Quantizer => (e, anchor, base, x, f) => {
    const fq = fakeQuantChain(e, anchor, opset, base, x, f);
    const flag = e.name(`${base}.enabled`);
    graph.input = [...(graph.input ?? []), onnx.ValueInfoProto.create({ name: flag, type: { tensorType: { elemType: DataType.BOOL, shape: { dim: [] } } } })];
    flags.set(layer, flag);
    return e.insertBefore(anchor, { opType: 'Where', name: `${base}/Switch`, inputs: [flag, fq, x] })[0]!;
  };
  const calibrated = outputs.filter((o) => !o.exact);
  if (!switches) quantizeOutputs(graph, calibrated, chains, fakeQuant, ownNodes);
  // One at a time, so no two switches share a chain.
  else for (const o of calibrated) quantizeOutputs(graph, [o], new Map(), switched(o.layer), ownNodes);
  return flags;
}

/**
 * The plan split by the graph its layers are in: the main graph's, and each If branch's (whose
 * layers get their inputs and weights quantized, never their outputs: see decide/outputs.ts).
 */
function splitByGraph(model: ModelProto, plan: readonly LayerQuantization[]): { main: LayerQuantization[]; bodies: Map<GraphProto, LayerQuantization[]> } {
  const bodies = byGraph(model.graph!, plan, (p) => p.layer.scope, (p) => `layer '${p.layer.name}'`);
  const main = bodies.get(model.graph!) ?? [];
  bodies.delete(model.graph!);
  return { main, bodies };
}

/** The first pass of the fake-quant form over one graph's layers; returns the chains made, by tensor and factors. */
function fakeQuantLayers(editor: GraphEditor, opset: number, plan: readonly LayerQuantization[]): Map<string, string> {
  const graph = editor.graph;
  const nodes = nodesByName(graph);
  const chains = new Map<string, string>();
  const weights = new Map<string, string>();
  const readers = consumerMap(graph);
  for (const p of plan) {
    const node = nodes.get(p.layer.name)!;
    // One chain per tensor and factors, shared by every layer reading it with those factors.
    const chain = (tensor: string, f: QuantFactors, base: string) => {
      const key = factorKey(tensor, f);
      let fq = chains.get(key);
      if (!fq) {
        fq = fakeQuantChain(editor, firstReader(readers, tensor, node), opset, base, tensor, f);
        chains.set(key, fq);
      }
      return fq;
    };
    const inputs = [...node.input!];
    inputs[0] = chain(p.layer.activation, p.activation, `${p.layer.name}.input`);
    if (p.second && p.layer.second) inputs[1] = chain(p.layer.second, p.second, `${p.layer.name}.input_b`);
    if (p.weight && p.layer.weight) {
      // Layers sharing a weight share its quantized copy only when they quantize it the same way.
      const key = `${p.layer.weight.name}|${p.weight.axis}`;
      let w = weights.get(key);
      if (!w) {
        w = editor.addInitializer(adoptTensor(`${p.layer.weight.name}_fake_quant`, DataType.FLOAT, p.layer.weight.dims, p.weight.fq));
        weights.set(key, w);
      }
      inputs[1] = w;
    }
    if (p.bias && p.layer.bias) {
      inputs[2] = editor.addInitializer(adoptTensor(`${p.layer.name}.bias_fake_quant`, DataType.FLOAT, p.bias.dims, p.bias.fq));
    }
    node.input = inputs;
  }
  editor.commit();
  return chains;
}

interface QuantizedConstant {
  dataType: number;
  dims: readonly number[];
  q: Int8Array | Int32Array;
  scale: Float32Array;
  /** Axis of the per-channel scale, or -1 for one scale. */
  axis: number;
}

/**
 * A quantized constant and how it becomes float again, inserted before `anchor`; returns the float
 * output. 'dequantize': DequantizeLinear with explicit zero points (0; onnxruntime's QGemm fusion
 * needs them present), the form onnxruntime fuses into integer kernels. 'cast': Cast → Mul by the
 * scale, the same values (float(q) · scale, one rounding), which onnxruntime folds into a float
 * constant when it loads the model (it never folds DequantizeLinear): for layers that will not run as
 * integer kernels, so they get the float model's kernels and layouts instead of dequantizing their
 * weights on every run, while the file still stores int8.
 */
function quantizedConstant(editor: GraphEditor, anchor: NodeProto, base: string, c: QuantizedConstant, form: 'dequantize' | 'cast', weightType: Int8WeightType = 'int8'): string {
  const { dims, scale, axis } = c;
  // uint8 codes with zero point 128 are the int8 codes' values (see int8-kernels.ts); only integer kernels read them.
  const shifted = form === 'dequantize' && weightType === 'uint8' && c.dataType === DataType.INT8;
  const dataType = shifted ? DataType.UINT8 : c.dataType;
  const q = shifted ? Uint8Array.from(c.q as Int8Array, (v) => v + 128) : c.q;
  const qName = editor.addInitializer(adoptTensor(`${base}_quantized`, dataType, dims, q));
  const output = editor.name(`${base}_dequantized`);
  if (form === 'cast') {
    const scaleDims = axis >= 0 ? dims.map((d, i) => (i === axis ? d : 1)) : [];
    const sName = editor.addInitializer(makeTensor(`${base}_scale`, DataType.FLOAT, scaleDims, scale));
    const [asFloat] = editor.insertBefore(anchor, { opType: 'Cast', name: `${base}/Cast`, inputs: [qName], attributes: [intAttr('to', DataType.FLOAT)] });
    return editor.insertBefore(anchor, { opType: 'Mul', name: `${base}/Scale`, inputs: [asFloat!, sName], outputs: [output] })[0]!;
  }
  const scaleDims = axis >= 0 ? [scale.length] : [];
  const sName = editor.addInitializer(makeTensor(`${base}_scale`, DataType.FLOAT, scaleDims, scale));
  const zeros = shifted ? new Uint8Array(scale.length).fill(128) : new (dataType === DataType.INT8 ? Int8Array : Int32Array)(scale.length);
  const zName = editor.addInitializer(makeTensor(`${base}_zero_point`, dataType, scaleDims, zeros));
  return editor.insertBefore(anchor, {
    opType: 'DequantizeLinear', name: `${base}/DequantizeLinear`, inputs: [qName, sName, zName],
    outputs: [output], attributes: axis >= 0 ? [intAttr('axis', axis)] : [],
  })[0]!;
}

export function writeDeploy(model: ModelProto, plan: readonly LayerQuantization[], placement: OutputPlacement = { outputs: [], fused: new Set() }, weightType: Int8WeightType = 'int8'): void {
  const graph = model.graph!;
  const opset = opsetVersion(model) ?? 1;
  const { main, bodies } = splitByGraph(model, plan);
  const ownNodes = new Set(graph.node ?? []);
  const activations = deployLayers(new GraphEditor(graph), opset, main, placement.fused, weightType);
  for (const [body, layers] of bodies) deployLayers(new GraphEditor(body, allNames(graph)), opset, layers, new Set(), weightType);
  quantizeOutputs(graph, placement.outputs, activations, qdqPair, ownNodes);
}

/** The deploy form of one graph's layers (inputs and weights); returns the DQs made, by tensor and factors. */
function deployLayers(editor: GraphEditor, opset: number, plan: readonly LayerQuantization[], fused: ReadonlySet<string>, weightType: Int8WeightType): Map<string, string> {
  const graph = editor.graph;
  const nodes = nodesByName(graph);
  const activations = new Map<string, string>();
  const quantized = new Map<string, Quantized>();
  const weights = new Map<string, string>();
  const readers = consumerMap(graph);

  for (const p of plan) {
    const node = nodes.get(p.layer.name)!;
    // MatMul and Gemm run as integer kernels in ONNX Runtime even with a float output.
    const integer = fused.has(p.layer.name) || (p.activation.bits === 8 && (p.layer.opType === 'MatMul' || p.layer.opType === 'Gemm'));
    const form = integer ? 'dequantize' : 'cast';
    // Layers left to float kernels read a per-axis DequantizeLinear (see dequantizeLinear; it needs
    // opset 13, below which such layers may be fused).
    const perAxis = integer || opset < 13 ? undefined : keepFloatAxis(graph, node, p.layer);
    // One Q per tensor and factors, one DQ per Q and axis, shared by every layer reading them.
    const dequantized = (tensor: string, f: QuantFactors, base: string, axis?: PerAxis) => {
      const key = factorKey(tensor, f);
      const dqKey = axis ? `${key}|${axis.axis}|${axis.size}` : key;
      let dq = activations.get(dqKey);
      if (!dq) {
        let q = quantized.get(key);
        if (!q) {
          q = quantizeLinear(editor, firstReader(readers, tensor, node), base, tensor, f);
          quantized.set(key, q);
        }
        dq = dequantizeLinear(editor, node, base, q, f, axis);
        activations.set(dqKey, dq);
      }
      return dq;
    };
    const inputs = [...node.input!];
    inputs[0] = dequantized(p.layer.activation, p.activation, `${p.layer.name}.input`, perAxis);
    if (p.second && p.layer.second) inputs[1] = dequantized(p.layer.second, p.second, `${p.layer.name}.input_b`);
    if (p.weight && p.layer.weight) {
      const wq = p.weight;
      const key = `${p.layer.weight.name}|${wq.axis}|${integer}`;
      let w = weights.get(key);
      if (!w) {
        w = quantizedConstant(editor, node, p.layer.weight.name, { dataType: DataType.INT8, dims: p.layer.weight.dims, q: wq.q, scale: wq.scale, axis: wq.axis }, form, weightType);
        // Plans follow node order, so a shared weight's DQ lands before its first reader.
        weights.set(key, w);
      }
      inputs[1] = w;
    }
    if (p.bias && p.layer.bias) {
      const b = p.bias;
      const axis = b.scale.length > 1 ? b.dims.length - 1 : -1;
      inputs[2] = quantizedConstant(editor, node, `${p.layer.name}.bias`, { dataType: DataType.INT32, dims: b.dims, q: b.q, scale: b.scale, axis }, form);
    }
    node.input = inputs;
  }
  editor.commit();
  return activations;
}
