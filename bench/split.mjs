#!/usr/bin/env node
// What channel splitting costs and buys where the deploy models run (after `npm run build`): each model
// quantized with the default config and with channel_splitting R (default 0.0625), both deploy models timed
// together in onnxruntime-node (CPU, graphOptimizationLevel 'all', 1 thread, median of interleaved runs after
// warm-up, float alongside), their sizes, and their fidelity to float (cosine, mean over four held-out inputs).
// Run: node bench/split.mjs [--ratio R] [--runs N] [--only name]
import { readFileSync } from 'node:fs';
import * as ortNode from 'onnxruntime-node';
import { createQuantConfig, quantizeModel, Tensor } from '../dist/index.js';
import { getKernels } from '../dist/kernels.js';
import { arg, deployCases, interleavedMedians } from './deploy-cases.mjs';
import { emitTable } from './report.mjs';

const RATIO = Number(arg('--ratio', 0.0625));
const RUNS = Number(arg('--runs', 15));
const ONLY = arg('--only', '');

const k = await getKernels();
const session = (bytes) => ortNode.InferenceSession.create(bytes, {
  executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const rows = [];
for (const c of deployCases) {
  if (ONLY && !c.name.toLowerCase().includes(ONLY.toLowerCase())) continue;
  const model = new Uint8Array(readFileSync(c.file));
  const calib = [0, 1].map((i) => { const [x, d] = c.calib(i); return { [c.input]: new Tensor('float32', x, d) }; });
  const results = [];
  for (const channelSplitting of [0, RATIO]) {
    results.push(await quantizeModel(model, await createQuantConfig(model, { batchNum: 2, channelSplitting }), calib));
  }
  const sessions = [await session(model), ...(await Promise.all(results.map((r) => session(r.deployModel))))];
  const cos = [0, 0];
  for (let i = 0; i < 4; i++) {
    const [x, dims] = c.bench(i);
    const feeds = { [c.input]: new ortNode.Tensor('float32', x, dims) };
    const outs = [];
    for (const s of sessions) outs.push((await s.run(feeds))[s.outputNames[0]].data);
    for (const j of [0, 1]) cos[j] += k.cosine(outs[0], outs[j + 1]) / 4;
  }
  const [x, dims] = c.bench();
  const feeds = { [c.input]: new ortNode.Tensor('float32', x, dims) };
  for (const s of sessions) for (let i = 0; i < 3; i++) await s.run(feeds);
  const [f, d0, d1] = await interleavedMedians(sessions, feeds, RUNS);
  for (const s of sessions) await s.release();
  const split = results[1].channelSplits;
  rows.push([`${c.name} ${dims.join('×')}`, `${split.length}`, `${split.reduce((n, s) => n + s.added, 0)}`, `${(results[0].deployModel.length / 1e6).toFixed(2)}`, `${(results[1].deployModel.length / 1e6).toFixed(2)}`, `${(results[1].deployModel.length / results[0].deployModel.length).toFixed(3)}`, `${f.toFixed(1)}`, `${d0.toFixed(1)}`, `${d1.toFixed(1)}`, `${(d1 / d0).toFixed(2)}`, `${cos[0].toFixed(5)}`, `${cos[1].toFixed(5)}`]);
  console.error(rows.at(-1).join(' | '));
}
emitTable('split', {
  title: `channel_splitting ${RATIO} against 0 (default config otherwise), onnxruntime-node ${ortNode.env.versions?.common ?? ''} CPU, 1 thread, median of ${RUNS} interleaved runs`,
  header: ['model, input', 'layers split', 'input channels added', 'deploy MB', 'split deploy MB', 'size ratio', 'float ms', 'deploy ms', 'split deploy ms', 'latency ratio', 'cosine deploy-float', 'split: cosine deploy-float'],
  align: 'lrrrrrrrrrrr',
  rows,
});
