/**
 * Per layer kind: quantize a small float model, then check the fake-quant model against an
 * independent JS computation of the fake-quant math (AMCT's formulas), the deploy model against the
 * fake-quant model, and both against the float model.
 */
import { describe, expect, test } from 'vitest';
import {
  createQuantConfig,
  createSession,
  quantizeModel,
  Tensor,
  type CreateQuantConfigOptions,
  type Feeds,
  type LayerQuantConfig,
  type LayerRecord,
  type ModelProto,
  type QuantConfig,
  type QuantizeResult,
} from '../../src/index.js';
import {
  DataType,
  decodeModel,
  encodeModel,
  findAttribute,
  getConstant,
  opsetVersion,
  readTensorAsFloat32,
} from '../../src/subpaths/onnx.js';
import { referenceKernels } from '../../src/subpaths/kernels.js';
import { buildModel, GraphBuilder, float, type AttrValue } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

// ---------------------------------------------------------------------------------------------
// Independent reference math (deliberately not shared with src/).

const f32 = Math.fround;

/** Round half to even. */
function rhe(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** The activation fake-quant of AMCT: (clamp(round(x/s) + zp, -128, 127) - zp) * s in float32. */
function fqActivation(x: Float32Array, scale: number, zeroPoint: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const r = rhe(clamp(f32(x[i]! / scale), -128 - zeroPoint, 127 - zeroPoint));
    out[i] = f32(r * scale);
  }
  return out;
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Index of the channel (along `axis`) of each flat element. */
function channelOf(dims: readonly number[], axis: number): (i: number) => number {
  const inner = product(dims.slice(axis + 1));
  return (i) => Math.floor(i / inner) % dims[axis]!;
}

/** Expected symmetric weight scales: abs-max / 127 per channel along `axis`, or per tensor (axis -1). */
function expectedWeightScales(w: Float32Array, dims: readonly number[], axis: number): number[] {
  const n = axis < 0 ? 1 : dims[axis]!;
  const ch = axis < 0 ? () => 0 : channelOf(dims, axis);
  const absmax = new Array<number>(n).fill(0);
  for (let i = 0; i < w.length; i++) absmax[ch(i)] = Math.max(absmax[ch(i)]!, Math.abs(w[i]!));
  return absmax.map((a) => (a === 0 ? 1 : f32(a / 127)));
}

function fqWeight(w: Float32Array, dims: readonly number[], axis: number, scales: readonly number[]): Float32Array {
  const ch = axis < 0 ? () => 0 : channelOf(dims, axis);
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const s = scales[ch(i)]!;
    out[i] = f32(clamp(rhe(f32(w[i]! / s)), -127, 127) * s);
  }
  return out;
}

/** int32 bias with scale s_x * s_w[c] (computed in float32). */
function fqBias(b: Float32Array, activationScale: number, weightScales: readonly number[]): Float32Array {
  const out = new Float32Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const s = f32(activationScale * weightScales[weightScales.length === 1 ? 0 : i]!);
    out[i] = f32(rhe(f32(b[i]! / s)) * s);
  }
  return out;
}

/** Independent of the Wasm kernels under test: the scalar reference, accumulated in float64. */
const cosine = (a: ArrayLike<number>, b: ArrayLike<number>): number => referenceKernels.cosine(Float32Array.from(a), Float32Array.from(b));

/** max |a - b| relative to max |b|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let mag = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    mag = Math.max(mag, Math.abs(b[i]!));
  }
  return mag === 0 ? diff : diff / mag;
}

// ---------------------------------------------------------------------------------------------
// Model and session helpers.

type Level = 'disabled' | 'all';

async function runModel(bytes: Uint8Array, feeds: Feeds, level: Level = 'disabled'): Promise<Float32Array[]> {
  const session = await createSession(bytes, { graphOptimizationLevel: level });
  try {
    const out = await session.run(feeds);
    return session.outputNames.map((n) => new Float32Array(out[n]!.data as Float32Array));
  } finally {
    await session.release();
  }
}

const floatTensor = (data: Float32Array, dims: readonly number[]) => new Tensor('float32', data, [...dims]);

function layerConfig(config: QuantConfig, name: string): LayerQuantConfig {
  const entry = config[name];
  expect(entry, `config entry for ${name}`).toBeTypeOf('object');
  return entry as LayerQuantConfig;
}

/** A model with one node `opType(x, W[, B])`, for computing references with onnxruntime. */
function singleNodeModel(
  opType: string,
  attrs: Record<string, AttrValue>,
  x: readonly (number | string)[],
  w?: { dims: readonly number[]; data: Float32Array },
  b?: { dims: readonly number[]; data: Float32Array },
  opset = 13,
): Uint8Array {
  const g = new GraphBuilder('ref').input('x', DataType.FLOAT, x);
  const inputs = ['x'];
  if (w) {
    g.initializer('W', w.dims, w.data);
    inputs.push('W');
  }
  if (b) {
    g.initializer('B', b.dims, b.data);
    inputs.push('B');
  }
  g.node(opType, inputs, ['y'], attrs, { name: 'layer' }).output('y', DataType.FLOAT);
  return encodeModel(buildModel(g, { opset }));
}

interface Quantized {
  result: QuantizeResult;
  config: QuantConfig;
  /** Outputs on a fresh input: float, fake-quant, deploy (all optimizations disabled), deploy ('all'). */
  float: Float32Array[];
  fake: Float32Array[];
  deploy: Float32Array[];
  deployAll: Float32Array[];
  feeds: Feeds;
}

interface QuantizeOptions {
  rng: Random;
  /** Input name → shape for calibration batches. */
  inputs: Record<string, readonly number[]>;
  /** Input shapes for the checked run (defaults to `inputs`). */
  runInputs?: Record<string, readonly number[]>;
  /** Extra (non-float) feeds, e.g. an If condition. */
  extraFeeds?: Feeds;
  batches?: number;
  configOptions?: CreateQuantConfigOptions;
  editConfig?: (config: QuantConfig) => void;
  /** Builds the checked input from the calibrated record (defaults to fresh normals). */
  runData?: (name: string, shape: readonly number[], result: QuantizeResult) => Float32Array;
}

/** Quantizes `model` with random calibration batches and runs float, fake-quant and deploy on one input. */
async function quantizeAndRun(model: ModelProto, o: QuantizeOptions): Promise<Quantized> {
  const bytes = encodeModel(model);
  const batches = o.batches ?? 3;
  // Without bias correction: these tests check the fake-quant math against fq(b) computed in JS.
  const config = await createQuantConfig(bytes, { skipSlowLayers: false, batchNum: batches, biasCorrection: false, ...o.configOptions });
  o.editConfig?.(config);
  const calibration: Feeds[] = Array.from({ length: batches }, () => {
    const feeds: Feeds = { ...o.extraFeeds };
    for (const [name, shape] of Object.entries(o.inputs)) feeds[name] = floatTensor(o.rng.normals(product(shape)), shape);
    return feeds;
  });
  const result = await quantizeModel(bytes, config, calibration);
  expect(result.calibration?.batches).toBe(batches);

  const feeds: Feeds = { ...o.extraFeeds };
  for (const [name, shape] of Object.entries(o.runInputs ?? o.inputs)) {
    feeds[name] = floatTensor(o.runData ? o.runData(name, shape, result) : o.rng.normals(product(shape)), shape);
  }
  const float = await runModel(bytes, feeds);
  const fake = await runModel(result.fakeQuantModel, feeds);
  const deploy = await runModel(result.deployModel, feeds);
  const deployAll = await runModel(result.deployModel, feeds, 'all');
  return { result, config, float, fake, deploy, deployAll, feeds };
}

