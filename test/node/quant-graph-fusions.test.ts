/**
 * The graph fusions applied with do_fusion before quantizing (fusion.ts, hardswish.ts): constant
 * Mul/Add after a Conv fold into it and hard-swish becomes one HardSwish op, the float function
 * stays the same (to float rounding), and nothing is folded where another reader would see it.
 */
import { describe, expect, test } from 'vitest';
import { createSession, type Feeds, type ModelProto, Tensor } from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { foldAffines } from '../../src/quant/prepare/fusion.js';
import { fuseHardSwish } from '../../src/quant/prepare/hardswish.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

async function run(model: ModelProto, feeds: Feeds): Promise<Float32Array> {
  const s = await createSession(encodeModel(model), { graphOptimizationLevel: 'disabled' });
  try {
    const out = await s.run(feeds);
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const maxRelDiff = (a: Float32Array, b: Float32Array) => {
  let scale = 0;
  for (const v of a) scale = Math.max(scale, Math.abs(v));
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0) / scale;
};
const ops = (m: ModelProto) => m.graph!.node!.map((n) => n.opType);

describe('constant Mul/Add after a Conv', () => {
  const rng = new Random(61);
  const feeds = { x: new Tensor('float32', rng.normals(2 * 3 * 8 * 8), [2, 3, 8, 8]) };
  const conv = (g: GraphBuilder) =>
    g.input('x', DataType.FLOAT, [2, 3, 8, 8]).initializer('W', [4, 3, 3, 3], rng.normals(108, 0.3)).initializer('B', [4], rng.normals(4, 0.1));

  test('a scalar Mul then a per-channel Add fold into the weight and bias with the same outputs', async () => {
    const m = buildModel(
      conv(new GraphBuilder())
        .node('Conv', ['x', 'W', 'B'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' })
        .initializer('s', [1], new Float32Array([2.5]))
        .node('Mul', ['s', 'c'], ['m'], {}, { name: 'scale' })
        .initializer('t', [1, 4, 1, 1], new Float32Array([0.1, -0.2, 0.3, -0.4]))
        .node('Add', ['m', 't'], ['y'], {}, { name: 'shift' })
        .output('y', DataType.FLOAT),
    );
    const before = await run(m, feeds);
    expect(foldAffines(m.graph!)).toEqual([
      { conv: 'conv', node: 'scale', opType: 'Mul' },
      { conv: 'conv', node: 'shift', opType: 'Add' },
    ]);
    expect(ops(m)).toEqual(['Conv']);
    expect(m.graph!.node![0]!.output).toEqual(['y']);
    expect(maxRelDiff(before, await run(m, feeds))).toBeLessThan(1e-6);
  });

  test('nothing folds when the Conv output has another reader, or the constant varies along another axis', () => {
    const shared = buildModel(
      conv(new GraphBuilder())
        .node('Conv', ['x', 'W', 'B'], ['c'], {}, { name: 'conv' })
        .initializer('s', [], new Float32Array([2]))
        .node('Mul', ['c', 's'], ['y'])
        .node('Relu', ['c'], ['z'])
        .output('y', DataType.FLOAT)
        .output('z', DataType.FLOAT),
    );
    expect(foldAffines(shared.graph!)).toEqual([]);
    const spatial = buildModel(
      conv(new GraphBuilder())
        .node('Conv', ['x', 'W', 'B'], ['c'], {}, { name: 'conv' })
        .initializer('s', [1, 1, 6, 1], rng.normals(6))
        .node('Mul', ['c', 's'], ['y'])
        .output('y', DataType.FLOAT),
    );
    expect(foldAffines(spatial.graph!)).toEqual([]);
    expect(ops(spatial)).toEqual(['Conv', 'Mul']);
  });
});

describe('hard-swish as one HardSwish op', () => {
  const rng = new Random(62);
  const x = rng.normals(4 * 64, 4);
  const feeds = { x: new Tensor('float32', x, [4, 64]) };
  const base = () =>
    new GraphBuilder().input('x', DataType.FLOAT, [4, 64])
      .initializer('zero', [], new Float32Array([0])).initializer('three', [], new Float32Array([3])).initializer('six', [], new Float32Array([6]));

  // [name, graph, initializers left afterwards: constants nothing read before stay]
  const forms: [string, () => GraphBuilder, string[]][] = [
    ['x · relu6(x + 3) / 6 (four ops)', () =>
      base().node('Add', ['x', 'three'], ['a']).node('Clip', ['a', 'zero', 'six'], ['c']).node('Div', ['c', 'six'], ['d']).node('Mul', ['x', 'd'], ['y']), []],
    ['(x · relu6(x + 3)) / 6', () =>
      base().node('Add', ['three', 'x'], ['a']).node('Clip', ['a', 'zero', 'six'], ['c']).node('Mul', ['c', 'x'], ['m']).node('Div', ['m', 'six'], ['y']), []],
    ['x · HardSigmoid(x; 1/6, 0.5)', () =>
      base().node('HardSigmoid', ['x'], ['h'], { alpha: 1 / 6, beta: 0.5 }).node('Mul', ['h', 'x'], ['y']), ['zero', 'three', 'six']],
  ];
  for (const [name, graph, left] of forms) {
    test(`${name} becomes HardSwish with the same outputs`, async () => {
      const m = buildModel(graph().output('y', DataType.FLOAT), { opset: 14 });
      const before = await run(m, feeds);
      expect(fuseHardSwish(m)).toEqual(['y']);
      expect(ops(m)).toEqual(['HardSwish']);
      expect(m.graph!.initializer!.map((t) => t.name)).toEqual(left);
      expect(maxRelDiff(before, await run(m, feeds))).toBeLessThan(1e-6);
    });
  }

  test('look-alikes stay: HardSigmoid with its default slope, relu6(x + 3) of another tensor, opsets before 14', () => {
    const slope = buildModel(base().node('HardSigmoid', ['x'], ['h']).node('Mul', ['h', 'x'], ['y']).output('y', DataType.FLOAT), { opset: 14 });
    expect(fuseHardSwish(slope)).toEqual([]);
    const other = buildModel(
      base().input('z', DataType.FLOAT, [4, 64]).node('Add', ['z', 'three'], ['a']).node('Clip', ['a', 'zero', 'six'], ['c'])
        .node('Div', ['c', 'six'], ['d']).node('Mul', ['x', 'd'], ['y']).output('y', DataType.FLOAT),
      { opset: 14 },
    );
    expect(fuseHardSwish(other)).toEqual([]);
    const old = buildModel(forms[2]![1]().output('y', DataType.FLOAT), { opset: 13 });
    expect(fuseHardSwish(old)).toEqual([]);
    expect(fuseHardSwish(old, { dryRun: true })).toEqual(['y']);
    expect(ops(old)).toEqual(['HardSigmoid', 'Mul']);
  });
});
