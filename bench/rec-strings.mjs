#!/usr/bin/env node
// The PP-OCRv4 recognizer's string match against float (after `npm run build`): of held-out text lines,
// how many the deploy model reads exactly as float reads them (greedy CTC), with the deploy/float latency
// in onnxruntime-node (1 thread) and the time to produce the model. Rows: PTQ with the default config,
// PTQ with adaptive rounding and channel splitting, and the automatic search with an evaluator that
// scores that string match (limit: at most 12% of lines read differently), which chooses per layer what
// stays float. The search evaluates on 32 lines (4 batches of 8) and is judged on 32 others; every row
// reports both sets. Run: node bench/rec-strings.mjs
import { readFileSync } from 'node:fs';
import * as ortNode from 'onnxruntime-node';
import { accuracyBasedAutoCalibration, AutoCalibrationEvaluator, createQuantConfig, quantizeModel, Tensor } from '../dist/index.js';
import { deployCases, interleavedMedians } from './deploy-cases.mjs';
import { ctcStrings } from './metrics.mjs';
import { emitTable } from './report.mjs';

const c = deployCases.find((x) => x.name.includes('rec'));
const model = new Uint8Array(readFileSync(c.file));
const batch = (b) => {
  const [x, d] = c.bench(b);
  return { [c.input]: new Tensor('float32', x, d) };
};
const calib = [0, 1].map((i) => {
  const [x, d] = c.calib(i);
  return { [c.input]: new Tensor('float32', x, d) };
});
const SEARCHED = [0, 1, 2, 3].map(batch);
const HELD_OUT = [4, 5, 6, 7].map(batch);
const MAX_DROP = 0.12;

/** The share of lines read as the first model this evaluator saw (float) read them. */
class StringMatch extends AutoCalibrationEvaluator {
  constructor(batches, limit) {
    super(limit);
    this.batches = batches;
  }
  reset() {
    this.reference = undefined;
  }
  async calibration(session) {
    for (const f of calib) await session.run(f);
  }
  async evaluate(session) {
    const lines = [];
    for (const f of this.batches) {
      const o = (await session.run(f))[session.outputNames[0]];
      lines.push(...ctcStrings(o.data, o.dims));
    }
    if (!this.reference) {
      this.reference = lines;
      return 1;
    }
    return lines.filter((l, i) => l === this.reference[i]).length / lines.length;
  }
}

const nodeOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } };
const plain = (f) => Object.fromEntries(Object.entries(f).map(([n, t]) => [n, new ortNode.Tensor(t.type, t.data, t.dims)]));
const wrap = (s) => ({ outputNames: s.outputNames, run: (f) => s.run(plain(f)) });

async function matches(bytes, batches) {
  const ev = new StringMatch(batches, {});
  const f = await ortNode.InferenceSession.create(model, nodeOptions);
  const q = await ortNode.InferenceSession.create(bytes, nodeOptions);
  await ev.evaluate(wrap(f));
  const share = await ev.evaluate(wrap(q));
  await f.release();
  await q.release();
  return `${Math.round(share * batches.length * 8)} of ${batches.length * 8}`;
}

async function latency(bytes) {
  const s = [await ortNode.InferenceSession.create(model, nodeOptions), await ortNode.InferenceSession.create(bytes, nodeOptions)];
  const [f, q] = await interleavedMedians(s, plain(batch(0)), 15);
  for (const x of s) await x.release();
  return (q / f).toFixed(2);
}

const rows = [];
const row = async (form, deployModel, seconds, layers, evaluations = '-') => {
  rows.push([form, layers, evaluations, seconds.toFixed(1), await matches(deployModel, SEARCHED), await matches(deployModel, HELD_OUT), await latency(deployModel)]);
  console.error(rows.at(-1).join(' | '));
};
for (const [form, opts] of [['PTQ, default config', {}], ['PTQ, adaptive rounding + channel splitting 0.0625', { weightRounding: 'adaptive', channelSplitting: 0.0625 }]]) {
  const config = await createQuantConfig(model, { batchNum: 2, ...opts });
  const t0 = performance.now();
  const r = await quantizeModel(model, config, calib);
  const n = r.layers.filter((l) => l.quantized).length;
  await row(form, r.deployModel, (performance.now() - t0) / 1000, `${n} of ${r.layers.length}`);
}
{
  const t0 = performance.now();
  const r = await accuracyBasedAutoCalibration(model, new StringMatch(SEARCHED, { maxDrop: MAX_DROP }), { config: await createQuantConfig(model, { batchNum: 2 }), engine: 'node' });
  const seconds = (performance.now() - t0) / 1000;
  if (!r.passed) rows.push([`automatic search, string match drop ≤ ${MAX_DROP}`, r.message, String(r.evaluations), seconds.toFixed(1), '-', '-', '-']);
  else await row(`automatic search, string match drop ≤ ${MAX_DROP}`, r.deployModel, seconds, `${r.quantizedLayers.length} of ${r.layers.length}`, String(r.evaluations));
}
emitTable('rec-strings', {
  title: `PP-OCRv4 recognizer, lines read exactly as float reads them (greedy CTC), onnxruntime-node ${ortNode.env.versions?.common ?? ''} CPU`,
  header: ['how the model was made', 'layers int8', 'evaluations', 'seconds to make it', 'lines matching, searched set', 'lines matching, held-out set', 'deploy / float, 1 thread'],
  align: 'llrrrrr',
  rows,
  note: 'Lines: synthetic 48×320 text lines (bench/inputs.mjs), 4 batches of 8 searched and 4 others held out; calibration: 2 batches of 4 other lines. Latency: median of 15 interleaved runs on one batch of 8.',
});
