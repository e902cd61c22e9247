/**
 * Conv + BatchNormalization folding (do_fusion): the folded float model computes what the original
 * did, the BN disappears from both output models, and skip_fusion_layers / do_fusion=false keep it.
 */
import { describe, expect, test } from 'vitest';
import {
  createQuantConfig,
  createSession,
  quantizeModel,
  Tensor,
  type Feeds,
  type LayerQuantConfig,
  type ModelProto,
  type QuantConfig,
} from '../../src/index.js';
import { DataType, decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { referenceKernels } from '../../src/subpaths/kernels.js';
import { buildModel, float, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

const f32 = Math.fround;
const X_SHAPE = [2, 3, 8, 8];
const W_DIMS = [6, 3, 3, 3];
const EPS = 1e-3;

interface BnModel {
  model: ModelProto;
  w: Float32Array;
  b: Float32Array | undefined;
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
}

/** x → Conv(conv) → BatchNormalization(bn) → Relu → y, with BN statistics far from identity. */
function convBnRelu(seed: number, options: { bias?: boolean; extraReader?: boolean } = {}): BnModel {
  const rng = new Random(seed);
  const w = rng.normals(162, 0.3);
  const b = options.bias === false ? undefined : rng.normals(6, 0.2);
  const gamma = Float32Array.from({ length: 6 }, () => rng.uniform(0.3, 3) * (rng.next() < 0.3 ? -1 : 1));
  const beta = rng.normals(6, 0.5);
  const mean = rng.normals(6, 0.8);
  const variance = Float32Array.from({ length: 6 }, () => rng.logUniform(0.05, 4));
  const g = new GraphBuilder('conv-bn-relu')
    .input('x', DataType.FLOAT, X_SHAPE)
    .initializer('W', W_DIMS, w);
  if (b) g.initializer('B', [6], b);
  g.node('Conv', b ? ['x', 'W', 'B'] : ['x', 'W'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' })
    .initializer('gamma', [6], gamma)
    .initializer('beta', [6], beta)
    .initializer('mean', [6], mean)
    .initializer('var', [6], variance)
    .node('BatchNormalization', ['c', 'gamma', 'beta', 'mean', 'var'], ['n'], { epsilon: float(EPS) }, { name: 'bn' })
    .node('Relu', ['n'], ['y'], {}, { name: 'relu' })
    .output('y', DataType.FLOAT, [2, 6, 8, 8]);
  if (options.extraReader) g.node('Sigmoid', ['c'], ['s'], {}, { name: 'side' }).output('s', DataType.FLOAT, [2, 6, 8, 8]);
  return { model: buildModel(g, { opset: 13 }), w, b, gamma, beta, mean, variance };
}

async function run(bytes: Uint8Array, feeds: Feeds): Promise<Float32Array> {
  const s = await createSession(bytes, { graphOptimizationLevel: 'disabled' });
  try {
    return new Float32Array((await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array);
  } finally {
    await s.release();
  }
}

function relDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let mag = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    mag = Math.max(mag, Math.abs(b[i]!));
  }
  return diff / mag;
}

/** Independent of the Wasm kernels under test: the scalar reference, accumulated in float64. */
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>): number => referenceKernels.cosine(Float32Array.from(a), Float32Array.from(b));

const opCount = (bytes: Uint8Array, op: string) => decodeModel(bytes).graph!.node!.filter((n) => n.opType === op).length;

function batches(seed: number, n: number): Feeds[] {
  const rng = new Random(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', rng.normals(384), X_SHAPE) }));
}

function disableAll(config: QuantConfig): void {
  for (const v of Object.values(config)) if (typeof v === 'object' && v !== null && !Array.isArray(v)) (v as LayerQuantConfig).quant_enable = false;
}

describe('Conv + BatchNormalization folding', () => {
  test('with do_fusion the BN is folded: gone from both models, Conv quantized with the folded weights', async () => {
    const m = convBnRelu(11);
    // skip_slow_layers would leave the model's one Conv float: alone in int8 it does too little work per converted element.
    const config = await createQuantConfig(m.model, { batchNum: 3, skipSlowLayers: false });
    expect(config.do_fusion).toBe(true);
    expect(Object.keys(config)).toContain('conv');
    const result = await quantizeModel(m.model, config, batches(12, 3));
    expect(result.fusedBatchNorms).toEqual([{ conv: 'conv', batchNorm: 'bn' }]);
    expect(result.layers.find((l) => l.name === 'conv')).toMatchObject({ opType: 'Conv', quantized: true });

    for (const bytes of [result.fakeQuantModel, result.deployModel]) {
      expect(opCount(bytes, 'BatchNormalization')).toBe(0);
      expect(opCount(bytes, 'Conv')).toBe(1);
      expect(opCount(bytes, 'Relu')).toBe(1);
    }
    // Fake-quant: Div, Clip, rounding as Add/Sub, Mul around the input + Conv + Relu.
    expect(decodeModel(result.fakeQuantModel).graph!.node!.map((n) => n.opType)).toEqual(['Div', 'Clip', 'Add', 'Sub', 'Mul', 'Conv', 'Relu']);
    // The Conv feeds the graph output, so ONNX Runtime will not fuse it: its int8 weight and int32
    // bias sit behind Cast and Mul, which onnxruntime folds into float constants at load.
    expect(decodeModel(result.deployModel).graph!.node!.map((n) => n.opType).sort()).toEqual(
      ['Cast', 'Cast', 'Conv', 'DequantizeLinear', 'Mul', 'Mul', 'QuantizeLinear', 'Relu'].sort(),
    );

    // The weight scales are those of W·γ/√(σ²+ε), per output channel.
    const rec = result.record.layers.conv!;
    for (let c = 0; c < 6; c++) {
      const f = m.gamma[c]! / Math.sqrt(m.variance[c]! + f32(EPS));
      let absmax = 0;
      for (let i = 0; i < 27; i++) absmax = Math.max(absmax, Math.abs(f32(m.w[c * 27 + i]! * f)));
      expect(rec.scale_w![c]).toBeCloseTo(absmax / 127, 6);
      expect(Math.abs(rec.scale_w![c]! - absmax / 127)).toBeLessThanOrEqual(1e-6 * rec.scale_w![c]!);
    }

    const feeds = batches(13, 1)[0]!;
    const ref = await run(encodeModel(m.model), feeds);
    const fake = await run(result.fakeQuantModel, feeds);
    const deploy = await run(result.deployModel, feeds);
    expect(cosine(ref, fake)).toBeGreaterThan(0.99);
    expect(relDiff(deploy, fake)).toBeLessThanOrEqual(1e-5);
  });

  test('with every layer disabled, the output is the folded float model and matches the original to 1e-5', async () => {
    for (const [seed, bias] of [[21, true], [22, false]] as const) {
      const m = convBnRelu(seed, { bias });
      const config = await createQuantConfig(m.model);
      disableAll(config);
      let called = 0;
      const result = await quantizeModel(m.model, config, async () => {
        called++;
      });
      expect(called, 'no calibration is needed').toBe(0);
      expect(result.fusedBatchNorms).toEqual([{ conv: 'conv', batchNorm: 'bn' }]);
      expect(result.layers.find((l) => l.name === 'conv')).toMatchObject({ quantized: false });
      for (const bytes of [result.fakeQuantModel, result.deployModel]) {
        const graph = decodeModel(bytes).graph!;
        expect(graph.node!.map((n) => n.opType)).toEqual(['Conv', 'Relu']);
        expect(graph.node![0]!.input!.filter(Boolean).length, 'the folded Conv has a bias').toBe(3);
      }
      for (const feeds of batches(seed + 100, 2)) {
        const original = await run(encodeModel(m.model), feeds);
        const folded = await run(result.fakeQuantModel, feeds);
        expect(relDiff(folded, original), `bias=${bias}`).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  test('skip_fusion_layers keeps that Conv’s BN in both models', async () => {
    const m = convBnRelu(31);
    const config = await createQuantConfig(m.model, { skipSlowLayers: false }); // as above
    config.skip_fusion_layers = ['conv'];
    const result = await quantizeModel(m.model, config, batches(32, 1));
    expect(result.fusedBatchNorms).toEqual([]);
    expect(result.layers.find((l) => l.name === 'conv')).toMatchObject({ quantized: true });
    for (const bytes of [result.fakeQuantModel, result.deployModel]) expect(opCount(bytes, 'BatchNormalization')).toBe(1);
    // Quantized with the unfolded weight.
    const rec = result.record.layers.conv!;
    let absmax0 = 0;
    for (let i = 0; i < 27; i++) absmax0 = Math.max(absmax0, Math.abs(m.w[i]!));
    expect(rec.scale_w![0]).toBe(f32(absmax0 / 127));
    const feeds = batches(33, 1)[0]!;
    const ref = await run(encodeModel(m.model), feeds);
    const fake = await run(result.fakeQuantModel, feeds);
    expect(cosine(ref, fake)).toBeGreaterThan(0.99);
  });

  test('do_fusion=false keeps the BN', async () => {
    const m = convBnRelu(41);
    const config = await createQuantConfig(m.model, { doFusion: false });
    expect(config.do_fusion).toBe(false);
    const result = await quantizeModel(m.model, config, batches(42, 1));
    expect(result.fusedBatchNorms).toEqual([]);
    for (const bytes of [result.fakeQuantModel, result.deployModel]) expect(opCount(bytes, 'BatchNormalization')).toBe(1);
  });

  test('a Conv whose output is also read by another node is not folded', async () => {
    const m = convBnRelu(51, { extraReader: true });
    const config = await createQuantConfig(m.model);
    disableAll(config);
    const result = await quantizeModel(m.model, config, batches(52, 1));
    expect(result.fusedBatchNorms).toEqual([]);
    expect(opCount(result.fakeQuantModel, 'BatchNormalization')).toBe(1);
    const feeds = batches(53, 1)[0]!;
    expect(relDiff(await run(result.fakeQuantModel, feeds), await run(encodeModel(m.model), feeds))).toBe(0);
  });
});
