/**
 * Repairs before float: the layers the search would put in float get cheaper fixes first, each
 * judged by the user's evaluator, and the result says which layer got which.
 */
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  autoCalibrationReport,
  ClassificationEvaluator,
  createQuantConfig,
  Tensor,
} from '../../src/index.js';
import { decodeModel, opsetVersion } from '../../src/subpaths/onnx.js';
import { MLP_WIDTH, plantedMlp, plantedMlpData } from '../helpers/planted-mlp.js';
import { outlierEvaluator, outlierModel } from '../helpers/outlier-model.js';

const evaluator = () => outlierEvaluator();

describe('repairs before float on the model with one planted outlier layer', () => {
  it('keeps the fragile layer quantized with 16-bit activations instead of float, and says so', async () => {
    const { bytes, fragile, names } = outlierModel();
    const phases: string[] = [];
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { config: await createQuantConfig(bytes, { batchNum: 2 }), onProgress: (e) => phases.push(e.phase) });
    console.log(`repairs: ${r.message}; ${r.evaluations} evaluations; ${JSON.stringify(r.repairedLayers)}`);
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([]);
    expect(r.quantizedLayers.sort()).toEqual([...names].sort());
    expect(r.repairedLayers).toEqual([{ layer: fragile, repair: 'int16', detail: '16-bit activations' }]);
    expect(r.layers.find((l) => l.name === fragile)).toMatchObject({ quantized: true, repair: '16-bit activations' });
    expect((r.config[fragile] as { activation_quant_params: { num_bits: number } }).activation_quant_params.num_bits).toBe(16);
    expect(r.record.layers[fragile]!.num_bits_d).toBe(16);
    expect(opsetVersion(decodeModel(r.deployModel!))).toBe(21);
    expect(phases).toContain('repair');
    // The float search's evaluations, then one per repair tried on this single layer.
    const search = r.history.filter((h) => !h.repaired).length;
    expect(search).toBeLessThanOrEqual(1 + 1 + Math.ceil(Math.log2(names.length)) + 1);
    expect(r.history.filter((h) => h.repaired).length).toBeLessThanOrEqual(2);
    expect(r.history[r.history.length - 1]!.ok).toBe(true);
    const report = autoCalibrationReport(r) as { repaired_layers: unknown[]; history: { repaired?: unknown[] }[] };
    expect(report.repaired_layers).toEqual(r.repairedLayers);
    expect(report.history.some((h) => h.repaired)).toBe(true);
  });

  it('tries only the repairs asked for: with the observer alone the fragile layer stays in float', async () => {
    const { bytes, fragile } = outlierModel();
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { config: await createQuantConfig(bytes, { batchNum: 2 }), repairs: ['observer'] });
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([fragile]);
    expect(r.repairedLayers).toEqual([]);
    expect(r.quantizedMetric).toBe(r.history.find((h) => h.ok && h.fallbackLayers?.length === 1 && !h.repaired)!.metric);
  });

  it('stops repairing when maxEvaluations is reached and returns the search result', async () => {
    const { bytes, fragile } = outlierModel();
    const plain = await accuracyBasedAutoCalibration(bytes, evaluator(), { repairs: [] });
    const r = await accuracyBasedAutoCalibration(bytes, evaluator(), { maxEvaluations: plain.evaluations });
    expect(r.evaluations).toBe(plain.evaluations);
    expect(r.fallbackLayers).toEqual([fragile]);
    expect(r.repairedLayers).toEqual([]);
  });
});

describe('the per-channel weights repair on the planted-outlier classifier in AMCT form', () => {
  it('repairs the layers whose weights need it and leaves the one whose input needs more in float', async () => {
    const bytes = plantedMlp();
    const batch = (n: number, seed: number) => {
      const d = plantedMlpData(n, seed);
      return { feeds: { x: new Tensor('float32', d.x, [n, MLP_WIDTH]) }, labels: d.labels };
    };
    const ev = () => new ClassificationEvaluator([batch(1000, 1), batch(1000, 2)], { calibrationInputs: [batch(256, 9).feeds, batch(256, 10).feeds], batchNum: 2, maxDrop: 0.01 });
    const config = await createQuantConfig(bytes, { batchNum: 2, channelWise: false, crossLayerEqualization: false });
    const amct = await accuracyBasedAutoCalibration(bytes, ev(), { config, repairs: [] });
    const r = await accuracyBasedAutoCalibration(bytes, ev(), { config, repairs: ['weights'] });
    console.log(`planted MLP, AMCT form: ${amct.fallbackLayers} in float; with the weights repair: ${r.message}`);
    expect(amct.fallbackLayers.length).toBeGreaterThan(1);
    expect(r.fallbackLayers).toEqual(['fc3']);
    expect(r.repairedLayers.map((x) => x.repair)).toEqual(r.repairedLayers.map(() => 'weights'));
    expect(r.repairedLayers.map((x) => x.layer)).toContain('fc2');
    for (const x of r.repairedLayers) expect((r.config[x.layer] as { weight_quant_params: { channel_wise: boolean } }).weight_quant_params.channel_wise).toBe(true);
    expect(r.originalMetric - r.quantizedMetric).toBeLessThanOrEqual(0.01);
  });
});