/** The checks every layer kind shares: fake-quant ≈ float, deploy = fake-quant (1e-5), 'all' close. */
function expectConsistent(q: Quantized): void {
  expect(q.fake.length).toBe(q.float.length);
  for (let i = 0; i < q.float.length; i++) {
    expect(cosine(q.float[i]!, q.fake[i]!), `output ${i}: cosine(float, fake-quant)`).toBeGreaterThan(0.99);
    expect(relDiff(q.deploy[i]!, q.fake[i]!), `output ${i}: deploy vs fake-quant`).toBeLessThanOrEqual(1e-5);
    expect(cosine(q.deployAll[i]!, q.fake[i]!), `output ${i}: deploy ('all') vs fake-quant`).toBeGreaterThan(0.999);
  }
}

function expectQuantized(result: QuantizeResult, names: readonly string[]): void {
  for (const name of names) {
    const report = result.layers.find((l) => l.name === name);
    expect(report, `layer report for ${name}`).toBeDefined();
    expect(report!.quantized, `${name} quantized (${report!.reason ?? ''})`).toBe(true);
    expect(result.record.layers[name], `record for ${name}`).toBeDefined();
  }
}

/** The activation parameters must follow from the recorded clip range (AMCT's asymmetric formula). */
function expectActivationParams(rec: LayerRecord): void {
  const lo = Math.min(rec.clip_min_d, 0);
  const hi = Math.max(rec.clip_max_d, 0);
  expect(rec.num_bits_d).toBe(8);
  expect(rec.scale_d).toBeCloseTo(f32((hi - lo) / 255), 7);
  expect(Math.abs(rec.scale_d - (hi - lo) / 255)).toBeLessThanOrEqual(1e-6 * rec.scale_d + 1e-12);
  expect(rec.offset_d).toBe(clamp(Math.round(-128 - lo / rec.scale_d), -128, 127));
}

function expectWeightScales(rec: LayerRecord, w: Float32Array, dims: readonly number[], axis: number): number[] {
  const expected = expectedWeightScales(w, dims, axis);
  expect(rec.scale_w).toBeDefined();
  expect(rec.scale_w!.length).toBe(expected.length);
  for (let c = 0; c < expected.length; c++) expect(rec.scale_w![c]).toBe(expected[c]);
  expect(rec.offset_w).toEqual(expected.map(() => 0));
  return expected;
}

interface WeightedCase {
  opType: 'Conv' | 'ConvTranspose' | 'Gemm' | 'MatMul';
  attrs: Record<string, AttrValue>;
  x: number[];
  w: number[];
  bias?: number;
  /** Axis of per-channel weight scales, -1 for per tensor. */
  axis: number;
}

/**
 * One weighted node reading the graph input: the fake-quant output must equal the same node
 * run in float on JS-computed fq(x), fq(W) and fq(b).
 */
async function checkWeightedLayer(c: WeightedCase, seed: number, options: { constants?: boolean; opset?: number; channelWise?: boolean } = {}) {
  const rng = new Random(seed);
  const wData = rng.normals(product(c.w), 0.5);
  const bData = c.bias ? rng.normals(c.bias, 0.2) : undefined;
  const g = new GraphBuilder(`${c.opType}-model`).input('x', DataType.FLOAT, c.x);
  if (options.constants) {
    g.constant('W', makeFloat('W_value', c.w, wData), { name: 'W_const' });
    if (bData) g.constant('B', makeFloat('B_value', [c.bias!], bData), { name: 'B_const' });
  } else {
    g.initializer('W', c.w, wData);
    if (bData) g.initializer('B', [c.bias!], bData);
  }
  g.node(c.opType, bData ? ['x', 'W', 'B'] : ['x', 'W'], ['y'], c.attrs, { name: 'layer' }).output('y', DataType.FLOAT);
  const model = buildModel(g, { opset: options.opset ?? 13 });

  const configOptions = options.channelWise === undefined ? {} : { channelWise: options.channelWise };
  const q = await quantizeAndRun(model, { rng, inputs: { x: c.x }, configOptions });
  expectQuantized(q.result, ['layer']);
  expect(q.result.layers.find((l) => l.name === 'layer')!.weights).toBe(c.axis >= 0 ? 'per-channel' : 'per-tensor');
  expect(q.result.layers.filter((l) => l.quantized).length).toBe(1);
  const rec = q.result.record.layers.layer!;
  expectActivationParams(rec);
  expect(layerConfig(q.config, 'layer').weight_quant_params!.channel_wise).toBe(c.axis >= 0);
  const sw = expectWeightScales(rec, wData, c.w, c.axis);

  const fx = fqActivation(q.feeds.x!.data as Float32Array, rec.scale_d, rec.offset_d);
  const fw = fqWeight(wData, c.w, c.axis, sw);
  const fb = bData ? fqBias(bData, rec.scale_d, sw) : undefined;
  const ref = singleNodeModel(c.opType, c.attrs, c.x, { dims: c.w, data: fw }, fb && { dims: [c.bias!], data: fb });
  const [expected] = await runModel(ref, { x: floatTensor(fx, c.x) });
  expect(relDiff(q.fake[0]!, expected!), 'fake-quant vs JS fake-quant math').toBeLessThanOrEqual(1e-5);
  expectConsistent(q);
  return { q, rec, fx, fw, fb, wData, bData };
}

function makeFloat(name: string, dims: readonly number[], data: Float32Array) {
  const g = new GraphBuilder().initializer(name, dims, data).build();
  return g.initializer![0]!;
}

/** y = x · W (+ b) for x [rows, k] and W [k, n] (or [n, k] when `transB`), in float64. */
function matmul(x: Float32Array, w: Float32Array, rows: number, k: number, n: number, transB: boolean, b?: Float32Array): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) {
      let s = b ? b[j]! : 0;
      for (let i = 0; i < k; i++) s += x[r * k + i]! * w[transB ? j * k + i : i * n + j]!;
      y[r * n + j] = s;
    }
  }
  return y;
}

// ---------------------------------------------------------------------------------------------

