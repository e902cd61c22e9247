import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  AutoCalibrationEvaluator,
  ClassificationEvaluator,
  createQuantConfig,
  createSession,
  quantizeModel,
  EvaluationError,
  FidelityEvaluator,
  Tensor,
  type CalibrationSession,
  type InferenceSession,
} from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';
import { outlierInputs, outlierModel, WIDTH } from '../helpers/outlier-model.js';

const ROWS = 64;
const feedsOf = (xs: Float32Array[]) => xs.map((x) => ({ x: new Tensor('float32', x, [x.length / WIDTH, WIDTH]) }));

describe('accuracy-based automatic calibration on a model with one planted outlier layer', () => {
  for (const strategy of ['binary', 'sequential'] as const) {
    it(`'${strategy}' ends with exactly the fragile layer in float`, async () => {
      const { bytes, fragile, names } = outlierModel();
      const evaluator = new FidelityEvaluator(feedsOf(outlierInputs(2, ROWS, 11)), {
        calibrationInputs: feedsOf(outlierInputs(2, ROWS, 3)),
        batchNum: 2,
        mode: 'cosine',
        maxDrop: 0.002,
      });
      const events: string[] = [];
      const r = await accuracyBasedAutoCalibration(bytes, evaluator, {
        strategy,
        config: await createQuantConfig(bytes, { batchNum: 2 }),
        onProgress: (e) => events.push(e.phase),
        repairs: [], // AMCT's search: float is the only way out
      });
      expect(r.passed).toBe(true);
      expect(r.fallbackLayers).toEqual([fragile]);
      expect(r.quantizedLayers.sort()).toEqual(names.filter((n) => n !== fragile).sort());
      expect(r.ranking[0]!.layer).toBe(fragile);
      expect(r.ranking.map((x) => x.score)).toEqual([...r.ranking.map((x) => x.score)].sort((a, b) => a - b));
      // float, full int8, then the search.
      expect(r.history[0]!.fallbackLayers).toBeNull();
      expect(r.history[1]!.fallbackLayers).toEqual([]);
      expect(r.history[1]!.ok).toBe(false);
      const n = names.length;
      if (strategy === 'binary') expect(r.evaluations).toBeLessThanOrEqual(1 + 1 + Math.ceil(Math.log2(n)) + 1);
      else expect(r.evaluations).toBe(3);
      expect(r.fakeQuantModel).toBeInstanceOf(Uint8Array);
      expect(r.deployModel).toBeInstanceOf(Uint8Array);
      expect(events).toContain('ranking');
      console.log(`${strategy}: ${r.evaluations} evaluations, fell back ${r.fallbackLayers.join(', ')}, metric ${r.originalMetric} -> ${r.quantizedMetric}; ranking ${r.ranking.map((x) => `${x.layer}:${x.score.toFixed(5)}`).join(' ')}`);
    });
  }

  it("with fallback 'int16' the fragile layer keeps int8 weights and gets 16-bit activations", async () => {
    const { bytes, fragile } = outlierModel();
    const evaluator = new FidelityEvaluator(feedsOf(outlierInputs(2, ROWS, 11)), {
      calibrationInputs: feedsOf(outlierInputs(2, ROWS, 3)),
      batchNum: 2,
      mode: 'cosine',
      maxDrop: 0.002,
    });
    const r = await accuracyBasedAutoCalibration(bytes, evaluator, { fallback: 'int16' });
    console.log(`int16 fallback: ${r.message}; metric ${r.quantizedMetric}; ${r.evaluations} evaluations`);
    expect(r.passed).toBe(true);
    expect(r.fallbackTo).toBe('int16');
    expect(r.fallbackLayers).toEqual([fragile]);
    expect(r.quantizedLayers).toContain(fragile);
    expect((r.config[fragile] as { activation_quant_params: { num_bits: number } }).activation_quant_params.num_bits).toBe(16);
    expect(r.record.layers[fragile]!.num_bits_d).toBe(16);
    const { createSession } = await import('../../src/index.js');
    const { decodeModel, opsetVersion } = await import('../../src/subpaths/onnx.js');
    const deploy = decodeModel(r.deployModel!);
    expect(opsetVersion(deploy)).toBe(21);
    const s = await createSession(r.deployModel!);
    const out = await s.run(feedsOf(outlierInputs(1, 4, 99))[0]!);
    expect(Object.keys(out).length).toBe(1);
    await s.release();
  });

  it("ranks the same when a tiny memory budget makes AMCT's layer-output ranking run one layer group at a time", async () => {
    const { bytes } = outlierModel();
    const make = () => new FidelityEvaluator(feedsOf(outlierInputs(2, ROWS, 11)), {
      calibrationInputs: feedsOf(outlierInputs(2, ROWS, 3)),
      batchNum: 2,
      mode: 'cosine',
      maxDrop: 0.002,
    });
    const groups: number[] = [];
    const small = await accuracyBasedAutoCalibration(bytes, make(), {
      ranking: 'layer-output',
      memoryBudgetBytes: 1,
      onProgress: (e) => {
        const m = e.phase === 'ranking' ? /^group \d+\/(\d+)/.exec(e.message) : null;
        if (m) groups.push(Number(m[1]));
      },
    });
    const large = await accuracyBasedAutoCalibration(bytes, make(), { ranking: 'layer-output' });
    expect(Math.max(...groups)).toBe(8); // one activation per group
    expect(small.ranking).toEqual(large.ranking);
    expect(small.fallbackLayers).toEqual(large.fallbackLayers);
  });

  it('writes the six output files atomically and does not overwrite the config file it read', async () => {
    const { bytes, fragile } = outlierModel();
    const dir = mkdtempSync(join(tmpdir(), 'aq-auto-'));
    const { createQuantConfig } = await import('../../src/index.js');
    const configFile = join(dir, 'config.json');
    await createQuantConfig(bytes, { batchNum: 2, configFile });
    const before = readFileSync(configFile, 'utf8');
    const evaluator = new FidelityEvaluator(feedsOf(outlierInputs(2, ROWS, 11)), { batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
    const r = await accuracyBasedAutoCalibration(bytes, evaluator, { configFile, savePrefix: join(dir, 'out/model'), repairs: [] });
    expect(r.passed).toBe(true);
    expect(readFileSync(configFile, 'utf8')).toBe(before);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(
      ['model_auto_calibration.json', 'model_deploy_model.onnx', 'model_fake_quant_model.onnx', 'model_quant_config.json', 'model_record.json', 'model_report.html'],
    );
    const finalConfig = JSON.parse(readFileSync(join(dir, 'out/model_quant_config.json'), 'utf8'));
    expect(finalConfig[fragile].quant_enable).toBe(false);
    const report = JSON.parse(readFileSync(join(dir, 'out/model_auto_calibration.json'), 'utf8'));
    expect(report.ranking[0].layer).toBe(fragile);
    expect(report.history.length).toBe(r.evaluations);
  });
});

describe('accuracy-based automatic calibration within a budget', () => {
  const evaluator = () =>
    new FidelityEvaluator(feedsOf(outlierInputs(2, ROWS, 11)), { calibrationInputs: feedsOf(outlierInputs(2, ROWS, 3)), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });

  it('returns the best passing configuration found when maxEvaluations ends the search', async () => {
    const { bytes, fragile } = outlierModel();
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { maxEvaluations: 3 });
    expect(r.evaluations).toBe(3);
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toHaveLength(4); // bisection's first probe: half of the 8 layers
    expect(r.fallbackLayers).toContain(fragile);
    expect(r.message).toMatch(/budget ended the search early/);
  });

  it('produces no model when the budget leaves no search evaluation, and rejects budgets below 2', async () => {
    const { bytes } = outlierModel();
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { maxEvaluations: 2 });
    expect(r.passed).toBe(false);
    expect(r.evaluations).toBe(2);
    expect(r.message).toMatch(/budget/);
    expect(r.deployModel).toBeUndefined();
    await expect(accuracyBasedAutoCalibration(bytes, evaluator(), { maxEvaluations: 1 })).rejects.toThrow(/maxEvaluations must be an integer >= 2/);
    await expect(accuracyBasedAutoCalibration(bytes, evaluator(), { maxSeconds: 0 })).rejects.toThrow(/maxSeconds must be a number > 0/);
  });
});

