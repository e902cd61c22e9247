/**
 * Activation-aware weight scaling (AWQ) for the weight-only targets' blocks (decide/weight-scaling.ts),
 * on real sessions: the ViT fixture with planted outlier channels loses most of its 4-bit fidelity
 * without it, keeps it with it; the trained ViT has no such channels and is left as it was; the
 * record's factors rebuild the same model without data, and bad factors are refused by name.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accuracyBasedAutoCalibration, createQuantConfig, createSession, FidelityEvaluator, QuantConfigError, quantizeModel, Tensor } from '../../src/index.js';
import { referenceKernels } from '../../src/kernels/reference.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';

const ROOT = join(import.meta.dirname, '../..');
const fixture = (f: string) => new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/transformers', f)));
const calib = [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
const N = 1000;
const held = heldOutBatch(0, N);

async function logits(bytes: Uint8Array): Promise<Float32Array> {
  const s = await createSession(bytes);
  try {
    return (await s.run({ input: new Tensor('float32', held.x, [N, 1, 28, 28]) }))[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}
const accuracy = (o: Float32Array) =>
  held.labels.filter((l, i) => {
    const row = o.subarray(i * 10, i * 10 + 10);
    return row.indexOf(Math.max(...row)) === l;
  }).length / N;
const scaledLayers = (r: { record: { weights?: Record<string, { equalize_w?: number[] }> } }) =>
  Object.entries(r.record.weights ?? {}).filter(([, w]) => w.equalize_w).map(([n]) => n);

describe('activation-aware weight scaling under a weight-only target', () => {
  it('the ViT with planted outlier channels at 4 bits: cosine to float above 0.99 with it, below 0.97 without, accuracy within 0.01 of float', async () => {
    const model = fixture('vit_tiny_outliers.onnx');
    const float = await logits(model);
    const off = await quantizeModel(model, await createQuantConfig(model, { deployTarget: 'webgpu', weightBits: 4, activationEqualization: false }), calib);
    const on = await quantizeModel(model, await createQuantConfig(model, { deployTarget: 'webgpu', weightBits: 4 }), calib);
    const [cosOff, cosOn] = [referenceKernels.cosine(await logits(off.deployModel), float), referenceKernels.cosine(await logits(on.deployModel), float)];
    console.log(`outlier ViT, 4-bit blocks: cosine to float ${cosOff.toFixed(5)} without scaling, ${cosOn.toFixed(5)} with; ${scaledLayers(on).length} layers scaled`);
    expect(cosOff).toBeLessThan(0.97); // the premise: the planted channels cost 4-bit blocks dearly
    expect(cosOn).toBeGreaterThan(0.99);
    expect(Math.abs(accuracy(await logits(on.deployModel)) - accuracy(float))).toBeLessThanOrEqual(0.01);
    // Q, K and V read one LayerNorm, fc1 another: each block's four readers, two blocks.
    const scaled = scaledLayers(on);
    expect(scaled).toHaveLength(8);
    for (const n of scaled) {
      const f = on.record.weights![n]!.equalize_w!;
      expect(f.every((v) => v > 0 && 2 ** Math.round(Math.log2(v)) === v)).toBe(true);
      expect(f.some((v) => v !== 1)).toBe(true);
    }
    expect(on.parity!.cosine).toBeGreaterThan(0.9999);
    // The record's factors rebuild the same model with no data.
    const again = await quantizeModel(model, await createQuantConfig(model, { deployTarget: 'webgpu', weightBits: 4 }), [], { record: on.record });
    expect(Buffer.from(again.deployModel).equals(Buffer.from(on.deployModel))).toBe(true);
  }, 120_000);

  it('leaves the trained ViT, which has no outlier channels, as it was', async () => {
    const model = fixture('vit_tiny.onnx');
    const off = await quantizeModel(model, await createQuantConfig(model, { deployTarget: 'wasm', weightBits: 4, activationEqualization: false }), calib);
    const on = await quantizeModel(model, await createQuantConfig(model, { deployTarget: 'wasm', weightBits: 4 }), calib);
    expect(scaledLayers(on)).toEqual([]);
    expect(Buffer.from(on.deployModel).equals(Buffer.from(off.deployModel))).toBe(true);
  }, 120_000);

  it('the automatic search with weightBits [4, 8] on the outlier ViT keeps the limit, and its config and record rebuild its model without data', async () => {
    const model = fixture('vit_tiny_outliers.onnx');
    const heldOut = [0, 1].map((b) => ({ input: new Tensor('float32', heldOutBatch(b * 100, 100).x, [100, 1, 28, 28]) }));
    const evaluator = new FidelityEvaluator(heldOut, { calibrationInputs: calib, batchNum: 4, mode: 'cosine', maxDrop: 0.001 });
    const r = await accuracyBasedAutoCalibration(model, evaluator, { deployTarget: 'webgpu', weightBits: [4, 8] });
    const bits = Object.values(r.record.weights ?? {}).map((w) => w.num_bits_w);
    console.log(`outlier ViT search: ${r.evaluations} evaluations, ${bits.filter((b) => b === 4).length} layers 4-bit, ${bits.filter((b) => b === 8).length} 8-bit, ${r.fallbackLayers.length} float; ${scaledLayers(r).length} scaled`);
    expect(r.passed, r.message).toBe(true);
    expect(r.originalMetric - r.quantizedMetric).toBeLessThanOrEqual(0.001);
    expect(scaledLayers(r).length).toBeGreaterThan(0);
    const again = await quantizeModel(model, r.config, [], { record: r.record });
    expect(Buffer.from(again.deployModel).equals(Buffer.from(r.deployModel!))).toBe(true);
  }, 180_000);

  it('refuses record factors that are not powers of two, or do not fit the layer, naming the layer and field', async () => {
    const model = fixture('vit_tiny_outliers.onnx');
    const config = await createQuantConfig(model, { deployTarget: 'webgpu', weightBits: 4 });
    const good = await quantizeModel(model, config, calib);
    const [name] = scaledLayers(good);
    const notPowers = structuredClone(good.record);
    notPowers.weights![name!]!.equalize_w![0] = 3;
    await expect(quantizeModel(model, config, [], { record: notPowers })).rejects.toThrow(new RegExp(`weights '${name!.replace(/[./]/g, '\\$&')}'\\.equalize_w must be a non-empty array of powers of two`));
    const short = structuredClone(good.record);
    for (const w of Object.values(short.weights!)) if (w.equalize_w) w.equalize_w = w.equalize_w.slice(1);
    const error = await quantizeModel(model, config, [], { record: short }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuantConfigError);
    expect((error as Error).message).toMatch(/equalize_w has \d+ factors; its input has \d+ channels/);
  }, 120_000);
});
