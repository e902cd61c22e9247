/**
 * Conv + BatchNormalization folding (AMCT's do_fusion): in inference BN is a per-channel affine
 * map, so it folds into the Conv's weight and bias and the Conv is then quantized with the weights
 * it will really use.
 */
import { GraphEditor } from '../onnx/editor.js';
import { consumerMap, findAttribute, getConstant, nodeNames, producerMap } from '../onnx/graph.js';
import { DataType, makeTensor, readTensorAsFloat32, tensorDims } from '../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../onnx/types.js';

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
    const wName = editor.addInitializer(makeTensor(`${convName}.weight_folded`, DataType.FLOAT, dims, nw));
    const bName = editor.addInitializer(makeTensor(`${convName}.bias_folded`, DataType.FLOAT, [cout], nb));
    conv.input = [conv.input![0]!, wName, bName];
    conv.output = [bn.output![0]!];
    removed.add(bn);
    folded.push({ conv: convName, batchNorm: nameOf.get(bn)! });
  }
  graph.node = (graph.node ?? []).filter((n) => !removed.has(n));
  editor.commit();
  return folded;
}
