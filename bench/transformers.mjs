#!/usr/bin/env node
// What default PTQ does on the models JS developers ship (after `npm run build`): the trained fixtures
// under test/fixtures/transformers (a tiny ViT at opset 13 and 17, a token classifier with a Gather
// embedding and an attention mask, an LSTM reading digit rows). Per model: the heavy nodes (Conv, MatMul,
// Gemm, Gather from a constant table, LSTM/GRU/RNN) and how many the default config quantizes, held-out
// accuracy of float and of the deploy model in onnxruntime-node, file sizes, and deploy/float latency
// (CPU, graphOptimizationLevel 'all', 1 thread, median of interleaved runs). For the LSTM, the deploy
// output's cosine to float after 28 and after 840 steps (30 digits) says whether it holds its state.
// Run: node bench/transformers.mjs [--runs N]
import { readFileSync } from 'node:fs';
import * as ortNode from 'onnxruntime-node';
import { createQuantConfig, quantizeModel, Tensor } from '../dist/index.js';
import { getKernels } from '../dist/kernels.js';
import { parseNpy } from '../dist/npy.js';
import { decodeModel } from '../dist/onnx.js';
import { arg, interleavedMedians } from './deploy-cases.mjs';
import { mnistBatch } from './inputs.mjs';
import { emitTable } from './report.mjs';

const RUNS = Number(arg('--runs', 15));
const DIR = new URL('../test/fixtures/transformers/', import.meta.url);
const read = (f) => new Uint8Array(readFileSync(new URL(f, DIR)));
const k = await getKernels();

