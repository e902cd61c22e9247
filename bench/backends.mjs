#!/usr/bin/env node
// Inference time (median ms) of float, fake-quant and deploy models on the wasm and WebGPU backends
// of onnxruntime-web in headless Chromium (WebGPU via SwiftShader on a machine without a GPU).
// Run after `npm run build`: node bench/backends.mjs
import { runPage } from '../test/browser/harness.mjs';

const { rows, adapter } = await runPage('/bench/backends.html', { timeoutMs: 600_000 });
console.log(`WebGPU adapter: ${adapter}`);
console.log('| model | backend | float ms | fake-quant ms | deploy (QDQ) ms | fake-quant/float | deploy/float |');
console.log('|---|---|--:|--:|--:|--:|--:|');
for (const r of rows) {
  const f = r.float;
  console.log(`| ${r.model} | ${r.backend} | ${f.toFixed(2)} | ${r['fake-quant'].toFixed(2)} | ${r['deploy (QDQ)'].toFixed(2)} | ${(r['fake-quant'] / f).toFixed(2)} | ${(r['deploy (QDQ)'] / f).toFixed(2)} |`);
}
