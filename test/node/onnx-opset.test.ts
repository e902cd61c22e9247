/**
 * upgradeOpset: every conversion is checked by running the model before and after in
 * onnxruntime-web and comparing outputs, so a conversion that changes meaning fails here.
 */
import { describe, expect, it } from 'vitest';
import { createSession, OnnxFormatError, Tensor } from '../../src/index.js';
import { DataType, decodeModel, encodeModel, opsetVersion, upgradeOpset } from '../../src/subpaths/onnx.js';
import type { ModelProto } from '../../src/index.js';
import Long from 'long';
import { buildModel, float, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

async function run(model: ModelProto, x: Float32Array, dims: number[]): Promise<Float32Array[]> {
  const s = await createSession(encodeModel(model));
  try {
    const out = await s.run({ x: new Tensor('float32', x, dims) });
    return s.outputNames.map((n) => out[n]!.data as Float32Array);
  } finally {
    await s.release();
  }
}

async function expectSameAfterUpgrade(g: GraphBuilder, from: number, to: number, dims: number[], edit?: (m: ModelProto) => void): Promise<ModelProto> {
  const model = buildModel(g, { opset: from });
  edit?.(model);
  const rng = new Random(5);
  const x = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.uniform(-2, 2));
  const before = await run(model, x, dims);
  const upgraded = decodeModel(encodeModel(model));
  upgradeOpset(upgraded, to);
  expect(opsetVersion(upgraded)).toBe(to);
  const after = await run(upgraded, x, dims);
  expect(after.map((a) => Array.from(a))).toEqual(before.map((b) => Array.from(b)));
  return upgraded;
}

describe('upgradeOpset keeps what each converted operator computes', () => {
  it('Slice with an open end (INT64_MAX) from opset 9 to 13', async () => {
    const g = new GraphBuilder().input('x', DataType.FLOAT, [2, 4]).output('y', DataType.FLOAT);
    g.node('Slice', ['x'], ['y'], { starts: [1], ends: [0], axes: [1] });
    await expectSameAfterUpgrade(g, 9, 13, [2, 4], (m) => {
      // What exporters write for x[:, 1:]: an end no double can hold.
      m.graph!.node![0]!.attribute!.find((a) => a.name === 'ends')!.ints = [Long.MAX_VALUE];
    });
  });

  it('Clip with min/max attributes from opset 9 to 13', async () => {
    const g = new GraphBuilder().input('x', DataType.FLOAT, [6]).output('y', DataType.FLOAT);
    g.node('Clip', ['x'], ['y'], { min: -0.5, max: 1.25 });
    await expectSameAfterUpgrade(g, 9, 13, [6]);
  });

  it('Softmax over a non-last axis (2-D coercion) from opset 11 to 13', async () => {
    const g = new GraphBuilder().input('x', DataType.FLOAT, [2, 3, 4]).output('y', DataType.FLOAT);
    g.node('Softmax', ['x'], ['y'], { axis: 1 });
    await expectSameAfterUpgrade(g, 11, 13, [2, 3, 4]);
  });

  it('Squeeze, Unsqueeze and ReduceSum axes from opset 11 to 13, ReduceMean to 21', async () => {
    const g = new GraphBuilder().input('x', DataType.FLOAT, [2, 1, 3]).output('y', DataType.FLOAT);
    g.node('Squeeze', ['x'], ['s'], { axes: [1] });
    g.node('Unsqueeze', ['s'], ['u'], { axes: [0] });
    g.node('ReduceSum', ['u'], ['r'], { axes: [2], keepdims: 1 });
    g.node('ReduceMean', ['r'], ['y'], { axes: [0], keepdims: 0 });
    await expectSameAfterUpgrade(g, 11, 21, [2, 1, 3]);
  });

  it('Split without sizes to opset 21 (num_outputs added) and Pad with a constant value to 13', async () => {
    const g = new GraphBuilder().input('x', DataType.FLOAT, [2, 4]).output('a', DataType.FLOAT).output('b', DataType.FLOAT);
    g.node('Pad', ['x'], ['p'], { pads: [0, 1, 0, 1], value: 0.5 });
    g.node('Split', ['p'], ['a', 'b'], { axis: 1 });
    await expectSameAfterUpgrade(g, 9, 21, [2, 4]);
  });

  it('refuses what it cannot convert, names each node, and leaves the model unchanged', () => {
    const g = new GraphBuilder().input('x', DataType.DOUBLE, [2]).output('y', DataType.FLOAT);
    g.node('Clip', ['x'], ['c'], { min: 0.5, max: 1.5 }, { name: 'clip_double' });
    g.node('Upsample', ['c', 'scales'], ['u'], { mode: 'nearest' }, { name: 'old_upsample' });
    g.node('Cast', ['u'], ['y'], { to: DataType.FLOAT });
    const model = buildModel(g, { opset: 9 });
    const before = encodeModel(model);
    let err: unknown;
    try {
      upgradeOpset(model, 13);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OnnxFormatError);
    expect((err as Error).message).toMatch(/clip_double \(Clip\): its data is of type 11/);
    expect((err as Error).message).toMatch(/old_upsample \(Upsample\): changed incompatibly at opset 10/);
    expect(Buffer.compare(Buffer.from(encodeModel(model)), Buffer.from(before))).toBe(0);
  });
});

