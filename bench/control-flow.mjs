#!/usr/bin/env node
// Layers inside If branches, on Silero VAD v5 (npm @ricky0123/vad-web; every Conv and LSTM sits in the
// branches of a sample-rate If). Run as an application runs it: chunk after chunk, the state carried,
// on synthetic voiced speech (test/helpers/speech.mjs; no speech corpus ships on npm), 80 held-out chunks
// per rate. Per configuration: how many of the 16 Conv/LSTM nodes are quantized (int8 weights), the deploy file, the mean and
// largest absolute difference of the speech probability to float (onnxruntime-node), deploy against
// fake-quant, and for the automatic search its evaluations (the metric: the same carried-state mean
// absolute difference on other chunks, maxDrop 0.02) and seconds. Run: node bench/control-flow.mjs
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as ortNode from 'onnxruntime-node';
import { accuracyBasedAutoCalibration, createQuantConfig, quantizeModel, Tensor } from '../dist/index.js';
import { voicedSpeech } from '../test/helpers/speech.mjs';
import { emitTable } from './report.mjs';

const VAD = new Uint8Array(readFileSync(createRequire(import.meta.url).resolve('@ricky0123/vad-web/dist/silero_vad_v5.onnx')));
const RATES = [16000, 8000];

function chunks(T, rate, seed, n) {
  const win = rate === 16000 ? 512 : 256;
  const audio = voicedSpeech(win * n, rate, seed);
  return Array.from({ length: n }, (_, c) => ({
    input: new T('float32', audio.slice(c * win, (c + 1) * win), [1, win]),
    state: new T('float32', new Float32Array(256), [2, 1, 128]),
    sr: new T('int64', BigInt64Array.from([BigInt(rate)]), []),
  }));
}
async function probabilities(session, feeds) {
  const out = [];
  let state = feeds[0].state;
  for (const f of feeds) {
    const o = await session.run({ ...f, state });
    out.push(o.output.data[0]);
    state = o.stateN;
  }
  return out;
}
const mean = (a, b) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
const most = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

// 40 consecutive chunks per rate: every fifth of 20 missed the loudest chunks, and the clipped ranges tripled the error.
const calibrationAt = (rates) => rates.flatMap((rate) => chunks(Tensor, rate, rate === 16000 ? 3 : 4, 40));
const held = Object.fromEntries(RATES.map((rate, i) => [rate, chunks(ortNode.Tensor, rate, 11 + i, 80)]));
const float = await ortNode.InferenceSession.create(VAD);
const floatProbs = Object.fromEntries(await Promise.all(RATES.map(async (r) => [r, await probabilities(float, held[r])])));

const rows = [];
async function row(name, t0, result, evaluations) {
  const seconds = (performance.now() - t0) / 1000;
  const heavy = result.layers.filter((l) => l.opType === 'Conv' || l.opType === 'LSTM');
  const [deploy, fake] = await Promise.all([result.deployModel, result.fakeQuantModel].map((m) => ortNode.InferenceSession.create(m)));
  const cells = [];
  let parity = 0;
  let largest = 0;
  for (const rate of RATES) {
    const d = await probabilities(deploy, held[rate]);
    const f = await probabilities(fake, held[rate]);
    cells.push(mean(d, floatProbs[rate]).toFixed(4));
    largest = Math.max(largest, most(d, floatProbs[rate]));
    parity = Math.max(parity, most(d, f));
  }
  rows.push([name, `${heavy.filter((l) => l.quantized).length} / ${heavy.length}`, (result.deployModel.length / 1e3).toFixed(0), ...cells, largest.toFixed(3), parity.toExponential(1), evaluations ?? '-', seconds.toFixed(1)]);
  console.error(rows.at(-1).join(' | '));
}

for (const [name, rates, activationBits] of [['PTQ, 16 kHz calibration', [16000], 8], ['PTQ, both rates', RATES, 8], ['PTQ, both rates, 16-bit activations', RATES, 16]]) {
  const t0 = performance.now();
  const calib = calibrationAt(rates);
  const r = await quantizeModel(VAD, await createQuantConfig(VAD, { batchNum: calib.length, activationBits }), calib);
  await row(name, t0, r);
}

const evalFeeds = RATES.map((rate, i) => chunks(Tensor, rate, 21 + i, 40));
for (const [maxDrop, fallback] of [[0.02, 'float'], [0.02, 'int16'], [0.01, 'float']]) {
  let reference;
  const evaluator = {
    maxDrop,
    async calibration(session) { for (const f of calibrationAt(RATES)) await session.run(f); },
    async evaluate(session) {
      const p = [...(await probabilities(session, evalFeeds[0])), ...(await probabilities(session, evalFeeds[1]))];
      reference ??= p;
      return -mean(p, reference);
    },
  };
  const name = `auto, maxDrop ${maxDrop}, fallback ${fallback}`;
  const t0 = performance.now();
  const r = await accuracyBasedAutoCalibration(VAD, evaluator, { config: await createQuantConfig(VAD, { batchNum: 2 * 40 }), fallback });
  if (!r.deployModel) {
    rows.push([name, 'no model', '-', '-', '-', '-', '-', r.evaluations, ((performance.now() - t0) / 1000).toFixed(1)]);
    continue;
  }
  const int16 = r.repairedLayers.filter((x) => x.repair === 'int16').length + (fallback === 'int16' ? r.fallbackLayers.length : 0);
  await row(`${name} (${int16} at 16-bit activations)`, t0, r, r.evaluations);
}

emitTable('control-flow', {
  title: `Silero VAD v5 (layers inside If branches): speech probability over 80 held-out chunks per rate with the state carried, onnxruntime-node ${ortNode.env.versions?.common ?? ''} CPU; float file ${(VAD.length / 1e3).toFixed(0)} kB`,
  header: ['configuration', 'Conv + LSTM quantized', 'deploy kB', 'mean |Δp| 16 kHz', 'mean |Δp| 8 kHz', 'max |Δp|', 'deploy vs fake-quant max |Δp|', 'evaluations', 'seconds'],
  align: 'lrrrrrrrr',
  rows,
});
