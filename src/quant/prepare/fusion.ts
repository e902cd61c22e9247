/**
 * Conv + BatchNormalization folding (AMCT's do_fusion): in inference BN is a per-channel affine
 * map, so it folds into the Conv's weight and bias and the Conv is then quantized with the weights
 * it will really use. Constant Mul/Add right after a Conv (scalar or per output channel, e.g. the
 * "learnable affine blocks" of PP-LCNetV3) are the same kind of map and fold the same way: ONNX
 * Runtime folds them for the float model too, but cannot once the weights sit behind a
 * DequantizeLinear, so left in place they would cost the deploy model two passes over the tensor.
 */
import { GraphEditor } from '../../onnx/editor.js';
import { consumerMap, findAttribute, getConstant, nodeNames, producerMap } from '../../onnx/graph.js';
import { DataType, adoptTensor, readTensorAsFloat32, tensorDims } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';

export interface FoldedPair {
  conv: string;
  batchNorm: string;
}

/** Folds every eligible Conv→BatchNormalization pair of `graph` in place; returns the pairs. */
export function foldBatchNorms(graph: GraphProto, skipConvs: ReadonlySet<string> = new Set()): FoldedPair[] {
  const names = nodeNames(graph);
  const nameOf = new Map((graph.node ?? []).map((n, i) => [n, names[i]!]));
  const producers = producerMap(graph);
  const consumers = consumerMap(graph);
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const editor = new GraphEditor(graph);
  const removed = new Set<NodeProto>();
  const folded: FoldedPair[] = [];

  for (const bn of graph.node ?? []) {
    if (bn.opType !== 'BatchNormalization' || (bn.domain && bn.domain !== 'ai.onnx')) continue;
    if ((bn.output ?? []).slice(1).some((o) => o)) continue; // training-mode outputs in use
    const convOut = bn.input?.[0] ?? '';
    const p = producers.get(convOut);
    const conv = p?.node;
    if (!conv || conv.opType !== 'Conv' || (conv.domain && conv.domain !== 'ai.onnx')) continue;
    const convName = nameOf.get(conv)!;
    if (skipConvs.has(convName)) continue;
    if ((consumers.get(convOut) ?? []).length !== 1 || outputs.has(convOut)) continue;
    const w = getConstant(graph, conv.input?.[1] ?? '');
    const b = conv.input?.[2] ? getConstant(graph, conv.input[2]) : undefined;
    if (!w || w.dataType !== DataType.FLOAT || (conv.input?.[2] && (!b || b.dataType !== DataType.FLOAT))) continue;
    const stats = [1, 2, 3, 4].map((i) => getConstant(graph, bn.input?.[i] ?? ''));
    if (stats.some((t) => !t || t.dataType !== DataType.FLOAT)) continue;
    const [gamma, beta, mean, variance] = stats.map((t) => readTensorAsFloat32(t!));
    const dims = tensorDims(w);
    const cout = dims[0]!;
    if ([gamma, beta, mean, variance].some((v) => v!.length !== cout)) continue;
    const eps = findAttribute(bn, 'epsilon')?.f ?? 1e-5;

    const wv = readTensorAsFloat32(w);
    const bv = b ? readTensorAsFloat32(b) : new Float32Array(cout);
    const per = wv.length / cout;
    const nw = new Float32Array(wv.length);
    const nb = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      const f = gamma![c]! / Math.sqrt(variance![c]! + Math.fround(eps));
      for (let i = 0; i < per; i++) nw[c * per + i] = wv[c * per + i]! * f;
      nb[c] = (bv[c]! - mean![c]!) * f + beta![c]!;
    }
    const wName = editor.addInitializer(adoptTensor(`${convName}.weight_folded`, DataType.FLOAT, dims, nw));
    const bName = editor.addInitializer(adoptTensor(`${convName}.bias_folded`, DataType.FLOAT, [cout], nb));
    conv.input = [conv.input![0]!, wName, bName];
    conv.output = [bn.output![0]!];
    removed.add(bn);
    folded.push({ conv: convName, batchNorm: nameOf.get(bn)! });
  }
  graph.node = (graph.node ?? []).filter((n) => !removed.has(n));
  editor.commit();
  return folded;
}