describe('Conv layers', () => {
  test('1-D Conv is quantized per output channel and matches the JS fake-quant math', async () => {
    await checkWeightedLayer({ opType: 'Conv', attrs: { pads: [1, 1] }, x: [2, 3, 16], w: [4, 3, 3], bias: 4, axis: 0 }, 101);
  });

  test('2-D Conv with stride and padding matches the JS fake-quant math', async () => {
    await checkWeightedLayer(
      { opType: 'Conv', attrs: { pads: [1, 1, 1, 1], strides: [2, 1] }, x: [1, 3, 9, 8], w: [6, 3, 3, 3], bias: 6, axis: 0 },
      102,
    );
  });

  test('3-D Conv matches the JS fake-quant math', async () => {
    await checkWeightedLayer({ opType: 'Conv', attrs: {}, x: [1, 2, 5, 5, 5], w: [3, 2, 3, 3, 3], bias: 3, axis: 0 }, 103);
  });

  test('grouped Conv (group=2) keeps per-output-channel weight scales', async () => {
    await checkWeightedLayer({ opType: 'Conv', attrs: { group: 2, pads: [1, 1, 1, 1] }, x: [1, 4, 6, 6], w: [6, 2, 3, 3], bias: 6, axis: 0 }, 104);
  });

  test('depthwise Conv (group = channels) keeps per-output-channel weight scales', async () => {
    await checkWeightedLayer({ opType: 'Conv', attrs: { group: 4 }, x: [1, 4, 6, 6], w: [4, 1, 3, 3], bias: 4, axis: 0 }, 105);
  });

  test('Conv without bias is quantized (weight only, no bias tensor invented)', async () => {
    const { q } = await checkWeightedLayer({ opType: 'Conv', attrs: {}, x: [1, 3, 6, 6], w: [5, 3, 3, 3], axis: 0 }, 106);
    for (const bytes of [q.result.fakeQuantModel, q.result.deployModel]) {
      const conv = decodeModel(bytes).graph!.node!.find((n) => n.opType === 'Conv')!;
      expect(conv.input!.filter(Boolean).length).toBe(2);
    }
  });

  test('Conv with weight and bias in Constant nodes is quantized and the float constants are dropped', async () => {
    const { q } = await checkWeightedLayer(
      { opType: 'Conv', attrs: { pads: [1, 1, 1, 1] }, x: [1, 3, 6, 6], w: [4, 3, 3, 3], bias: 4, axis: 0 },
      107,
      { constants: true },
    );
    const fake = decodeModel(q.result.fakeQuantModel).graph!;
    const deploy = decodeModel(q.result.deployModel).graph!;
    // The float weight no longer exists in either model: only its quantized form is stored.
    expect(fake.node!.filter((n) => n.opType === 'Constant').length).toBe(0);
    expect(deploy.node!.filter((n) => n.opType === 'Constant').length).toBe(0);
    const int8 = deploy.initializer!.filter((t) => t.dataType === DataType.INT8 && t.dims!.length === 4);
    expect(int8.length).toBe(1);
  });
});

describe('ConvTranspose layers', () => {
  test('ConvTranspose group=1 is quantized per output channel (weight axis 1)', async () => {
    await checkWeightedLayer(
      { opType: 'ConvTranspose', attrs: { strides: [2, 2], pads: [1, 1, 1, 1] }, x: [1, 3, 5, 5], w: [3, 4, 3, 3], bias: 4, axis: 1 },
      201,
    );
  });

  test('ConvTranspose group=2 falls back to a per-tensor weight scale', async () => {
    await checkWeightedLayer(
      { opType: 'ConvTranspose', attrs: { group: 2, strides: [2, 2] }, x: [1, 4, 4, 4], w: [4, 3, 3, 3], bias: 6, axis: -1 },
      202,
    );
  });
});

describe('Gemm and MatMul layers', () => {
  async function checkDense(transB: boolean, seed: number, opType: 'Gemm' | 'MatMul' = 'Gemm', channelWise = true) {
    const [rows, k, n] = [4, 8, 5];
    // Output channels: rows of W when transB, columns otherwise.
    const axis = channelWise ? (transB ? 0 : 1) : -1;
    const c: WeightedCase = opType === 'Gemm'
      ? { opType, attrs: transB ? { transB: 1 } : {}, x: [rows, k], w: transB ? [n, k] : [k, n], bias: n, axis }
      : { opType, attrs: {}, x: [rows, k], w: [k, n], axis };
    const { q, rec, fx, fw, fb } = await checkWeightedLayer(c, seed, { channelWise });
    // Directly in JS: fq(x) · fq(W) + fq(b), from the record's factors only.
    expect(rec.scale_w!.length).toBe(channelWise ? n : 1);
    const expected = matmul(fx, fw, rows, k, n, transB, fb);
    expect(relDiff(q.fake[0]!, expected)).toBeLessThanOrEqual(1e-5);
  }

  test('Gemm transB=1 is per output channel (rows of W) and equals fq(x)·fq(W)ᵀ + fq(b) computed in JS', async () => {
    await checkDense(true, 301);
  });

  test('Gemm transB=0 is per output channel (columns of W) and equals fq(x)·fq(W) + fq(b) computed in JS', async () => {
    await checkDense(false, 302);
  });

  test('Gemm with channelWise: false is per tensor (AMCT) and equals fq(x)·fq(W)ᵀ + fq(b) computed in JS', async () => {
    await checkDense(true, 306, 'Gemm', false);
  });

  test('MatMul with a constant 2-D weight is per output channel and equals fq(x)·fq(W) computed in JS', async () => {
    await checkDense(false, 303, 'MatMul');
  });

  test('MatMul on a 3-D activation is quantized per output channel', async () => {
    await checkWeightedLayer({ opType: 'MatMul', attrs: {}, x: [2, 3, 8], w: [8, 5], axis: 1 }, 304);
  });

  test('at opset 13 and above, or when the upgrader reaches it, Gemm weights default to per channel; else per tensor with the reason', async () => {
    const rng = new Random(307);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 4])
      .initializer('W', [4, 3], rng.normals(12))
      .initializer('B', [3], rng.normals(3))
      .node('Gemm', ['x', 'W', 'B'], ['h'], {}, { name: 'fc' })
      .node('Resize', ['h', 'scales'], ['y'], { mode: 'nearest' }, { name: 'up' })
      .initializer('scales', [2], new Float32Array([1, 2]))
      .output('y', DataType.FLOAT);
    // Resize changed incompatibly at opset 11, so this opset-10 model cannot be raised to 13.
    const model = buildModel(g, { opset: 10 });
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    expect(layerConfig(config, 'fc').weight_quant_params!.channel_wise).toBe(false);
    const result = await quantizeModel(model, config, [{ x: floatTensor(rng.normals(8), [2, 4]) }]);
    const fc = result.layers.find((l) => l.name === 'fc')!;
    expect(fc).toMatchObject({ quantized: true, weights: 'per-tensor' });
    expect(fc.weightsReason).toMatch(/opset 13/);
    expect(fc.weightsReason).toMatch(/up/);
    const upgradable = buildModel(new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 4])
      .initializer('W', [4, 3], rng.normals(12))
      .node('Gemm', ['x', 'W'], ['y'], {}, { name: 'fc' })
      .output('y', DataType.FLOAT), { opset: 11 });
    expect(layerConfig(await createQuantConfig(upgradable, { skipSlowLayers: false }), 'fc').weight_quant_params!.channel_wise).toBe(true);
  });

  test('Gemm with alpha=0.5 is left in float with a reason that names alpha', async () => {
    const rng = new Random(305);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 4])
      .initializer('W', [4, 3], rng.normals(12))
      .initializer('B', [3], rng.normals(3))
      .node('Gemm', ['x', 'W', 'B'], ['h'], { alpha: float(0.5) }, { name: 'scaled' })
      .initializer('W2', [3, 2], rng.normals(6))
      .node('Gemm', ['h', 'W2'], ['y'], {}, { name: 'plain' })
      .output('y', DataType.FLOAT, [2, 2]);
    const model = buildModel(g);
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    expect(config.scaled).toBeUndefined();
    expect(config.plain).toBeDefined();
    const result = await quantizeModel(model, config, [{ x: floatTensor(rng.normals(8), [2, 4]) }]);
    const report = result.layers.find((l) => l.name === 'scaled');
    expect(report).toMatchObject({ opType: 'Gemm', quantized: false });
    expect(report!.reason).toMatch(/alpha/);
    expect(result.record.layers.scaled).toBeUndefined();
    expectQuantized(result, ['plain']);
    // The skipped Gemm keeps its float weight and alpha in both models.
    for (const bytes of [result.fakeQuantModel, result.deployModel]) {
      const node = decodeModel(bytes).graph!.node!.find((n) => n.name === 'scaled')!;
      expect(node.input![0]).toBe('x');
      expect(findAttribute(node, 'alpha')!.f).toBe(0.5);
    }
  });

  test('Gemm with transA=1 or beta != 1 is left in float with a reason', async () => {
    const rng = new Random(306);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [4, 2])
      .initializer('W', [4, 3], rng.normals(12))
      .node('Gemm', ['x', 'W'], ['h'], { transA: 1 }, { name: 'ta' })
      .initializer('W2', [3, 2], rng.normals(6))
      .initializer('B2', [2], rng.normals(2))
      .node('Gemm', ['h', 'W2', 'B2'], ['y'], { beta: float(2) }, { name: 'beta2' })
      .output('y', DataType.FLOAT, [2, 2]);
    const config = await createQuantConfig(buildModel(g), { skipSlowLayers: false });
    expect(Object.keys(config).filter((k) => typeof config[k] === 'object' && !Array.isArray(config[k]))).toEqual([]);
    const result = await quantizeModel(buildModel(g), config, [{ x: floatTensor(rng.normals(8), [4, 2]) }]);
    expect(result.layers.find((l) => l.name === 'ta')!.reason).toMatch(/transA/);
    expect(result.layers.find((l) => l.name === 'beta2')!.reason).toMatch(/beta/);
    expect(result.layers.every((l) => !l.quantized)).toBe(true);
  });
});

