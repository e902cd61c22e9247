/**
 * Where Q/DQ go in a transformer: on the inputs of its linear layers and attention products (one Q per
 * LayerNorm output, shared by Q, K and V; the Softmax output once; the MLP's second layer after the
 * whole GELU), never on the residual stream, whatever the output selection would have kept.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, quantizeModel, Tensor } from '../../src/index.js';
import { DataType, decodeModel } from '../../src/subpaths/onnx.js';
import { consumerMap } from '../../src/onnx/graph.js';
import { placeOutputs, reachesNormalization } from '../../src/quant/decide/outputs.js';
import { scanLayers } from '../../src/quant/prepare/registry.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { trainBatch } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

const rng = new Random(9);

/** Conv (4 → 8, 3×3) → Reshape to [1, 16, 8] tokens → Add of a position table → `then` reads the sum. */
function convIntoTokens(then: (g: GraphBuilder, t: string) => void) {
  const g = new GraphBuilder('tokens')
    .input('x', DataType.FLOAT, [1, 4, 4, 4])
    .initializer('w', [8, 4, 3, 3], rng.normals(288))
    .node('Conv', ['x', 'w'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' })
    .initializer('shape', [3], [1, 8, 16], DataType.INT64)
    .node('Reshape', ['c', 'shape'], ['r'], {}, { name: 'reshape' })
    .node('Transpose', ['r'], ['t'], { perm: [0, 2, 1] }, { name: 'tokens' })
    .initializer('pos', [1, 16, 8], rng.normals(128))
    .node('Add', ['t', 'pos'], ['s'], {}, { name: 'pos' });
  then(g, 's');
  return buildModel(g, { opset: 17 });
}

const placed = (m: ReturnType<typeof convIntoTokens>) => {
  const { layers } = scanLayers(m.graph!);
  const f = { scale: 0.01, zeroPoint: 0, bits: 8 as const };
  return placeOutputs(m.graph!, layers.map((layer) => ({ layer, activation: f, output: f })), true).outputs.map((o) => o.layer);
};

describe('the residual stream', () => {
  it("a Conv's calibrated output Q is not placed where the value reaches a LayerNormalization or a decomposed LayerNorm", () => {
    const ln = convIntoTokens((g, t) => {
      g.initializer('gamma', [8], rng.normals(8)).node('LayerNormalization', [t, 'gamma'], ['y'], { axis: -1 }, { name: 'ln' }).output('y', DataType.FLOAT);
    });
    expect(placed(ln)).toEqual([]);
    const decomposed = convIntoTokens((g, t) => {
      g.node('ReduceMean', [t], ['mean'], { axes: [-1] }, { name: 'mean' }).node('Sub', [t, 'mean'], ['y'], {}, { name: 'centre' }).output('y', DataType.FLOAT);
    });
    expect(placed(decomposed)).toEqual([]);
    expect(reachesNormalization('c', consumerMap(decomposed.graph!))).toBe(false); // the chain before the Add keeps the grid
    expect(reachesNormalization('t', consumerMap(decomposed.graph!))).toBe(true);
  });

  it('is placed where the value goes on to an activation function or a global mean (a CNN)', () => {
    expect(placed(convIntoTokens((g, t) => g.node('Sigmoid', [t], ['y'], {}, { name: 'sig' }).output('y', DataType.FLOAT)))).toEqual(['conv']);
    expect(placed(convIntoTokens((g, t) => g.node('ReduceMean', [t], ['y'], { axes: [1] }, { name: 'pool' }).output('y', DataType.FLOAT)))).toEqual(['conv']);
  });
});

describe('on the tiny ViT', () => {
  const calib = [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
  for (const file of ['vit_tiny.onnx', 'vit_tiny_ln17.onnx']) {
    it(`${file}: Qs on the layer inputs only, one per LayerNorm output and per Softmax, none on the residual stream`, async () => {
      const model = new Uint8Array(readFileSync(`test/fixtures/transformers/${file}`));
      const float = decodeModel(model).graph!;
      const consumers = consumerMap(float);
      const stream = new Set(float.node!.flatMap((n) => n.output ?? []).filter((t) => reachesNormalization(t, consumers)));
      expect(stream.size).toBeGreaterThanOrEqual(5); // the embedding and each block's two sums
      const result = await quantizeModel(model, await createQuantConfig(model, { batchNum: 4 }), calib);
      const deploy = decodeModel(result.deployModel).graph!;
      const producer = new Map(deploy.node!.flatMap((n) => (n.output ?? []).map((o) => [o, n] as const)));
      const quantized = deploy.node!.filter((n) => n.opType === 'QuantizeLinear').map((n) => n.input![0]!);
      expect(quantized.filter((t) => stream.has(t))).toEqual([]);
      const count = (op: string) => quantized.filter((t) => producer.get(t)?.opType === op).length;
      expect(count('Softmax')).toBe(2);
      // Each LayerNorm output: one Q, read by Q, K and V (or the MLP's first layer).
      const norms = float.node!.filter((n) => n.opType === 'LayerNormalization' || (n.opType === 'Add' && /ln\d?\/Add_1$/.test(n.name ?? ''))).map((n) => n.output![0]!);
      expect(norms.length).toBeGreaterThanOrEqual(4);
      for (const t of norms.filter((t) => !/^\/ln\//.test(t))) expect(quantized.filter((q) => q === t)).toHaveLength(1);
    }, 60_000);
  }
});
