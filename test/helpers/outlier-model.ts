/**
 * A model of our own in which exactly one layer is fragile under int8: a chain of MatMul layers
 * where the activation entering `fragile` has one channel ~1000× larger than the others (planted
 * by a Mul that is not quantized). A single int8 scale for that activation wipes out the small
 * channels, which carry the signal (int16 keeps them); every other layer quantizes harmlessly.
 */
import { encodeModel } from '../../src/subpaths/onnx.js';
import { FidelityEvaluator, Tensor } from '../../src/index.js';
import { buildModel, GraphBuilder } from './graph-builder.js';
import { Random } from './random.js';

export const WIDTH = 16;

export function outlierModel(layers = 8, fragileIndex = 3, seed = 1): { bytes: Uint8Array; fragile: string; names: string[] } {
  const rng = new Random(seed);
  const g = new GraphBuilder('outlier').input('x', 1, ['N', WIDTH]);
  const names: string[] = [];
  let prev = 'x';
  for (let i = 0; i < layers; i++) {
    const w = new Float32Array(WIDTH * WIDTH);
    for (let r = 0; r < WIDTH; r++) for (let c = 0; c < WIDTH; c++) w[r * WIDTH + c] = (r === c ? 1 : 0) + 0.15 * rng.normal();
    let input = prev;
    if (i === fragileIndex) {
      // Plant the outlier channel and give it a zero weight row: it carries no signal but sets the
      // activation's int8 range, so the small channels that do carry the signal round to zero.
      const s = new Float32Array(WIDTH).fill(1);
      s[0] = 1000;
      g.initializer(`outlier_scale`, [WIDTH], s).node('Mul', [prev, 'outlier_scale'], ['planted'], {}, { name: 'plant_outlier' });
      for (let c = 0; c < WIDTH; c++) w[c] = 0;
      input = 'planted';
    }
    const name = `layer${i}`;
    names.push(name);
    g.initializer(`w${i}`, [WIDTH, WIDTH], w).node('MatMul', [input, `w${i}`], [`h${i}`], {}, { name });
    g.node('Tanh', [`h${i}`], [`a${i}`], {}, { name: `act${i}` });
    prev = `a${i}`;
  }
  g.output(prev, 1);
  return { bytes: encodeModel(buildModel(g)), fragile: names[fragileIndex]!, names };
}

/** Batches of inputs in [-1, 1]. */
export function outlierInputs(batches: number, rows: number, seed = 7): Float32Array[] {
  const rng = new Random(seed);
  return Array.from({ length: batches }, () => Float32Array.from({ length: rows * WIDTH }, () => rng.uniform(-1, 1)));
}

/** `xs` as feeds of the model's input `x`. */
export const outlierFeeds = (xs: Float32Array[]) => xs.map((x) => ({ x: new Tensor('float32', x, [x.length / WIDTH, WIDTH]) }));

/** The label-free evaluator the tests judge this model with: cosine to float within 0.002, 2 calibration batches. */
export const outlierEvaluator = (rows = 64) =>
  new FidelityEvaluator(outlierFeeds(outlierInputs(2, rows, 11)), { calibrationInputs: outlierFeeds(outlierInputs(2, rows, 3)), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