describe('accuracy-based automatic calibration when nothing passes or the evaluator fails', () => {
  it('returns passed: false with a message and writes no model when every layer would have to fall back', async () => {
    const { bytes, names } = outlierModel(4, 1);
    const dir = mkdtempSync(join(tmpdir(), 'aq-auto-'));
    // Zero tolerance: any quantization at all changes the outputs.
    const evaluator = new FidelityEvaluator(feedsOf(outlierInputs(1, ROWS, 11)), { mode: 'cosine', maxDrop: 0 });
    const r = await accuracyBasedAutoCalibration(bytes, evaluator, { savePrefix: join(dir, 'm') });
    expect(r.passed).toBe(false);
    expect(r.message).toMatch(/every layer would have to fall back/);
    expect(r.fakeQuantModel).toBeUndefined();
    expect(r.deployModel).toBeUndefined();
    expect(r.fallbackLayers.sort()).toEqual([...names].sort());
    expect(existsSync(join(dir, 'm_fake_quant_model.onnx'))).toBe(false);
    expect(existsSync(join(dir, 'm_deploy_model.onnx'))).toBe(false);
    expect(existsSync(join(dir, 'm_auto_calibration.json'))).toBe(true);
  });

  it('surfaces an evaluator that throws with context and writes no file', async () => {
    const { bytes } = outlierModel(4, 1);
    const dir = mkdtempSync(join(tmpdir(), 'aq-auto-'));
    class Broken extends AutoCalibrationEvaluator {
      calls = 0;
      async calibration(session: CalibrationSession) {
        await session.run(feedsOf(outlierInputs(1, 8))[0]!);
      }
      async evaluate(_s: InferenceSession): Promise<number> {
        if (++this.calls === 2) throw new Error('dataset went away');
        return 1;
      }
    }
    const err = await accuracyBasedAutoCalibration(bytes, new Broken({ maxDrop: 0.1 }), { savePrefix: join(dir, 'm') }).catch((e) => e);
    expect(err).toBeInstanceOf(EvaluationError);
    expect(err.message).toMatch(/evaluator\.evaluate failed on the model with 0 layer\(s\) in float: dataset went away/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses an evaluator whose limit the float model itself cannot meet', async () => {
    const { bytes } = outlierModel(4, 1);
    class Never extends AutoCalibrationEvaluator {
      async calibration(session: CalibrationSession) {
        await session.run(feedsOf(outlierInputs(1, 8))[0]!);
      }
      async evaluate(): Promise<number> {
        return 1;
      }
      override metricEval(): [boolean, number] {
        return [false, 1];
      }
    }
    await expect(accuracyBasedAutoCalibration(bytes, new Never())).rejects.toThrow(/metricEval\(original, original\) is not ok/);
  });
});

describe('accuracy-based automatic calibration on the MNIST fixture CNN', () => {
  it('passes on the first quantized evaluation with a classification evaluator', async () => {
    const model = new Uint8Array(readFileSync('test/fixtures/mnist_cnn.onnx'));
    const data = [0, 1, 2, 3].map((b) => {
      const { x, labels } = heldOutBatch(b * 250, 250);
      return { feeds: { input: new Tensor('float32', x, [250, 1, 28, 28]) }, labels };
    });
    const calibrationInputs = [0, 1].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
    const evaluator = new ClassificationEvaluator(data, { calibrationInputs, batchNum: 2, maxDrop: 0.01 });
    const r = await accuracyBasedAutoCalibration(model, evaluator);
    console.log(`fixture CNN: float ${r.originalMetric}, int8 ${r.quantizedMetric}, ${r.evaluations} evaluations, timings ${JSON.stringify(r.timings)}`);
    expect(r.passed).toBe(true);
    expect(r.evaluations).toBe(2);
    expect(r.fallbackLayers).toEqual([]);
    expect(r.ranking).toEqual([]);
    // Float by default (skip_slow_layers): the first Conv (9-term dot products), the depthwise Conv, the
    // AveragePool, and conv2, whose neighbours are all float, so that it alone would pay its Q/DQ.
    expect(r.quantizedLayers).toEqual(['/fc1/Gemm', '/fc2/Gemm']);
  });
});

describe('accuracy-based automatic calibration gives up calibrated output quantizations before any layer', () => {
  it('with a limit between the fully quantized model with and without them: no fallback, one extra evaluation', async () => {
    // x → Conv a → Mul by a per-channel gain → Relu → Conv b: a's output spans ±1e4 in one channel
    // and ±1e-2 in the others, which the gain then evens out, so one 8-bit scale for a's output
    // erases most channels while its input and weights quantize well.
    const rng = new Random(77);
    const w = new Float32Array(8 * 3 * 9).map(() => rng.normal() * 1e-2);
    for (let i = 0; i < 27; i++) w[i] = rng.normal() * 1e4;
    const gain = Float32Array.from({ length: 8 }, (_, c) => (c === 0 ? 1e-6 : 1));
    const model = encodeModel(buildModel(
      new GraphBuilder()
        .input('x', DataType.FLOAT, [4, 3, 8, 8])
        .initializer('Wa', [8, 3, 3, 3], w)
        .node('Conv', ['x', 'Wa'], ['a'], { pads: [1, 1, 1, 1] }, { name: 'a' })
        .initializer('gain', [1, 8, 1, 1], gain)
        .node('Mul', ['a', 'gain'], ['g'])
        .node('Relu', ['g'], ['r'])
        .initializer('Wb', [4, 8, 1, 1], rng.normals(32, 0.5))
        .node('Conv', ['r', 'Wb'], ['y'], {}, { name: 'b' })
        .output('y', DataType.FLOAT),
      { opset: 13 },
    ));
    const batch = () => ({ x: new Tensor('float32', rng.normals(4 * 3 * 64), [4, 3, 8, 8]) });
    const inputs = [batch(), batch()];
    const calibrationInputs = [batch(), batch()];
    const evaluatorWith = (maxDrop: number) => new FidelityEvaluator(inputs, { calibrationInputs, batchNum: 2, mode: 'cosine', maxDrop });
    // Without fusion, which would fold the constant Mul into the Conv, and without skip_slow_layers,
    // which would leave both small Convs float.
    const config = await createQuantConfig(model, { batchNum: 2, doFusion: false, skipSlowLayers: false });
    const drop = async (outputs: boolean) => {
      const ev = evaluatorWith(1);
      const reference = await createSession(model); // the first model evaluated is the reference
      await ev.evaluate(reference);
      await reference.release();
      const first = await quantizeModel(model, config, (s) => ev.calibration(s));
      const record = structuredClone(first.record);
      record.layers.a!.output_quant = outputs;
      const r = await quantizeModel(model, config, [], { record });
      const s = await createSession(r.fakeQuantModel);
      const metric = await ev.evaluate(s);
      await s.release();
      return 1 - metric;
    };
    const on = await drop(true);
    const off = await drop(false);
    console.log(`fidelity drop with a's output quantized ${on}, without ${off}`);
    expect(on).toBeGreaterThan(off * 2); // the premise of this test
    const r = await accuracyBasedAutoCalibration(model, evaluatorWith((on + off) / 2), { config });
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([]);
    expect(r.evaluations).toBe(3); // float, all int8 with a's output quantized (fails), without (passes)
    expect(r.history[1]!.ok).toBe(false);
    expect(r.history[2]!.ok).toBe(true);
    expect(r.message).toMatch(/once the quantized outputs of 1 layers went back to float/);
    expect(r.record.layers.a!.output_quant).toBe(false);
    // At a limit under half the loss, the model without output quantizations is not evaluated at once
    // but as the bisection's count 0: found all the same, here as its first probe.
    const said: string[] = [];
    const tight = await accuracyBasedAutoCalibration(model, evaluatorWith(Math.min(off * 1.01, on / 2.5)), { config, onProgress: (e) => said.push(e.message) });
    expect(said.some((m) => /evaluated only if the search needs it/.test(m))).toBe(true);
    expect(off * 1.01).toBeLessThan(on / 2.5); // the premise
    expect(tight.passed).toBe(true);
    expect(tight.fallbackLayers).toEqual([]);
    expect(tight.message).toMatch(/once the quantized outputs of 1 layers went back to float/);
    expect(tight.history.map((h) => h.fallbackLayers)).toEqual([null, [], []]);
  });
});
