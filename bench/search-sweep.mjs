#!/usr/bin/env node
// The automatic search over a sweep of limits (after `npm run build`): evaluations, layers left in
// float and repaired per case and in total, on the PaddleOCR classifier and the PP-OCRv4 recognizer
// with the label-free cosine evaluators of bench/auto.mjs, on onnxruntime-node. To compare search
// strategies, run it on two builds (a git worktree, as bench/auto.mjs --baseline says, with
// --package DIR/dist/index.js); docs/experiments.md has such a comparison.
// Run: node bench/search-sweep.mjs [--package path/to/dist/index.js]
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ocrSearch } from './inputs.mjs';
import { emitTable } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--package');
const pkg = await import(pathToFileURL(i > 0 ? process.argv[i + 1] : join(root, 'dist/index.js')).href);

const cases = [
  ...[0.0001, 0.0002, 0.0003, 0.0005].map((maxDrop) => ({ name: 'PaddleOCR classifier', maxDrop, ...ocrSearch.classifier })),
  ...[0.0005, 0.001, 0.002].map((maxDrop) => ({ name: 'PP-OCRv4 recognizer', maxDrop, ...ocrSearch.recognizer })),
];
const rows = [];
const sum = { evaluations: 0, float: 0, repaired: 0, seconds: 0 };
for (const c of cases) {
  const start = performance.now();
  const r = await pkg.accuracyBasedAutoCalibration(c.model(), c.evaluator(pkg, c.maxDrop), { engine: 'node' });
  const seconds = (performance.now() - start) / 1000;
  const row = { evaluations: r.evaluations, float: r.fallbackLayers.length, repaired: r.repairedLayers.length, seconds };
  for (const k of Object.keys(sum)) sum[k] += row[k];
  rows.push([c.name, c.maxDrop, r.passed, `${r.quantizedLayers.length} / ${r.quantizedLayers.length + r.fallbackLayers.length}`, row.float, row.repaired, row.evaluations, seconds.toFixed(1)]);
}
rows.push(['all seven', '-', '-', '-', sum.float, sum.repaired, sum.evaluations, sum.seconds.toFixed(1)]);
emitTable('search-sweep', {
  title: 'The automatic search over a sweep of cosine limits (defaults, onnxruntime-node)',
  header: ['model', 'maxDrop', 'passed', 'layers quantized / total', 'in float', 'repaired', 'evaluations', 'total s'],
  align: 'lrlrrrrr',
  rows,
});
