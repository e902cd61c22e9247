/**
 * Bias quantization keeps every bias within int32: a channel whose weights are tiny beside its bias
 * (a dead filter, or one equalization divided) gets a larger weight scale instead of a clipped bias.
 */
import { describe, expect, it } from 'vitest';
import { createQuantConfig, createSession, quantizeModel, Tensor } from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { getKernels } from '../../src/subpaths/kernels.js';
import { biasScaleFloor, quantizeBias, quantizeWeight } from '../../src/quant/export/weights.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

describe('int32 bias range', () => {
  it('the weight scale floor keeps a dead channel\'s bias exact, where the plain scale clips it', async () => {
    const k = await getKernels();
    // Two output channels of two weights; the second's scale (2.4e-7) is above AMCT's degenerate-scale guard.
    const w = Float32Array.from([0.5, -0.25, 3e-5, -1e-5]);
    const b = Float32Array.from([0.1, 10]);
    const activationScale = 0.01;
    const plain = quantizeWeight(k, w, [2, 2], 0);
    const clipped = quantizeBias(b, [2], activationScale, plain.scale);
    expect(Math.abs(clipped.fq[1]! - 10)).toBeGreaterThan(4); // 10 / (0.01 · 2.4e-7) is past int32
    const floored = quantizeWeight(k, w, [2, 2], 0, biasScaleFloor(b, 2, activationScale));
    expect(floored.scale[0]).toBe(plain.scale[0]); // live channels keep max|w| / 127
    const exact = quantizeBias(b, [2], activationScale, floored.scale);
    expect(exact.fq[1]).toBeCloseTo(10, 5);
    expect(Math.abs(exact.q[1]!)).toBeLessThan(2 ** 31);
  });

  it('a Conv with a dead filter and a bias computes the bias in the fake-quant model', async () => {
    const rng = new Random(5);
    const wv = rng.normals(2 * 3 * 3 * 3);
    for (let i = 27; i < 54; i++) wv[i] = 3e-5 * wv[i]!;
    const g = new GraphBuilder('dead')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .initializer('w', [2, 3, 3, 3], wv)
      .initializer('b', [2], [0.3, 100])
      .node('Conv', ['x', 'w', 'b'], ['y'], { pads: [1, 1, 1, 1] }, { name: 'conv' })
      .output('y', DataType.FLOAT);
    const model = encodeModel(buildModel(g, { opset: 13 }));
    const data = [0, 1].map(() => ({ x: new Tensor('float32', rng.normals(108), [1, 3, 6, 6]) }));
    const r = await quantizeModel(model, await createQuantConfig(model, { batchNum: 2 }), data);
    const s = await createSession(r.fakeQuantModel);
    const y = (await s.run(data[0]!)).y!.data as Float32Array;
    await s.release();
    // Float: 100 plus at most ~0.01 from the tiny weights; a clipped bias would be off by tens.
    for (const v of y.subarray(36)) expect(Math.abs(v - 100)).toBeLessThan(0.05);
  });
});