describe('AveragePool', () => {
  test('AveragePool quantizes its input activation only', async () => {
    const rng = new Random(401);
    const attrs = { kernel_shape: [2, 2], strides: [2, 2] };
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [1, 3, 8, 8])
      .node('AveragePool', ['x'], ['y'], attrs, { name: 'pool' })
      .output('y', DataType.FLOAT, [1, 3, 4, 4]);
    const q = await quantizeAndRun(buildModel(g), { rng, inputs: { x: [1, 3, 8, 8] } });
    expectQuantized(q.result, ['pool']);
    const rec = q.result.record.layers.pool!;
    expect(rec.scale_w).toBeUndefined();
    expect(layerConfig(q.config, 'pool').weight_quant_params).toBeUndefined();
    expectActivationParams(rec);
    // Average of four fake-quantized values, computed in JS.
    const fx = fqActivation(q.feeds.x!.data as Float32Array, rec.scale_d, rec.offset_d);
    const expected = new Float64Array(48);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 4; j++) {
          let s = 0;
          for (const [di, dj] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) s += fx[c * 64 + (2 * i + di) * 8 + 2 * j + dj]!;
          expected[c * 16 + i * 4 + j] = s / 4;
        }
      }
    }
    expect(relDiff(q.fake[0]!, expected)).toBeLessThanOrEqual(1e-6);
    expectConsistent(q);
  });
});

describe('activation calibration', () => {
  test('minmax calibration records the exact range seen over all batches', async () => {
    const rng = new Random(501);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 6])
      .initializer('W', [6, 3], rng.normals(18))
      .node('MatMul', ['x', 'W'], ['y'], {}, { name: 'mm' })
      .output('y', DataType.FLOAT, [2, 3]);
    const batches = [0, 1, 2, 3].map((i) => {
      const d = rng.normals(12, 1 + i);
      d[i] = 3 + i; // spread the extremes over the batches
      return d;
    });
    const config = await createQuantConfig(buildModel(g), { skipSlowLayers: false, batchNum: 4, activationAlgo: 'minmax' });
    const result = await quantizeModel(buildModel(g), config, batches.map((d) => ({ x: floatTensor(d, [2, 6]) })));
    const all = batches.flatMap((b) => Array.from(b));
    const rec = result.record.layers.mm!;
    expect(rec.clip_min_d).toBe(Math.min(0, ...all));
    expect(rec.clip_max_d).toBe(Math.max(0, ...all));
    expectActivationParams(rec);
  });

  test('a positive-only activation gets zero point -128 (range widened to include 0)', async () => {
    const rng = new Random(502);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 6])
      .node('Relu', ['x'], ['r'])
      .initializer('W', [6, 3], rng.normals(18))
      .node('MatMul', ['r', 'W'], ['y'], {}, { name: 'mm' })
      .output('y', DataType.FLOAT, [2, 3]);
    const config = await createQuantConfig(buildModel(g), { skipSlowLayers: false, activationAlgo: 'minmax' });
    const result = await quantizeModel(buildModel(g), config, [{ x: floatTensor(rng.normals(12), [2, 6]) }]);
    const rec = result.record.layers.mm!;
    expect(rec.clip_min_d).toBe(0);
    expect(rec.offset_d).toBe(-128);
    expectActivationParams(rec);
  });
  test('only the first batch_num batches are observed (feeds array and callback alike)', async () => {
    const rng = new Random(503);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 6])
      .initializer('W', [6, 3], rng.normals(18))
      .node('MatMul', ['x', 'W'], ['y'], {}, { name: 'mm' })
      .output('y', DataType.FLOAT, [2, 3]);
    const model = buildModel(g);
    const data = [rng.normals(12), rng.normals(12), rng.normals(12)].map((d) => d.map((v) => Math.max(-2, Math.min(2, v))));
    data[2]![5] = 50; // outside what the first two batches hold
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, activationAlgo: 'minmax' });
    const fromArray = await quantizeModel(model, config, data.map((d) => ({ x: floatTensor(d, [2, 6]) })));
    let runs = 0;
    const fromCallback = await quantizeModel(model, config, async (session) => {
      for (const d of data) {
        const out = await session.run({ x: floatTensor(d, [2, 6]) });
        expect(out.y!.dims).toEqual([2, 3]);
        runs++;
      }
    });
    expect(runs).toBe(3);
    for (const r of [fromArray, fromCallback]) {
      expect(r.calibration!.batches).toBe(2);
      expect(r.record.layers.mm!.clip_max_d).toBeLessThanOrEqual(2);
    }
    expect(fromCallback.record).toEqual(fromArray.record);
  });
});

