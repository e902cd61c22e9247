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
import { intAttr, GraphEditor } from '../onnx/editor.js';
import { opsetVersion } from '../onnx/graph.js';
import { DataType, makeTensor } from '../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto } from '../onnx/types.js';
import { activationRange } from './params.js';
import type { LayerInfo } from './registry.js';
import { emitClip, emitRound } from './portable.js';
import type { QuantizedBias, QuantizedWeight } from './weights.js';

export interface LayerQuantization {
  layer: LayerInfo;
  activation: { scale: number; zeroPoint: number; bits: 8 | 16 };
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

export function writeFakeQuant(model: ModelProto, plan: readonly LayerQuantization[]): void {
  const graph = model.graph!;
  const opset = opsetVersion(model) ?? 1;
  const editor = new GraphEditor(graph);
  const nodes = nodesByName(graph);
  const chains = new Map<string, string>();
  const weights = new Map<string, string>();

  for (const p of plan) {
    const node = nodes.get(p.layer.name)!;
    const { scale, zeroPoint, bits } = p.activation;
    const { qmin, qmax } = activationRange(bits);
    const key = `${p.layer.activation}|${scale}|${zeroPoint}|${bits}`;
    let fq = chains.get(key);
    if (!fq) {
      const base = `${p.layer.name}.input`;
      const s = editor.addInitializer(scalar(`${base}.scale`, scale));
      const [div] = editor.insertBefore(node, { opType: 'Div', name: `${base}/Div`, inputs: [p.layer.activation, s] });
      // Clipping before rounding equals Q's saturation after it, because the bounds are integers;
      // it also keeps the rounding trick within its exact range.
      const clipped = emitClip(editor, node, opset, base, div!, qmin - zeroPoint, qmax - zeroPoint);
      const rounded = emitRound(editor, node, base, clipped);
      [fq] = editor.insertBefore(node, { opType: 'Mul', name: `${base}/Mul`, inputs: [rounded!, s], outputs: [editor.name(`${base}_fake_quant`)] });
      chains.set(key, fq!);
    }
    const inputs = [...node.input!];
    inputs[0] = fq!;
    if (p.weight && p.layer.weight) {
      // Layers sharing a weight share its quantized copy only when they quantize it the same way.
      const key = `${p.layer.weight.name}|${p.weight.axis}`;
      let w = weights.get(key);
      if (!w) {
        w = editor.addInitializer(makeTensor(`${p.layer.weight.name}_fake_quant`, DataType.FLOAT, p.layer.weight.dims, p.weight.fq));
        weights.set(key, w);
      }
      inputs[1] = w;
    }
    if (p.bias && p.layer.bias) {
      inputs[2] = editor.addInitializer(makeTensor(`${p.layer.name}.bias_fake_quant`, DataType.FLOAT, p.bias.dims, p.bias.fq));
    }
    node.input = inputs;
  }
  editor.commit();
}

/**
 * A quantized constant behind DequantizeLinear, inserted before `anchor`; returns the float output.
 * Symmetric, so the zero point is left out (0 is its default), which saves C bytes per tensor.
 */
function constantDequantized(
  editor: GraphEditor,
  anchor: NodeProto,
  base: string,
  dataType: number,
  dims: readonly number[],
  q: Int8Array | Int32Array,
  scale: Float32Array,
  axis: number,
): string {
  const qName = editor.addInitializer(makeTensor(`${base}_quantized`, dataType, dims, q));
  const sName = editor.addInitializer(makeTensor(`${base}_scale`, DataType.FLOAT, axis >= 0 ? [scale.length] : [], scale));
  const [out] = editor.insertBefore(anchor, {
    opType: 'DequantizeLinear', name: `${base}/DequantizeLinear`, inputs: [qName, sName],
    outputs: [editor.name(`${base}_dequantized`)], attributes: axis >= 0 ? [intAttr('axis', axis)] : [],
  });
  return out!;
}

export function writeDeploy(model: ModelProto, plan: readonly LayerQuantization[]): void {
  const graph = model.graph!;
  const editor = new GraphEditor(graph);
  const nodes = nodesByName(graph);
  const activations = new Map<string, string>();
  const weights = new Map<string, string>();

  for (const p of plan) {
    const node = nodes.get(p.layer.name)!;
    const { scale, zeroPoint, bits } = p.activation;
    const zpType = bits === 8 ? DataType.INT8 : DataType.INT16;
    const key = `${p.layer.activation}|${scale}|${zeroPoint}|${bits}`;
    let dq = activations.get(key);
    if (!dq) {
      const base = `${p.layer.name}.input`;
      const s = editor.addInitializer(scalar(`${base}.scale`, scale));
      const zp = editor.addInitializer(scalar(`${base}.zero_point`, zeroPoint, zpType));
      const [q] = editor.insertBefore(node, { opType: 'QuantizeLinear', name: `${base}/QuantizeLinear`, inputs: [p.layer.activation, s, zp], outputs: [editor.name(`${base}_quantized`)] });
      [dq] = editor.insertBefore(node, { opType: 'DequantizeLinear', name: `${base}/DequantizeLinear`, inputs: [q!, s, zp], outputs: [editor.name(`${base}_dequantized`)] });
      activations.set(key, dq!);
    }
    const inputs = [...node.input!];
    inputs[0] = dq!;
    if (p.weight && p.layer.weight) {
      const wq = p.weight;
      const key = `${p.layer.weight.name}|${wq.axis}`;
      let w = weights.get(key);
      if (!w) {
        w = constantDequantized(editor, node, p.layer.weight.name, DataType.INT8, p.layer.weight.dims, wq.q, wq.scale, wq.axis);
        // Plans follow node order, so a shared weight's DQ lands before its first reader.
        weights.set(key, w);
      }
      inputs[1] = w;
    }
    if (p.bias && p.layer.bias) {
      const b = p.bias;
      inputs[2] = constantDequantized(editor, node, `${p.layer.name}.bias`, DataType.INT32, b.dims, b.q, b.scale, b.scale.length > 1 ? b.dims.length - 1 : -1);
    }
    node.input = inputs;
  }
  editor.commit();
}