const digits = mnistBatch;
const image = (name) => ({
  name,
  file: name,
  classes: 10,
  calib: [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', digits(b * 32, 32, true).x, [32, 1, 28, 28]) })),
  held: (() => { const { x, labels } = digits(0, 1000, false); return { feeds: { input: new ortNode.Tensor('float32', x, [1000, 1, 28, 28]) }, labels }; })(),
});
const ids = parseNpy(read('token_heldout_ids.npy'));
const mask = parseNpy(read('token_heldout_mask.npy'));
const tokenLabels = Array.from(parseNpy(read('token_heldout_labels.npy')).data, Number);
const tokens = (T, start, n) => ({
  input_ids: new T('int64', ids.data.slice(start * 32, (start + n) * 32), [n, 32]),
  attention_mask: new T('int64', mask.data.slice(start * 32, (start + n) * 32), [n, 32]),
});
const strips = (n, count) => {
  const x = new Float32Array(n * count * 784);
  let labels = [];
  for (let d = 0; d < count; d++) {
    const b = digits(d * n, n, false);
    for (let i = 0; i < n; i++) x.set(b.x.subarray(i * 784, (i + 1) * 784), (i * count + d) * 784);
    labels = b.labels;
  }
  return { feeds: { rows: new ortNode.Tensor('float32', x, [n, 28 * count, 28]) }, labels };
};
const cases = [
  image('vit_tiny.onnx'),
  image('vit_tiny_ln17.onnx'),
  image('vit_tiny_outliers.onnx'),
  {
    name: 'token_classifier.onnx', file: 'token_classifier.onnx', classes: 4,
    // The first 128 held-out sequences calibrate, the other 872 measure.
    calib: [0, 1, 2, 3].map((b) => tokens(Tensor, b * 32, 32)),
    held: { feeds: tokens(ortNode.Tensor, 128, 872), labels: tokenLabels.slice(128) },
  },
  {
    name: 'lstm_rows.onnx', file: 'lstm_rows.onnx', classes: 10,
    calib: [0, 1].map((b) => ({ rows: new Tensor('float32', digits(b * 32, 32, true).x, [32, 28, 28]) })),
    held: strips(1000, 1),
    long: strips(200, 30),
  },
];

const session = (bytes) => ortNode.InferenceSession.create(bytes, {
  executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const output = async (s, feeds) => (await s.run(feeds))[s.outputNames[0]].data;
const accuracy = (out, labels, classes) => labels.filter((l, i) => {
  const row = out.subarray(i * classes, (i + 1) * classes);
  return row.indexOf(Math.max(...row)) === l;
}).length / labels.length;
const HEAVY = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'LSTM', 'GRU', 'RNN']);

const rows = [];
const smoothing = [];
for (const c of cases) {
  const model = read(c.file);
  const graph = decodeModel(model).graph;
  const constants = new Set((graph.initializer ?? []).map((t) => t.name));
  const heavy = graph.node.filter((n) => HEAVY.has(n.opType) || (n.opType === 'Gather' && constants.has(n.input[0])));
  const t0 = performance.now();
  const result = await quantizeModel(model, await createQuantConfig(model, { batchNum: c.calib.length }), c.calib);
  const seconds = (performance.now() - t0) / 1000;
  const quantized = new Set(result.layers.filter((l) => l.quantized).map((l) => l.name));
  const byType = {};
  for (const n of heavy) {
    const e = (byType[n.opType] ??= [0, 0]);
    e[1]++;
    if (quantized.has(n.name)) e[0]++;
  }
  const sessions = [await session(model), await session(result.deployModel)];
  const [f, d] = await Promise.all(sessions.map((s) => output(s, c.held.feeds)));
  const fa = accuracy(f, c.held.labels, c.classes);
  const da = accuracy(d, c.held.labels, c.classes);
  let state = '-';
  if (c.long) {
    const [fl, dl] = await Promise.all(sessions.map((s) => output(s, c.long.feeds)));
    state = `${k.cosine(f, d).toFixed(5)} / ${k.cosine(fl, dl).toFixed(5)}`;
  }
  const small = Object.fromEntries(Object.entries(c.held.feeds).map(([name, t]) => [name, new ortNode.Tensor(t.type, t.data.slice(0, t.data.length / t.dims[0] * 8), [8, ...t.dims.slice(1)])]));
  for (const s of sessions) for (let i = 0; i < 3; i++) await s.run(small);
  const [tf, td] = await interleavedMedians(sessions, small, RUNS);
  for (const s of sessions) await s.release();
  rows.push([
    c.name,
    `${heavy.filter((n) => quantized.has(n.name)).length} / ${heavy.length}`,
    Object.entries(byType).map(([t, [q, n]]) => `${t} ${q}/${n}`).join(', '),
    fa.toFixed(3), da.toFixed(3), Math.abs(da - fa).toFixed(3),
    `${(model.length / 1e3).toFixed(0)}`, `${(result.deployModel.length / 1e3).toFixed(0)}`,
    tf.toFixed(2), td.toFixed(2), (td / tf).toFixed(2), state, seconds.toFixed(1),
  ]);
  console.error(rows.at(-1).join(' | '));
  if (c.long) continue;
  // Activation equalization of the linear layers behind a normalization (smooth-linear.ts): the
  // deploy output's cosine to float on the held-out set, without it and with it (the default).
  const off = await quantizeModel(model, await createQuantConfig(model, { batchNum: c.calib.length, activationEqualization: false }), c.calib);
  const offSession = await session(off.deployModel);
  const o = await output(offSession, c.held.feeds);
  await offSession.release();
  const taken = new Set(result.activationEqualized.map((e) => e.absorbedBy));
  smoothing.push([
    c.name, `${taken.size}`, `${result.activationEqualized.length}`,
    k.cosine(f, o).toFixed(5), k.cosine(f, d).toFixed(5), accuracy(o, c.held.labels, c.classes).toFixed(3), da.toFixed(3),
  ]);
  console.error(smoothing.at(-1).join(' | '));
}
emitTable('transformers', {
  title: `Default PTQ on the transformer and recurrent fixtures (test/fixtures/transformers), held-out accuracy and latency (batch 8) in onnxruntime-node ${ortNode.env.versions?.common ?? ''} CPU, 1 thread, median of ${RUNS} interleaved runs`,
  header: ['model', 'heavy nodes quantized', 'by type', 'float accuracy', 'deploy accuracy', '|difference|', 'float kB', 'deploy kB', 'float ms', 'deploy ms', 'deploy / float', 'LSTM cosine deploy-float, 28 / 840 steps', 'PTQ s'],
  align: 'lrlrrrrrrrrrr',
  rows,
});
emitTable('transformers-smoothing', {
  title: 'Activation equalization of the linear layers behind a normalization (SmoothQuant-style, chosen per input), default PTQ without and with it: deploy output against float on the held-out set, onnxruntime-node',
  header: ['model', 'normalizations taken', 'layers smoothed', 'cosine without', 'cosine with', 'accuracy without', 'accuracy with'],
  align: 'lrrrrrr',
  rows: smoothing,
});
