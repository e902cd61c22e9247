#!/usr/bin/env node
// Where the quantized models run (after `npm run build`): latency of the float, fake-quant and deploy
// models in native ONNX Runtime (onnxruntime-node, CPU, graphOptimizationLevel 'all', median after
// warm-up) with 1 intra-op thread and with all cores, the ratios to float, how many quantized layers
// onnxruntime turned into integer kernels, and fidelity (cosine to float, deploy vs fake-quant).
// Fidelity is the mean over four held-out inputs (the timed one first): one input's cosine moves by
// as much as the changes being compared.
// Run: node bench/deploy.mjs [--runs N] [--only name] [--no-quantize-outputs] [--bias-correction] [--channel-splitting R] [--weight-rounding adaptive]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { createQuantConfig, quantizeModel, Tensor } from '../dist/index.js';
import { decodeModel } from '../dist/onnx.js';
import { getKernels } from '../dist/kernels.js';
import { arg, deployCases, interleavedMedians } from './deploy-cases.mjs';
import { ctcStrings } from './metrics.mjs';
import { emitTable } from './report.mjs';

const RUNS = Number(arg('--runs', 15));
const ONLY = arg('--only', '');
const QUANTIZE_OUTPUTS = !process.argv.includes('--no-quantize-outputs');
const BIAS_CORRECTION = process.argv.includes('--bias-correction');
const CHANNEL_SPLITTING = Number(arg('--channel-splitting', 0));
const WEIGHT_ROUNDING = arg('--weight-rounding', 'nearest');

const tmp = mkdtempSync(join(tmpdir(), 'autoquant-deploy-'));

/**
 * Median latency of each model, the runs interleaved (float, fake-quant, deploy, float, ...) so that
 * a slow phase of this noisy machine hits all of them alike instead of skewing one ratio.
 */
async function timedTogether(models, feeds, threads, optimizedPath) {
  const sessions = [];
  try {
    for (const [i, bytes] of models.entries()) {
      sessions.push(await ortNode.InferenceSession.create(bytes, {
        executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
        // Idle sessions' worker threads would otherwise spin between their runs and take cores from
        // the one running.
        extra: { session: { intra_op: { allow_spinning: '0' } } },
        ...(optimizedPath && i === models.length - 1 ? { optimizedModelFilePath: optimizedPath } : {}),
      }));
    }
    const outs = [];
    for (const s of sessions) {
      let out;
      for (let i = 0; i < 3; i++) out = await s.run(feeds);
      outs.push(out[s.outputNames[0]].data);
    }
    const ms = await interleavedMedians(sessions, feeds, RUNS);
    return sessions.map((_, i) => ({ ms: ms[i], out: outs[i] }));
  } finally {
    for (const s of sessions) await s.release();
  }
}

/** Mean cosine of the deploy model's output to float's and to fake-quant's, over four held-out inputs (1 thread). */
async function fidelity(models, c) {
  const sessions = [];
  for (const bytes of models) sessions.push(await ortNode.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1 }));
  let cosFloat = 0;
  let cosFake = 0;
  const n = 4;
  for (let i = 0; i < n; i++) {
    const [x, dims] = c.bench(i);
    const feeds = { [c.input]: new ortNode.Tensor('float32', x, dims) };
    const outs = [];
    for (const s of sessions) outs.push((await s.run(feeds))[s.outputNames[0]].data);
    cosFloat += k.cosine(outs[0], outs[2]) / n;
    cosFake += k.cosine(outs[1], outs[2]) / n;
  }
  for (const s of sessions) await s.release();
  return { cosFloat, cosFake };
}

/**
 * For the recognizer: of 64 held-out lines (8 timed-size batches), how many the deploy model reads as
 * exactly the string float reads (greedy CTC: argmax per step, repeats merged, blank 0 dropped).
 */
async function stringsMatchingFloat(models, c) {
  const sessions = [];
  for (const bytes of models) sessions.push(await ortNode.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1 }));
  const read = (out) => ctcStrings(out.data, out.dims);
  let same = 0;
  let total = 0;
  for (let b = 0; b < 8; b++) {
    const [x, d] = c.bench(b);
    const feeds = { [c.input]: new ortNode.Tensor('float32', x, d) };
    const [f, q] = await Promise.all(sessions.map(async (s) => read((await s.run(feeds))[s.outputNames[0]])));
    for (let i = 0; i < f.length; i++) if (f[i] === q[i]) same++;
    total += f.length;
  }
  for (const s of sessions) await s.release();
  return `${same} of ${total}`;
}

