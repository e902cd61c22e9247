#!/usr/bin/env node
// Writes demo/digits.npz for `autoquant demo`: MNIST digits (from the `mnist` package, a dev
// dependency) as uint8 (0-255 ink): `calibration` [64, 1, 28, 28] from the training samples the demo
// model saw, `images` [300, 1, 28, 28] held out, and their `labels` [300]. Deterministic: the same
// bytes every run (test/node/demo.test.ts checks the committed file against it).
// Run: node scripts/make-demo.mjs (after npm run build)
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeNpz } from '../dist/npy.js';

export function demoDigits() {
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src/digits');
  const digits = Array.from({ length: 10 }, (_, d) => JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8')).data);
  const take = (n, train) => {
    const x = new Uint8Array(n * 784);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const d = i % 10;
      const k = (train ? 0 : 800) + Math.floor(i / 10);
      for (let p = 0; p < 784; p++) x[i * 784 + p] = Math.round(digits[d][k * 784 + p] * 255);
      labels[i] = d;
    }
    return { x, labels };
  };
  const calibration = take(64, true);
  const held = take(300, false);
  return encodeNpz({
    calibration: { data: calibration.x, shape: [64, 1, 28, 28] },
    images: { data: held.x, shape: [300, 1, 28, 28] },
    labels: { data: held.labels, shape: [300] },
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = join(dirname(fileURLToPath(import.meta.url)), '../demo/digits.npz');
  writeFileSync(out, demoDigits());
  console.log(`wrote ${out}`);
}
