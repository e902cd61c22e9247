#!/usr/bin/env node
// Which deploy form onnxruntime-web's wasm backend runs fastest (the evidence for deployTarget 'wasm'):
// float, int8 QDQ and the weight-only forms, timed interleaved in headless Chromium (cross-origin
// isolated, so onnxruntime-web uses its threads as a real deployment would), with sizes and cosine to float.
// Run after `npm run build`: node bench/wasm-target.mjs
import { runPage } from '../test/browser/harness.mjs';
import { emitTable } from './report.mjs';

const { rows, threads, isolated } = await runPage('/bench/backends.html?script=wasm-target.js', { timeoutMs: 900_000 });
emitTable('wasm-target', {
  title: `onnxruntime-web wasm in headless Chromium (${isolated ? 'cross-origin isolated' : 'not isolated'}, ${threads} hardware threads), median of 21 interleaved runs`,
  header: ['model', 'deploy form', 'ms', 'form / float', 'file kB', 'cosine to float'],
  align: 'llrrrr',
  rows: rows.map((r) => [r.model, r.form, r.ms.toFixed(2), r.ratio.toFixed(2), r.kB.toFixed(1), r.cosine.toFixed(5)]),
});
