#!/usr/bin/env node
// Inference time (median ms) of float, fake-quant and deploy models on the wasm and WebGPU backends
// of onnxruntime-web in headless Chromium (WebGPU via SwiftShader on a machine without a GPU).
// Run after `npm run build`: node bench/backends.mjs
import { runPage } from '../test/browser/harness.mjs';
import { emitTable } from './report.mjs';

const { rows, adapter } = await runPage('/bench/backends.html', { timeoutMs: 600_000 });
emitTable('backends', {
  title: `onnxruntime-web in headless Chromium, median ms; WebGPU adapter: ${adapter}`,
  header: ['model', 'backend', 'float ms', 'fake-quant ms', 'deploy (QDQ) ms', 'fake-quant/float', 'deploy/float'],
  align: 'llrrrrr',
  rows: rows.map((r) => [r.model, r.backend, r.float.toFixed(2), r['fake-quant'].toFixed(2), r['deploy (QDQ)'].toFixed(2), (r['fake-quant'] / r.float).toFixed(2), (r['deploy (QDQ)'] / r.float).toFixed(2)]),
});