export interface FoldedAffine {
  conv: string;
  /** The folded Mul or Add node. */
  node: string;
  opType: 'Mul' | 'Add';
}

/**
 * Per-channel values of a constant that broadcasts against a Conv output of rank `rank` along the
 * channel axis only (a scalar, [C], [C,1,1], [1,C,1,1], ...), expanded to `cout`; else undefined.
 */
export function channelValues(value: Float32Array, dims: readonly number[], rank: number, cout: number): Float32Array | undefined {
  if (dims.length > rank) return undefined;
  const padded = [...new Array(rank - dims.length).fill(1), ...dims];
  if (padded.some((d, i) => i !== 1 && d !== 1)) return undefined;
  if (value.length === 1) return new Float32Array(cout).fill(value[0]!);
  return value.length === cout ? value : undefined;
}

/**
 * Folds constant Mul and Add nodes that directly follow a Conv into its weight and bias, in place,
 * repeatedly (Conv→Mul→Add folds both). Only where the Conv's output has that node as its sole
 * reader and is not a graph output, so no other reader sees a changed value.
 */
export function foldAffines(graph: GraphProto, skipConvs: ReadonlySet<string> = new Set()): FoldedAffine[] {
  const names = nodeNames(graph);
  const nameOf = new Map((graph.node ?? []).map((n, i) => [n, names[i]!]));
  const outputs = new Set((graph.output ?? []).map((o) => o.name));
  const editor = new GraphEditor(graph);
  const removed = new Set<NodeProto>();
  const folded: FoldedAffine[] = [];
  for (const conv of graph.node ?? []) {
    if (conv.opType !== 'Conv' || (conv.domain && conv.domain !== 'ai.onnx')) continue;
    const convName = nameOf.get(conv)!;
    if (skipConvs.has(convName)) continue;
    for (;;) {
      const out = conv.output?.[0] ?? '';
      const readers = (graph.node ?? []).filter((n) => !removed.has(n) && (n.input ?? []).includes(out));
      const next = readers[0];
      if (readers.length !== 1 || outputs.has(out) || !next || (next.opType !== 'Mul' && next.opType !== 'Add') || (next.domain && next.domain !== 'ai.onnx')) break;
      if (next.input?.length !== 2 || next.input[0] === next.input[1]) break;
      const other = next.input[0] === out ? next.input[1]! : next.input[0]!;
      const k = getConstant(graph, other);
      const w = getConstant(graph, conv.input?.[1] ?? '');
      const b = conv.input?.[2] ? getConstant(graph, conv.input[2]) : undefined;
      if (!k || k.dataType !== DataType.FLOAT || !w || w.dataType !== DataType.FLOAT || (conv.input?.[2] && (!b || b.dataType !== DataType.FLOAT))) break;
      const dims = tensorDims(w);
      const cout = dims[0]!;
      const per = channelValues(readTensorAsFloat32(k), tensorDims(k), dims.length, cout);
      if (!per) break;
      const wv = readTensorAsFloat32(w);
      const nb = b ? Float32Array.from(readTensorAsFloat32(b)) : new Float32Array(cout);
      let nw = wv;
      if (next.opType === 'Mul') {
        const size = wv.length / cout;
        nw = new Float32Array(wv.length);
        for (let c = 0; c < cout; c++) {
          for (let i = 0; i < size; i++) nw[c * size + i] = wv[c * size + i]! * per[c]!;
          nb[c] = nb[c]! * per[c]!;
        }
      } else {
        for (let c = 0; c < cout; c++) nb[c] = nb[c]! + per[c]!;
      }
      const wName = nw === wv ? conv.input![1]! : editor.addInitializer(adoptTensor(`${convName}.weight_folded`, DataType.FLOAT, dims, nw));
      const bName = editor.addInitializer(adoptTensor(`${convName}.bias_folded`, DataType.FLOAT, [cout], nb));
      conv.input = [conv.input![0]!, wName, bName];
      conv.output = [next.output![0]!];
      removed.add(next);
      folded.push({ conv: convName, node: nameOf.get(next)!, opType: next.opType });
    }
  }
  graph.node = (graph.node ?? []).filter((n) => !removed.has(n));
  editor.commit();
  return folded;
}
