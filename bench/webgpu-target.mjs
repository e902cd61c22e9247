#!/usr/bin/env node
// The 'webgpu' deploy target (after `npm run build`): weight-only forms onnxruntime-web's WebGPU
// backend runs on the GPU (MatMulNBits, GatherBlockQuantized, Conv with int8 weights folded at load),
// against float and against the CPU target's int8 QDQ model, on the transformer fixtures and the MNIST
// CNN. Per form: file size, bytes of the quantized weights, held-out accuracy of the deploy model and
// its output cosine to float (onnxruntime-node CPU, which runs MatMulNBits and GatherBlockQuantized
// too), parity, the 4-bit form without activation-aware weight scaling, and for the automatic search with weightBits [4, 8] the evaluations and the bits it
// chose. Where each form's nodes run under WebGPU is `deno run -A bench/webgpu-placement.ts`.
// Run: node bench/webgpu-target.mjs
import { readFileSync } from 'node:fs';
import * as ortNode from 'onnxruntime-node';
import { accuracyBasedAutoCalibration, ClassificationEvaluator, createQuantConfig, FidelityEvaluator, quantizeModel, Tensor } from '../dist/index.js';
import { getKernels } from '../dist/kernels.js';
import { parseNpy } from '../dist/npy.js';
import { mnistBatch } from './inputs.mjs';
import { emitTable } from './report.mjs';