/** Quantized layers by the kernel onnxruntime chose: integer (QLinear*, QGemm, MatMulInteger*) or float behind a DequantizeLinear. */
function fusedCounts(path) {
  const nodes = decodeModel(new Uint8Array(readFileSync(path))).graph.node;
  const integer = nodes.filter((n) => /^(QLinear|QGemm|MatMulInteger|DynamicQuantize|ConvInteger)/.test(n.opType)).length;
  const dq = nodes.filter((n) => n.opType === 'DequantizeLinear').length;
  return { integer, dq };
}

const k = await getKernels();
const all = availableParallelism();
const rows = [];
for (const c of deployCases) {
  if (ONLY && !c.name.toLowerCase().includes(ONLY.toLowerCase())) continue;
  const model = new Uint8Array(readFileSync(c.file));
  // The default, and every layer int8 (skip_slow_layers off: the form before it) as the baseline, 1 thread.
  for (const skipSlowLayers of [true, false]) {
    const config = await createQuantConfig(model, { batchNum: 2, quantizeOutputs: QUANTIZE_OUTPUTS, biasCorrection: BIAS_CORRECTION, channelSplitting: CHANNEL_SPLITTING, weightRounding: WEIGHT_ROUNDING, skipSlowLayers });
    const t0 = performance.now();
    const r = await quantizeModel(model, config, [0, 1].map((i) => { const [x, d] = c.calib(i); return { [c.input]: new Tensor('float32', x, d) }; }));
    const ptq = (performance.now() - t0) / 1000;
    const [x, dims] = c.bench();
    const feeds = { [c.input]: new ortNode.Tensor('float32', x, dims) };
    const layers = r.layers.filter((l) => l.quantized).length;
    const fid = await fidelity([model, r.fakeQuantModel, r.deployModel], c);
    const strings = c.name.includes('rec') ? await stringsMatchingFloat([model, r.deployModel], c) : '-';
    for (const threads of skipSlowLayers ? [1, all] : [1]) {
      const opt = join(tmp, 'deploy.opt.onnx');
      const [f, q, d] = await timedTogether([model, r.fakeQuantModel, r.deployModel], feeds, threads, threads === 1 ? opt : undefined);
      const fused = threads === 1 ? fusedCounts(opt) : undefined;
      rows.push({
        model: `${c.name} ${dims.join('×')}`, layersIn: skipSlowLayers ? 'default' : 'every layer int8', threads, float: f.ms, fake: q.ms, deploy: d.ms,
        layers, fused, ...fid, strings, ptq,
      });
      const row = rows[rows.length - 1];
      console.error(`${row.model} (${row.layersIn}), ${threads} thread(s): float ${f.ms.toFixed(1)} ms, deploy ${d.ms.toFixed(1)} ms; deploy ${r.deployModel.length} bytes, ${r.channelSplits.length} layers split (+${r.channelSplits.reduce((n, x) => n + x.added, 0)} input channels)`);
    }
  }
}
rmSync(tmp, { recursive: true, force: true });

emitTable('deploy', {
  title: `onnxruntime-node ${ortNode.env.versions?.common ?? ''} CPU, graphOptimizationLevel 'all', median of ${RUNS} interleaved runs after 3 warm-up runs; ${all} cores`,
  header: ['model, input', 'layers', 'threads', 'float ms', 'fake-quant ms', 'deploy ms', 'fake-quant / float', 'deploy / float', 'integer kernels (of quantized layers)', 'DequantizeLinear left', 'cosine deploy-float (mean of 4 inputs)', 'cosine deploy-fake-quant', 'lines read as float reads them (deploy)'],
  align: 'llrrrrrrrrrrr',
  rows: rows.map((r) => [
    r.model, r.layersIn === 'default' ? 'default (skip_slow_layers)' : r.layersIn, r.threads, r.float.toFixed(1), r.fake.toFixed(1), r.deploy.toFixed(1), (r.fake / r.float).toFixed(2), (r.deploy / r.float).toFixed(2),
    r.fused ? `${r.fused.integer} (${r.layers})` : '-', r.fused ? r.fused.dq : '-', r.cosFloat.toFixed(5), r.cosFake.toFixed(5), r.threads === 1 ? r.strings : '-',
  ]),
});