describe('graph shapes', () => {
  /** Conv → Relu → Conv → GlobalAveragePool → Flatten → Gemm with a symbolic batch dimension. */
  function convNet(rng: Random, opset = 13) {
    const g = new GraphBuilder('net')
      .input('x', DataType.FLOAT, ['N', 3, 8, 8])
      .initializer('W1', [4, 3, 3, 3], rng.normals(108, 0.4))
      .initializer('B1', [4], rng.normals(4, 0.1))
      .node('Conv', ['x', 'W1', 'B1'], ['c1'], { pads: [1, 1, 1, 1] }, { name: 'conv1' })
      .node('Relu', ['c1'], ['r1'])
      .initializer('W2', [6, 4, 3, 3], rng.normals(216, 0.3))
      .initializer('B2', [6], rng.normals(6, 0.1))
      .node('Conv', ['r1', 'W2', 'B2'], ['c2'], {}, { name: 'conv2' })
      .node('GlobalAveragePool', ['c2'], ['p'])
      .node('Flatten', ['p'], ['f'])
      .initializer('W3', [3, 6], rng.normals(18, 0.5))
      .initializer('B3', [3], rng.normals(3, 0.1))
      .node('Gemm', ['f', 'W3', 'B3'], ['y'], { transB: 1 }, { name: 'fc' })
      .output('y', DataType.FLOAT, ['N', 3]);
    return buildModel(g, { opset });
  }

  test('a dynamic batch dimension: calibrate with batch 2, run with batch 3', async () => {
    const rng = new Random(601);
    const q = await quantizeAndRun(convNet(rng), {
      rng,
      inputs: { x: [2, 3, 8, 8] },
      runInputs: { x: [3, 3, 8, 8] },
      batches: 2,
    });
    expectQuantized(q.result, ['conv1', 'conv2', 'fc']);
    expect(q.fake[0]!.length).toBe(9);
    expectConsistent(q);
    for (const bytes of [q.result.fakeQuantModel, q.result.deployModel]) {
      const dim0 = decodeModel(bytes).graph!.input![0]!.type!.tensorType!.shape!.dim![0]!;
      expect(dim0.dimParam).toBe('N');
    }
  });

  test('a weight (and bias) shared by two Convs is quantized once and each Conv keeps its own bias scale', async () => {
    const rng = new Random(602);
    const wDims = [4, 3, 3, 3];
    const w = rng.normals(108, 0.4);
    const b = rng.normals(4, 0.3);
    const g = new GraphBuilder('shared')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .initializer('W', wDims, w)
      .initializer('B', [4], b)
      .initializer('four', [], new Float32Array([4]))
      .node('Conv', ['x', 'W', 'B'], ['ya'], {}, { name: 'a' })
      .node('Mul', ['x', 'four'], ['x4'])
      .node('Conv', ['x4', 'W', 'B'], ['yb'], {}, { name: 'b' })
      .output('ya', DataType.FLOAT, [1, 4, 4, 4])
      .output('yb', DataType.FLOAT, [1, 4, 4, 4]);
    const q = await quantizeAndRun(buildModel(g), { rng, inputs: { x: [1, 3, 6, 6] } });
    expectQuantized(q.result, ['a', 'b']);
    const ra = q.result.record.layers.a!;
    const rb = q.result.record.layers.b!;
    expect(rb.scale_d).toBeGreaterThan(ra.scale_d * 2); // different activation ranges
    expect(ra.scale_w).toEqual(rb.scale_w);
    const sw = expectWeightScales(ra, w, wDims, 0);
    const fw = fqWeight(w, wDims, 0, sw);
    const x = q.feeds.x!.data as Float32Array;
    const x4 = x.map((v) => f32(v * 4));
    for (const [i, rec, input] of [[0, ra, x], [1, rb, x4]] as const) {
      const ref = singleNodeModel('Conv', {}, [1, 3, 6, 6], { dims: wDims, data: fw }, { dims: [4], data: fqBias(b, rec.scale_d, sw) });
      const [expected] = await runModel(ref, { x: floatTensor(fqActivation(input, rec.scale_d, rec.offset_d), [1, 3, 6, 6]) });
      expect(relDiff(q.fake[i]!, expected!), `output ${i}`).toBeLessThanOrEqual(1e-5);
    }
    expectConsistent(q);
    // One int8 copy of the weight in the deploy model.
    const deploy = decodeModel(q.result.deployModel).graph!;
    expect(deploy.initializer!.filter((t) => t.dataType === DataType.INT8 && t.dims!.length === 4).length).toBe(1);
  });

  test('a weight shared by a per-channel and a per-tensor Conv: each Conv computes with its own recorded weight scales', async () => {
    const rng = new Random(603);
    const wDims = [4, 3, 3, 3];
    const w = rng.normals(108, 0.4);
    for (let i = 0; i < 27; i++) w[i] = w[i]! * 8; // channel 0 dominates: per-tensor and per-channel differ
    const g = new GraphBuilder('shared2')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .initializer('W', wDims, w)
      .node('Conv', ['x', 'W'], ['ya'], {}, { name: 'a' })
      .node('Conv', ['x', 'W'], ['yb'], {}, { name: 'b' })
      .output('ya', DataType.FLOAT, [1, 4, 4, 4])
      .output('yb', DataType.FLOAT, [1, 4, 4, 4]);
    const q = await quantizeAndRun(buildModel(g), {
      rng,
      inputs: { x: [1, 3, 6, 6] },
      editConfig: (config) => {
        layerConfig(config, 'b').weight_quant_params!.channel_wise = false;
      },
    });
    const x = q.feeds.x!.data as Float32Array;
    for (const [i, name, axis] of [[0, 'a', 0], [1, 'b', -1]] as const) {
      const rec = q.result.record.layers[name]!;
      const sw = expectWeightScales(rec, w, wDims, axis);
      const ref = singleNodeModel('Conv', {}, [1, 3, 6, 6], { dims: wDims, data: fqWeight(w, wDims, axis, sw) });
      const [expected] = await runModel(ref, { x: floatTensor(fqActivation(x, rec.scale_d, rec.offset_d), [1, 3, 6, 6]) });
      expect.soft(relDiff(q.fake[i]!, expected!), `fake-quant output of ${name}`).toBeLessThanOrEqual(1e-5);
      expect.soft(relDiff(q.deploy[i]!, expected!), `deploy output of ${name}`).toBeLessThanOrEqual(1e-5);
    }
  });
  test('unnamed and duplicate-named layers get distinct stable names and are all quantized', async () => {
    const rng = new Random(604);
    const [w1, w2, w3] = [rng.normals(12), rng.normals(16), rng.normals(16)];
    const net = (second: string, third: string) =>
      buildModel(
        new GraphBuilder('names')
          .input('x', DataType.FLOAT, [1, 3, 6, 6])
          .initializer('W1', [4, 3, 1, 1], w1)
          .node('Conv', ['x', 'W1'], ['a'])
          .initializer('W2', [4, 4, 1, 1], w2)
          .node('Conv', ['a', 'W2'], ['b'], {}, { name: second })
          .initializer('W3', [4, 4, 1, 1], w3)
          .node('Conv', ['b', 'W3'], ['y'], {}, { name: third })
          .output('y', DataType.FLOAT, [1, 4, 6, 6]),
      );
    // onnxruntime refuses duplicate node names, so the float reference names them apart.
    const model = net('dup', 'dup');
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    const calibration = [0, 1].map(() => ({ x: floatTensor(rng.normals(108), [1, 3, 6, 6]) }));
    const result = await quantizeModel(model, config, calibration);
    const names = result.layers.filter((l) => l.opType === 'Conv').map((l) => l.name);
    expect(names).toEqual(['Conv_0', 'dup', 'dup_1']);
    expect(Object.keys(config).filter((k) => names.includes(k)).length).toBe(3);
    expectQuantized(result, names);
    // Exactly what the same network with unique names gives.
    const unique = await quantizeModel(net('dup', 'dup_1'), config, calibration);
    expect(result.record).toEqual(unique.record);
    expect(result.fakeQuantModel).toEqual(unique.fakeQuantModel);
    expect(result.deployModel).toEqual(unique.deployModel);
    const feeds = { x: floatTensor(rng.normals(108), [1, 3, 6, 6]) };
    const [ref] = await runModel(encodeModel(net('dup', 'dup_1')), feeds);
    const [fake] = await runModel(result.fakeQuantModel, feeds);
    const [deploy] = await runModel(result.deployModel, feeds);
    expect(cosine(ref!, fake!)).toBeGreaterThan(0.97); // three stacked layers, two calibration batches
    expect(relDiff(deploy!, fake!)).toBeLessThanOrEqual(1e-5);
  });

  test('Gemm with a 2-D bias C ([1, N] and [M, N]) keeps a bias that broadcasts, and computes fq(x)·fq(W) + fq(C)', async () => {
    for (const [cDims, seed] of [[[1, 5], 605], [[4, 5], 606]] as const) {
      const rng = new Random(seed);
      const w = rng.normals(40, 0.5);
      const cData = rng.normals(cDims[0] * cDims[1], 0.3);
      const g = new GraphBuilder('gemm-c')
        .input('x', DataType.FLOAT, [4, 8])
        .initializer('W', [8, 5], w)
        .initializer('C', cDims, cData)
        .node('Gemm', ['x', 'W', 'C'], ['y'], {}, { name: 'fc' })
        .output('y', DataType.FLOAT, [4, 5]);
      const q = await quantizeAndRun(buildModel(g), { rng, inputs: { x: [4, 8] } }).catch((e: Error) => {
        throw new Error(`Gemm with C of shape [${cDims}]: ${e.message}`, { cause: e });
      });
      const report = q.result.layers.find((l) => l.name === 'fc')!;
      if (!report.quantized) {
        expect(report.reason, `C ${cDims}: skipped without a reason`).toBeTruthy();
        continue;
      }
      const rec = q.result.record.layers.fc!;
      // Per output channel (the columns of W), so C's last axis carries the bias scales.
      const sw = expectWeightScales(rec, w, [8, 5], 1);
      const fx = fqActivation(q.feeds.x!.data as Float32Array, rec.scale_d, rec.offset_d);
      const fc = fqBias(cData, rec.scale_d, Array.from(cData, (_, i) => sw[i % 5]!));
      const y = matmul(fx, fqWeight(w, [8, 5], 1, sw), 4, 8, 5, false);
      for (let i = 0; i < y.length; i++) y[i] = y[i]! + fc[cDims[0] === 1 ? i % 5 : i]!;
      expect(relDiff(q.fake[0]!, y), `C ${cDims}`).toBeLessThanOrEqual(1e-5);
      expectConsistent(q);
    }
  });

  test('an IR 3 / opset 9 model that lists its initializers as graph inputs is quantized and both models run', async () => {
    const rng = new Random(607);
    const w = rng.normals(108, 0.4);
    const b = rng.normals(4, 0.1);
    const g = new GraphBuilder('old-exporter')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .input('W', DataType.FLOAT, [4, 3, 3, 3])
      .input('B', DataType.FLOAT, [4])
      .initializer('W', [4, 3, 3, 3], w)
      .initializer('B', [4], b)
      .node('Conv', ['x', 'W', 'B'], ['c'], {}, { name: 'conv' })
      .node('Relu', ['c'], ['y'])
      .output('y', DataType.FLOAT, [1, 4, 4, 4]);
    const model = buildModel(g, { opset: 9, irVersion: 3 });
    const q = await quantizeAndRun(model, { rng, inputs: { x: [1, 3, 6, 6] } });
    expectQuantized(q.result, ['conv']);
    expectConsistent(q);
  });

  test('16-bit activations: int16 Q/DQ in the deploy model (opset 21), fake-quant clips to the int16 range', async () => {
    const rng = new Random(608);
    const w = rng.normals(108, 0.4);
    const g = new GraphBuilder('a16')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .initializer('W', [4, 3, 3, 3], w)
      .initializer('B', [4], rng.normals(4, 0.1))
      .node('Conv', ['x', 'W', 'B'], ['y'], {}, { name: 'conv' })
      .output('y', DataType.FLOAT, [1, 4, 4, 4]);
    const q = await quantizeAndRun(buildModel(g), { rng, inputs: { x: [1, 3, 6, 6] }, configOptions: { activationBits: 16 } });
    const rec = q.result.record.layers.conv!;
    expect(rec.num_bits_d).toBe(16);
    const lo = Math.min(rec.clip_min_d, 0);
    const hi = Math.max(rec.clip_max_d, 0);
    expect(rec.scale_d).toBeCloseTo(f32((hi - lo) / 65535), 9);
    expect(opsetVersion(decodeModel(q.result.deployModel))).toBe(21);
    const zp = decodeModel(q.result.deployModel).graph!.initializer!.find((t) => t.name === 'conv.input.zero_point');
    expect(zp?.dataType).toBe(DataType.INT16);
    for (let i = 0; i < q.float.length; i++) expect(cosine(q.float[i]!, q.fake[i]!)).toBeGreaterThan(0.9999);
    expectConsistent(q);
  });
  test('a disabled layer and a non-quantizable reader of the same activation keep computing in float', async () => {
    const rng = new Random(609);
    const g = new GraphBuilder('partial')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .initializer('Wa', [4, 3, 3, 3], rng.normals(108, 0.4))
      .node('Conv', ['x', 'Wa'], ['ya'], {}, { name: 'quantized' })
      .initializer('Wb', [4, 3, 3, 3], rng.normals(108, 0.4))
      .node('Conv', ['x', 'Wb'], ['yb'], {}, { name: 'disabled' })
      .node('Sigmoid', ['x'], ['ys'])
      .output('ya', DataType.FLOAT, [1, 4, 4, 4])
      .output('yb', DataType.FLOAT, [1, 4, 4, 4])
      .output('ys', DataType.FLOAT, [1, 3, 6, 6]);
    const q = await quantizeAndRun(buildModel(g), { rng, inputs: { x: [1, 3, 6, 6] }, configOptions: { skipLayers: ['disabled'] } });
    expect(layerConfig(q.config, 'disabled').quant_enable).toBe(false);
    expectQuantized(q.result, ['quantized']);
    const report = q.result.layers.find((l) => l.name === 'disabled')!;
    expect(report.quantized).toBe(false);
    expect(report.reason).toMatch(/quant_enable/);
    expect(q.result.record.layers.disabled).toBeUndefined();
    for (const out of [q.fake, q.deploy]) {
      expect(relDiff(out[1]!, q.float[1]!), 'disabled Conv').toBe(0);
      expect(relDiff(out[2]!, q.float[2]!), 'Sigmoid').toBe(0);
    }
    expect(relDiff(q.fake[0]!, q.float[0]!)).toBeGreaterThan(0);
    expectConsistent(q);
  });

  test('an all-zero weight channel and an all-zero activation get scale 1 instead of 0', async () => {
    const rng = new Random(610);
    const w = rng.normals(108, 0.4);
    w.fill(0, 27, 54); // output channel 1
    const b = rng.normals(4, 0.3);
    const g = new GraphBuilder('zeros')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .initializer('W', [4, 3, 3, 3], w)
      .initializer('B', [4], b)
      .node('Conv', ['x', 'W', 'B'], ['y'], {}, { name: 'conv' })
      .output('y', DataType.FLOAT, [1, 4, 4, 4]);
    const model = buildModel(g);
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    const zeros = { x: floatTensor(new Float32Array(108), [1, 3, 6, 6]) };
    const result = await quantizeModel(model, config, [zeros]);
    const rec = result.record.layers.conv!;
    expect(rec.scale_w![1]).toBe(1);
    expect(rec.scale_d).toBe(1);
    expect(rec.offset_d).toBe(-128);
    const feeds = { x: floatTensor(rng.normals(108), [1, 3, 6, 6]) };
    for (const bytes of [result.fakeQuantModel, result.deployModel]) {
      const [y] = await runModel(bytes, feeds);
      expect(y!.every(Number.isFinite)).toBe(true);
      // Channel 1 is bias only: fq(b[1]) with bias scale s_x * s_w = 1.
      for (let i = 16; i < 32; i++) expect(y![i]).toBe(rhe(b[1]!));
    }
  });

});