const k = await getKernels();
const FIX = new URL('../test/fixtures/', import.meta.url);
const read = (f) => new Uint8Array(readFileSync(new URL(f, FIX)));
const ids = parseNpy(read('transformers/token_heldout_ids.npy'));
const mask = parseNpy(read('transformers/token_heldout_mask.npy'));
const tokenLabels = Array.from(parseNpy(read('transformers/token_heldout_labels.npy')).data, Number);
const tokens = (T, start, n) => ({
  input_ids: new T('int64', ids.data.slice(start * 32, (start + n) * 32), [n, 32]),
  attention_mask: new T('int64', mask.data.slice(start * 32, (start + n) * 32), [n, 32]),
});
const image = (name, file) => ({
  name, file, classes: 10,
  calib: [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', mnistBatch(b * 32, 32, true).x, [32, 1, 28, 28]) })),
  held: (() => { const { x, labels } = mnistBatch(0, 1000, false); return { feeds: { input: new Tensor('float32', x, [1000, 1, 28, 28]) }, labels }; })(),
});
const cases = [
  image('tiny ViT', 'transformers/vit_tiny.onnx'),
  image('tiny ViT, planted outlier channels', 'transformers/vit_tiny_outliers.onnx'),
  {
    name: 'token classifier', file: 'transformers/token_classifier.onnx', classes: 4,
    calib: [0, 1, 2, 3].map((b) => tokens(Tensor, b * 32, 32)),
    held: { feeds: tokens(Tensor, 128, 872), labels: tokenLabels.slice(128) },
  },
  image('MNIST CNN', 'mnist_cnn.onnx'),
];

const session = (bytes) => ortNode.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
async function output(bytes, feeds) {
  const s = await session(bytes);
  try {
    const plain = Object.fromEntries(Object.entries(feeds).map(([n, t]) => [n, new ortNode.Tensor(t.type, t.data, t.dims)]));
    return (await s.run(plain))[s.outputNames[0]].data;
  } finally {
    await s.release();
  }
}
const accuracy = (out, labels, classes) => labels.filter((l, i) => {
  const row = out.subarray(i * classes, (i + 1) * classes);
  return row.indexOf(Math.max(...row)) === l;
}).length / labels.length;
const kb = (n) => (n / 1e3).toFixed(1);
const bitsText = (layers) => {
  const four = layers.filter((l) => l.quantized && l.weightBits === 4).length;
  const eight = layers.filter((l) => l.quantized && l.weightBits === 8).length;
  return four + eight ? `${four} × 4, ${eight} × 8` : '-';
};

const rows = [];
for (const c of cases) {
  const model = read(c.file);
  const float = await output(model, c.held.feeds);
  const fa = accuracy(float, c.held.labels, c.classes);
  const row = async (form, r, extra = {}) => {
    const out = await output(r.deployModel, c.held.feeds);
    const a = accuracy(out, c.held.labels, c.classes);
    rows.push([
      c.name, form, kb(r.deployModel.length), r.weightBytes ? `${kb(r.weightBytes.quantized)} / ${kb(r.weightBytes.float)}` : '-',
      fa.toFixed(3), a.toFixed(3), (fa - a).toFixed(3), k.cosine(float, out).toFixed(5), r.parity ? r.parity.cosine.toFixed(6) : '-',
      bitsText(r.layers), extra.evaluations ?? '-', extra.seconds ?? '-',
    ]);
    console.error(rows.at(-1).join(' | '));
  };
  rows.push([c.name, 'float', kb(model.length), '-', fa.toFixed(3), fa.toFixed(3), '0.000', '1.00000', '-', '-', '-', '-']);
  await row('cpu int8 QDQ (default)', await quantizeModel(model, await createQuantConfig(model, { batchNum: 4 }), c.calib));
  for (const bits of [8, 4]) {
    await row(`webgpu, ${bits}-bit`, await quantizeModel(model, await createQuantConfig(model, { batchNum: 4, deployTarget: 'webgpu', weightBits: bits }), c.calib));
  }
  // Without activation-aware weight scaling (decide/weight-scaling.ts), to show what it does.
  await row('webgpu, 4-bit, no weight scaling', await quantizeModel(model, await createQuantConfig(model, { batchNum: 4, deployTarget: 'webgpu', weightBits: 4, activationEqualization: false }), c.calib));
  // The mixed search: at an accuracy limit of 0.01 on half the held-out set, and at a tight
  // label-free limit (output cosine within 0.002 of float) where all at 4 bits does not pass.
  const half = (n) => Object.fromEntries(Object.entries(c.held.feeds).map(([name, t]) => [name, new Tensor(t.type, t.data.slice(0, (t.data.length / t.dims[0]) * n), [n, ...t.dims.slice(1)])]));
  const labelled = [{ feeds: half(400), labels: c.held.labels.slice(0, 400) }];
  const searches = [
    ['webgpu [4, 8] auto, accuracy drop ≤ 0.01', new ClassificationEvaluator(labelled, { calibrationInputs: c.calib, batchNum: 4, maxDrop: 0.01 })],
    ['webgpu [4, 8] auto, output cosine drop ≤ 0.002', new FidelityEvaluator([half(200)], { calibrationInputs: c.calib, batchNum: 4, mode: 'cosine', maxDrop: 0.002 })],
  ];
  for (const [form, evaluator] of searches) {
    const t0 = performance.now();
    const r = await accuracyBasedAutoCalibration(model, evaluator, { deployTarget: 'webgpu', weightBits: [4, 8] });
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    if (!r.passed) {
      rows.push([c.name, form, '-', '-', fa.toFixed(3), '-', '-', '-', '-', r.message, String(r.evaluations), seconds]);
      continue;
    }
    await row(form, r, { evaluations: String(r.evaluations), seconds });
  }
}
emitTable('webgpu-target', {
  title: `The 'webgpu' deploy target against float and the CPU target: sizes, weight bytes, held-out accuracy and output cosine of the deploy model in onnxruntime-node ${ortNode.env.versions?.common ?? ''} CPU`,
  header: ['model', 'form', 'file kB', 'quantized weights kB / float32 kB', 'float accuracy', 'deploy accuracy', 'drop', 'cosine to float', 'parity', 'block-quantized layers', 'evaluations', 's'],
  align: 'llrrrrrrrlrr',
  rows,
  note: 'Held-out sets: 1000 MNIST digits not used in training (the tiny ViT, the MNIST CNN), 872 token sequences (the token classifier); the searches evaluate on the first 400 (accuracy) or 200 (cosine) of them and calibrate on training digits or the first 128 sequences. "quantized weights" counts the weight-only layers\' codes, scales and zero points.',
});