describe('opset 6 models (old PyTorch exports)', () => {
  /** Conv → Add(bias, legacy broadcast on axis 1) → BatchNormalization(is_test) → Relu → Dropout(is_test) → Flatten → Gemm(broadcast) → Mul(scalar). */
  function network(legacy: boolean): ModelProto {
    const rng = new Random(606);
    const w = rng.normals(4 * 3 * 9, 0.3);
    const bias = rng.normals(4, 0.1);
    const g = new GraphBuilder('old')
      .input('x', DataType.FLOAT, [1, 3, 4, 4])
      .initializer('w', [4, 3, 3, 3], w)
      .node('Conv', ['x', 'w'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' });
    if (legacy) g.initializer('bias', [4], bias).node('Add', ['c', 'bias'], ['a'], { broadcast: 1, axis: 1 }, { name: 'add' });
    else g.initializer('bias', [4, 1, 1], bias).node('Add', ['c', 'bias'], ['a'], {}, { name: 'add' });
    g.initializer('gamma', [4], rng.normals(4, 0.2).map((v) => 1 + v))
      .initializer('beta', [4], rng.normals(4, 0.1))
      .initializer('mean', [4], rng.normals(4, 0.1))
      .initializer('var', [4], rng.normals(4, 0.1).map((v) => 1 + Math.abs(v)))
      .node('BatchNormalization', ['a', 'gamma', 'beta', 'mean', 'var'], ['bn'], legacy ? { is_test: 1, epsilon: float(1e-5) } : { epsilon: float(1e-5) }, { name: 'bn' })
      .node('Relu', ['bn'], ['r'], {}, { name: 'relu' })
      .node('Dropout', ['r'], ['d'], legacy ? { is_test: 1, ratio: float(0.5) } : {}, { name: 'dropout' })
      .node('Flatten', ['d'], ['f'], {}, { name: 'flatten' })
      .initializer('w2', [64, 10], rng.normals(640, 0.1))
      .initializer('c2', [10], rng.normals(10, 0.1))
      .node('Gemm', ['f', 'w2', 'c2'], ['y'], legacy ? { broadcast: 1 } : {}, { name: 'fc' })
      .initializer('s', [1], new Float32Array([0.5]))
      .node('Mul', ['y', 's'], ['z'], legacy ? { broadcast: 1 } : {}, { name: 'scale' })
      .output('z', DataType.FLOAT, [1, 10]);
    return buildModel(g, { opset: legacy ? 6 : 13 });
  }

  it('are raised to opset 13 computing what the same network written for opset 13 computes', async () => {
    const old = network(true);
    upgradeOpset(old, 13);
    expect(opsetVersion(old)).toBe(13);
    const add = old.graph!.node!.find((n) => n.name === 'add')!;
    expect(add.attribute ?? []).toEqual([]);
    const x = new Random(7).normals(48);
    const run = async (m: ModelProto) => {
      const s = await createSession(encodeModel(m), { graphOptimizationLevel: 'disabled' });
      const out = (await s.run({ x: new Tensor('float32', x, [1, 3, 4, 4]) })).z!.data as Float32Array;
      await s.release();
      return out;
    };
    const [got, want] = [await run(old), await run(network(false))];
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 6);
  });

  it('a legacy broadcast whose input ranks the graph does not state cannot be converted, and says why', () => {
    const g = new GraphBuilder('unknown-rank').input('x', DataType.FLOAT).input('b', DataType.FLOAT)
      .node('Add', ['x', 'b'], ['y'], { broadcast: 1, axis: 1 }, { name: 'add' }).output('y', DataType.FLOAT);
    expect(() => upgradeOpset(buildModel(g, { opset: 6 }), 7)).toThrow(/add \(Add\): broadcast with axis=1 needs the ranks of both inputs/);
  });

  it('can be quantized: the pipeline raises them to opset 7, which ONNX Runtime runs', async () => {
    const { createQuantConfig, quantizeModel } = await import('../../src/index.js');
    const bytes = encodeModel(network(true));
    const config = await createQuantConfig(bytes);
    const r = await quantizeModel(bytes, config, [{ x: new Tensor('float32', new Random(8).normals(48), [1, 3, 4, 4]) }]);
    expect(r.layers.filter((l) => l.quantized).map((l) => l.name).sort()).toEqual(['conv', 'fc']);
    expect(opsetVersion(decodeModel(r.deployModel))).toBeGreaterThanOrEqual(10);
  });
});