describe('opset variants', () => {
  /** A Conv → Relu model at `opset`; the check input holds exact rounding ties x/s = k + 0.5. */
  async function checkOpset(opset: number, seed: number, channelWise = true) {
    const rng = new Random(seed);
    const wDims = [5, 3, 3, 3];
    const w = rng.normals(135, 0.4);
    const b = rng.normals(5, 0.2);
    const g = new GraphBuilder(`opset${opset}`)
      .input('x', DataType.FLOAT, [1, 3, 7, 7])
      .initializer('W', wDims, w)
      .initializer('B', [5], b)
      .node('Conv', ['x', 'W', 'B'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' })
      .node('Relu', ['c'], ['y'])
      .output('y', DataType.FLOAT, [1, 5, 7, 7]);
    const model = buildModel(g, { opset, irVersion: opset >= 21 ? 10 : 8 });
    let ties = 0;
    const q = await quantizeAndRun(model, {
      rng,
      inputs: { x: [1, 3, 7, 7] },
      configOptions: { channelWise },
      runData: (_name, shape, result) => {
        const { scale_d: s, offset_d: zp } = result.record.layers.conv!;
        const data = rng.normals(product(shape));
        for (let i = 0; i < data.length; i += 2) {
          const k = rng.int(-100 - zp, 100 - zp);
          const v = f32((k + 0.5) * s);
          if (f32(v / s) === k + 0.5) {
            data[i] = v;
            ties++;
          }
        }
        return data;
      },
    });
    expect(ties).toBeGreaterThan(20);
    expectQuantized(q.result, ['conv']);
    const rec = q.result.record.layers.conv!;
    const sw = expectWeightScales(rec, w, wDims, channelWise ? 0 : -1);
    const ref = singleNodeModel(
      'Conv', { pads: [1, 1, 1, 1] }, [1, 3, 7, 7],
      { dims: wDims, data: fqWeight(w, wDims, channelWise ? 0 : -1, sw) },
      { dims: [5], data: fqBias(b, rec.scale_d, sw) },
    );
    const [conv] = await runModel(ref, { x: floatTensor(fqActivation(q.feeds.x!.data as Float32Array, rec.scale_d, rec.offset_d), [1, 3, 7, 7]) });
    const expected = conv!.map((v) => Math.max(v, 0));
    expect(relDiff(q.fake[0]!, expected), 'fake-quant vs JS fake-quant math (ties to even)').toBeLessThanOrEqual(1e-5);
    expectConsistent(q);

    const fake = decodeModel(q.result.fakeQuantModel);
    const deploy = decodeModel(q.result.deployModel);
    expect(opsetVersion(fake)).toBe(opset);
    const ops = fake.graph!.node!.map((n) => n.opType);
    // Only ops with WebGPU kernels: no Round anywhere, no attribute-form Clip.
    expect(ops).not.toContain('Round');
    expect(ops).toContain('Add');
    expect(ops).toContain('Sub');
    const bound = (name: string | undefined) => readTensorAsFloat32(getConstant(fake.graph!, name!)!)[0];
    if (opset < 11) {
      expect(ops).not.toContain('Clip');
      const max = fake.graph!.node!.find((n) => n.opType === 'Max')!;
      const min = fake.graph!.node!.find((n) => n.opType === 'Min')!;
      expect(bound(max.input![1])).toBe(-128 - rec.offset_d);
      expect(bound(min.input![1])).toBe(127 - rec.offset_d);
    } else {
      const clip = fake.graph!.node!.find((n) => n.opType === 'Clip')!;
      expect(clip.input!.length).toBe(3);
      expect(findAttribute(clip, 'min')).toBeUndefined();
      expect(bound(clip.input![1])).toBe(-128 - rec.offset_d);
    }
    const deployOpset = opsetVersion(deploy)!;
    if (channelWise) expect(deployOpset).toBe(Math.max(opset, 13));
    else expect(deployOpset).toBeGreaterThanOrEqual(Math.max(opset, 10));
    // The activation behind Q/DQ; weight and bias stored as int8/int32 (behind DequantizeLinear, or
    // Cast and Mul where ONNX Runtime would not fuse the layer: its output is the graph's output).
    expect(deploy.graph!.node!.filter((n) => n.opType === 'DequantizeLinear').length).toBeGreaterThanOrEqual(1);
    expect(deploy.graph!.initializer!.some((t) => t.dataType === DataType.INT8 && t.dims!.length === 4)).toBe(true);
    expect(deploy.graph!.initializer!.some((t) => t.dataType === DataType.INT32)).toBe(true);
    return q;
  }

  test('opset 9: clipping as Max/Min and add/sub rounding, deploy raised to 13 for per-channel weights', async () => {
    await checkOpset(9, 701);
  });

  test('opset 9 with per-tensor weights: deploy needs no per-channel opset', async () => {
    await checkOpset(9, 702, false);
  });

  test('opset 11: Clip with min/max inputs and add/sub rounding, deploy raised to 13', async () => {
    await checkOpset(11, 703);
  });

  for (const [opset, seed] of [[13, 704], [17, 705], [21, 706]] as const) {
    test(`opset ${opset}: rounding ties go to even and deploy keeps opset ${opset}`, async () => {
      await checkOpset(opset, seed);
    });
  }
});

describe('control flow', () => {
  /** x → Conv → If(cond: Conv reading the outer value c1 and the outer weight W2 | Conv with its own weight) → Conv. */
  function branchyModel(rng: Random): ModelProto {
    const thenBranch = new GraphBuilder('then')
      // Reads the outer Conv's weight W2 from the enclosing scope.
      .node('Conv', ['c1', 'W2'], ['t'], { pads: [1, 1, 1, 1] }, { name: 'then_conv' })
      .output('t', DataType.FLOAT, [1, 4, 6, 6]);
    const elseBranch = new GraphBuilder('else')
      .initializer('We', [4, 4, 1, 1], rng.normals(16, 0.5))
      .node('Conv', ['c1', 'We'], ['e'], {}, { name: 'else_conv' })
      .output('e', DataType.FLOAT, [1, 4, 6, 6]);
    const g = new GraphBuilder('branchy')
      .input('x', DataType.FLOAT, [1, 3, 6, 6])
      .input('cond', DataType.BOOL, [])
      .initializer('W1', [4, 3, 3, 3], rng.normals(108, 0.4))
      .initializer('B1', [4], rng.normals(4, 0.1))
      .node('Conv', ['x', 'W1', 'B1'], ['c1'], { pads: [1, 1, 1, 1] }, { name: 'outer1' })
      .node('If', ['cond'], ['z'], { then_branch: thenBranch, else_branch: elseBranch }, { name: 'branch' })
      .initializer('W2', [4, 4, 3, 3], rng.normals(144, 0.3))
      .node('Conv', ['z', 'W2'], ['y'], { pads: [1, 1, 1, 1] }, { name: 'outer2' })
      .output('y', DataType.FLOAT, [1, 4, 6, 6]);
    return buildModel(g);
  }
  const condFeeds = (rng: Random, conds: readonly boolean[]): Feeds[] =>
    conds.map((c) => ({ x: floatTensor(rng.normals(108), [1, 3, 6, 6]), cond: new Tensor('bool', new Uint8Array([c ? 1 : 0]), []) }));
  const branchOf = (bytes: Uint8Array, attribute: string) => decodeModel(bytes).graph!.node!.find((n) => n.opType === 'If')!.attribute!.find((a) => a.name === attribute)!.g!;

  test('Convs in both branches of an If are listed, calibrated on the batches that take their branch, and quantized inside it; outer-scope values keep working', async () => {
    const rng = new Random(801);
    const model = encodeModel(branchyModel(rng));
    const config = await createQuantConfig(model, { skipSlowLayers: false, biasCorrection: false, batchNum: 4 });
    expect(Object.keys(config).filter((k) => k.startsWith('outer') || k.endsWith('_conv'))).toEqual(['outer1', 'then_conv', 'else_conv', 'outer2']);
    const result = await quantizeModel(model, config, condFeeds(rng, [true, false, true, false]));
    expectQuantized(result, ['outer1', 'then_conv', 'else_conv', 'outer2']);
    expect(result.calibration?.unreached ?? []).toEqual([]);
    expect(result.warnings).toEqual([]);
    for (const attribute of ['then_branch', 'else_branch']) {
      const body = branchOf(result.deployModel, attribute);
      const ops = body.node!.map((n) => n.opType);
      expect(ops, attribute).toContain('QuantizeLinear');
      expect(ops, attribute).toContain('DequantizeLinear');
      // The int8 weight lives in the branch; its float original is gone from there.
      expect((body.initializer ?? []).some((t) => t.dataType === DataType.INT8), attribute).toBe(true);
    }
    expect(getConstant(branchOf(result.deployModel, 'else_branch'), 'We')).toBeUndefined();
    // The then branch quantized the outer W2 with its own scales (the record's), leaving outer2's copy alone.
    expect(result.record.layers['then_conv']!.scale_w).toHaveLength(4);
    for (const cond of [true, false]) {
      const [feeds] = condFeeds(rng, [cond]);
      const [float] = await runModel(model, feeds!);
      const [fake] = await runModel(result.fakeQuantModel, feeds!);
      const [deploy] = await runModel(result.deployModel, feeds!);
      expect(cosine(float!, fake!), `cond ${cond}: fake-quant vs float`).toBeGreaterThan(0.99);
      expect(relDiff(deploy!, fake!), `cond ${cond}: deploy vs fake-quant`).toBeLessThanOrEqual(1e-5);
    }
  });

  test('a branch no calibration batch takes stays float, and the layer report and the calibration statistics say so', async () => {
    const rng = new Random(802);
    const model = encodeModel(branchyModel(rng));
    const config = await createQuantConfig(model, { skipSlowLayers: false, biasCorrection: false, batchNum: 3 });
    const result = await quantizeModel(model, config, condFeeds(rng, [true, true, true]));
    expectQuantized(result, ['outer1', 'then_conv', 'outer2']);
    const elseConv = result.layers.find((l) => l.name === 'else_conv')!;
    expect(elseConv.quantized).toBe(false);
    expect(elseConv.reason).toBe('no calibration batch took its branch (branch/else_branch)');
    expect(result.warnings.map((w) => w.message)).toEqual(['1 heavy node stays float, no calibration batch took its branch (branch/else_branch) (Conv ×1): without calibration data that takes the branch they have no calibrated range; give batches that do']);
    expect(result.calibration?.unreached).toEqual(['else_conv']);
    expect(result.record.layers['else_conv']).toBeUndefined();
    // The branch never taken is the float model's, and still runs.
    expect(getConstant(branchOf(result.deployModel, 'else_branch'), 'We')).toBeDefined();
    const [feeds] = condFeeds(rng, [false]);
    const [float] = await runModel(model, feeds!);
    const [deploy] = await runModel(result.deployModel, feeds!);
    expect(cosine(float!, deploy!)).toBeGreaterThan(0.99);
  });
});
