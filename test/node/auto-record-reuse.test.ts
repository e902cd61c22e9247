/**
 * What the automatic calibration returns must be what it evaluated: a layer it leaves in float gets
 * float inputs, and its config and record rebuild the returned models without data, repairs and
 * activation equalization included.
 */
import { describe, expect, it } from 'vitest';
import { accuracyBasedAutoCalibration, createQuantConfig, createSession, quantizeModel, Tensor } from '../../src/index.js';
import { decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { PreparedQuantization } from '../../src/quant/quantize.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { outlierEvaluator, outlierModel } from '../helpers/outlier-model.js';
import { Random } from '../helpers/random.js';

/** conv1 → Relu → conv2 (and, with `fanOut`, the Relu's output also into an Add), or conv1 → depthwise → Relu. */
function convChain(kind: 'chain' | 'fanOut' | 'depthwise') {
  const rng = new Random(3);
  const normal = (n: number, scale = (_: number) => 0.3) => Float32Array.from({ length: n }, (_, i) => rng.normal() * scale(i));
  const g = new GraphBuilder('t').input('x', 1, [1, 4, 8, 8]);
  if (kind === 'depthwise') {
    // Channels 2^1.5 apart in scale, so activation equalization rescales the depthwise layer's input.
    g.initializer('w1', [8, 4, 3, 3], normal(8 * 36, (i) => 0.3 * 2 ** (Math.floor(i / 36) * 1.5)))
      .node('Conv', ['x', 'w1'], ['c1'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }, { name: 'conv1' })
      .initializer('w2', [8, 1, 3, 3], normal(8 * 9))
      .node('Conv', ['c1', 'w2'], ['c2'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3], group: 8 }, { name: 'dw' })
      .node('Relu', ['c2'], ['y'], {}, { name: 'relu' });
  } else {
    g.initializer('w1', [16, 4, 3, 3], normal(16 * 36))
      .node('Conv', ['x', 'w1'], ['c1'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }, { name: 'conv1' })
      .node('Relu', ['c1'], ['r1'], {}, { name: 'relu1' })
      .initializer('w2', [16, 16, 3, 3], normal(16 * 144))
      .node('Conv', ['r1', 'w2'], [kind === 'fanOut' ? 'c2' : 'y'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }, { name: 'conv2' });
    if (kind === 'fanOut') g.node('Add', ['r1', 'c2'], ['y'], {}, { name: 'add' });
  }
  const bytes = encodeModel(buildModel(g.output('y', 1), { opset: 13 }));
  const feeds = [0, 1].map(() => ({ x: new Tensor('float32', Float32Array.from({ length: 256 }, () => rng.uniform(-1, 1)), [1, 4, 8, 8]) }));
  return { bytes, feeds };
}

async function run(model: Uint8Array, feeds: Record<string, InstanceType<typeof Tensor>>): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return (await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('a plan without a layer (a fallback)', () => {
  for (const kind of ['chain', 'fanOut'] as const) {
    it(`feeds that layer float inputs, and the record then rebuilds the same model without data (${kind})`, async () => {
      const { bytes, feeds } = convChain(kind);
      const config = await createQuantConfig(bytes, { skipSlowLayers: false, batchNum: 2 });
      const p = await PreparedQuantization.create(bytes, config);
      await p.calibrate(feeds);
      const { record } = p.recordWithAllOutputs();
      const withoutConv2 = p.plan(record).filter((l) => l.layer.name !== 'conv2');
      const returned = p.fakeQuantModel(withoutConv2).model;
      const conv2 = decodeModel(returned).graph!.node!.find((n) => n.name === 'conv2')!;
      const producer = decodeModel(returned).graph!.node!.find((n) => n.output?.includes(conv2.input![0]!));
      expect(producer?.opType).toBe('Relu'); // not a DequantizeLinear on conv2's int8 grid
      const settled = p.finalRecord(record, [], withoutConv2);
      const edited = structuredClone(p.config) as Record<string, { quant_enable?: boolean }>;
      edited.conv2!.quant_enable = false;
      const again = await quantizeModel(bytes, edited as typeof p.config, [], { record: settled });
      expect(Array.from(await run(again.fakeQuantModel, feeds[0]!))).toEqual(Array.from(await run(returned, feeds[0]!)));
    });
  }
});

describe('records adopted from repairs and 16-bit sessions', () => {
  it('keep the activation equalization factors the working model carries, and say adaptive rounding chose nearest', async () => {
    const { bytes, feeds } = convChain('depthwise');
    const config = await createQuantConfig(bytes, { skipSlowLayers: false, batchNum: 2, weightRounding: 'adaptive' });
    const p = await PreparedQuantization.create(bytes, config);
    await p.calibrate(feeds);
    const factors = p.record.layers.dw!.equalize_d;
    expect(factors?.some((f) => f !== 1)).toBe(true);
    // A repair's variant rounds to nearest; the 16-bit session of fallback 'int16' chooses its own rounding.
    const repair = p.variant(['dw'], (e) => (e.activation_quant_params!.num_bits = 16));
    await repair.calibrate(feeds);
    const wide = p.withActivationBits(16);
    await wide.calibrate(feeds);
    for (const v of [repair, wide]) expect(v.record.layers.dw!.equalize_d).toBeUndefined();
    const before = structuredClone(p.record);
    expect(p.finalRecord(p.record, [['dw', repair.record.layers.dw!]]).layers.dw).toMatchObject({ num_bits_d: 16, equalize_d: factors, round_w: '' });
    expect(p.finalRecord(p.record, [['dw', wide.record.layers.dw!]]).layers.dw).toMatchObject({ num_bits_d: 16, equalize_d: factors, round_w: wide.record.layers.dw!.round_w });
    // The record is built anew; calibration's stays as it was.
    expect(p.record).toEqual(before);
  });

  it('let the result of a search with an int16 repair under adaptive rounding rebuild its deploy model without data', async () => {
    const { bytes, fragile } = outlierModel();
    const config = await createQuantConfig(bytes, { skipSlowLayers: false, batchNum: 2, weightRounding: 'adaptive' });
    const r = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { config });
    expect(r.repairedLayers).toEqual([{ layer: fragile, repair: 'int16', detail: '16-bit activations' }]);
    expect(r.record.layers[fragile]!.round_w).toBe('');
    const again = await quantizeModel(bytes, r.config, [], { record: r.record });
    expect(again.deployModel).toEqual(r.deployModel);
  });
});
