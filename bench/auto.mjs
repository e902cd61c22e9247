#!/usr/bin/env node
// Accuracy-based automatic calibration end to end (after `npm run build`): evaluations used,
// seconds per phase and peak memory, on
//   - the MNIST CNN fixture with a top-1 accuracy evaluator on 1000 held-out digits,
//   - the planted-outlier MLP fixture (one fragile layer) with a label-free fidelity evaluator,
//   - the PaddleOCR text-direction classifier (real model) with a label-free evaluator on text lines
//     drawn from MNIST strokes, once with a limit it meets and once with one that forces fallbacks,
//   - the PP-OCRv4 recognizer at a 0.001 cosine limit (onnxruntime-node only: minutes on wasm).
// Each runs with onnxruntime-web on 1 thread, on all cores, and with onnxruntime-node.
// With `--baseline DIR` (a built checkout of an earlier release), every case also runs on DIR's package,
// in the same run, and each row says how its evaluations and total time compare:
//   git worktree add /tmp/aq-base <commit> && ln -s $PWD/node_modules /tmp/aq-base/ && (cd /tmp/aq-base && npm run build)
//   node bench/auto.mjs --baseline /tmp/aq-base
// Run: node bench/auto.mjs [--baseline DIR]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mnistBatch, ocrSearch } from './inputs.mjs';
import { emitTable } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function watchMemory() {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  return () => {
    clearInterval(timer);
    return Math.max(peak, process.memoryUsage().rss);
  };
}

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
// The package under test: this checkout's, or the one a child process is told to load.
const PACKAGE = arg('--package') ?? join(root, 'dist/index.js');
const pkg = await import(pathToFileURL(PACKAGE).href);
const { accuracyBasedAutoCalibration, ClassificationEvaluator, FidelityEvaluator, getOrt, Tensor } = pkg;

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
    model: ocrSearch.classifier.model,
    evaluator: () => ocrSearch.classifier.evaluator(pkg, maxDrop),
  })),
  {
    name: 'PP-OCRv4 recognizer (fidelity cosine, maxDrop 0.001)',
    engines: ['node'],
    model: ocrSearch.recognizer.model,
    evaluator: () => ocrSearch.recognizer.evaluator(pkg, 0.001),
  },
];

const ENGINE = arg('--engine');
const BASELINE = arg('--baseline');

if (!ENGINE) {
  // One child process per engine setting: onnxruntime-web fixes its thread count when it starts.
  const settings = [
    { label: 'web, 1 thread', args: ['--engine', 'web', '--threads', '1'] },
    { label: `web, ${availableParallelism()} threads`, args: ['--engine', 'web', '--threads', String(availableParallelism())] },
    { label: 'node (onnxruntime-node)', args: ['--engine', 'node'] },
  ];
  const packages = [{ label: 'this', path: PACKAGE }];
  if (BASELINE) {
    const commit = spawnSync('git', ['-C', BASELINE, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    packages.push({ label: `baseline ${commit}`, path: join(BASELINE, 'dist/index.js') });
  }
  const rows = [];
  for (const s of settings) {
    for (const pkg of packages) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...s.args, '--package', pkg.path], { encoding: 'utf8', maxBuffer: 1 << 26 });
      if (r.status !== 0) throw new Error(`${s.label}, ${pkg.label}: ${r.stderr}`);
      for (const line of r.stdout.trim().split('\n').filter(Boolean)) rows.push({ engine: s.label, pkg: pkg.label, ...JSON.parse(line) });
    }
  }
  emitTable('auto', {
    title: 'Automatic calibration end to end, one child process per engine setting; times in seconds',
    header: ['model', 'engine', 'package', 'passed', 'layers quantized / total', 'fell back', 'repaired', 'evaluations', 'float eval s', 'calibration s', 'ranking s', 'search s', 'repair s', 'total s', 'total / first engine', 'evaluations, total s / baseline', 'peak RSS MiB'],
    align: 'llllrllrrrrrrrrrr',
    rows: rows.map((r) => {
      const first = rows.find((b) => b.name === r.name && b.pkg === r.pkg);
      const base = rows.find((b) => b.name === r.name && b.engine === r.engine && b.pkg !== 'this');
      const t = r.timings;
      const vsBase = r.pkg === 'this' && base ? `${(r.evaluations / base.evaluations).toFixed(2)}, ${(t.total / base.timings.total).toFixed(2)}` : '-';
      return [r.name, r.engine, r.pkg, r.passed, `${r.quantized} / ${r.total}`, r.fell, r.repaired, r.evaluations, ...[t.floatEvaluation, t.calibration, t.ranking, t.search, t.repair, t.total].map((v) => v.toFixed(2)), (t.total / first.timings.total).toFixed(2), vsBase, r.peakMiB.toFixed(0)];
    }),
  });
} else {
  if (ENGINE === 'web') getOrt().env.wasm.numThreads = Number(arg('--threads') ?? 1);
  for (const c of cases) {
    if (c.engines && !c.engines.includes(ENGINE)) continue;
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
