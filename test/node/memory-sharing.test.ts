/**
 * Copies the package avoids on large models: arrays it gives up become tensor bytes as they are, a
 * parsed model is copied structurally, the app's worker decodes the file's bytes in place, and the
 * per-layer comparison splits its fake-quant weights over groups. Each must change nothing a user sees.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, OnnxFormatError, quantizeModel, Tensor } from '../../src/index.js';
import { adoptModel, encodeModel } from '../../src/onnx/model.js';
import { adoptTensor, DataType, readTensorAsFloat32 } from '../../src/onnx/tensor.js';
import { privateCopy } from '../../src/quant/prepare/prepare.js';
import { PreparedQuantization } from '../../src/quant/quantize.js';
import { decodeModel } from '../../src/subpaths/onnx.js';
import { trainBatch } from '../helpers/mnist.js';

const MNIST = () => new Uint8Array(readFileSync('test/fixtures/mnist_cnn.onnx'));
const calibration = () => [0, 1].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));

describe('adoptTensor', () => {
  it("stores the array's own memory as raw_data, and reads back the same values", () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => i - 5.5);
    const t = adoptTensor('w', DataType.FLOAT, [3, 4], data);
    expect(t.rawData!.buffer).toBe(data.buffer);
    expect(t.rawData!.byteLength).toBe(48);
    expect(Array.from(readTensorAsFloat32(t))).toEqual(Array.from(data));
    const q = new Int8Array([1, -2, 3]);
    expect(adoptTensor('q', DataType.INT8, [3], q).rawData!.buffer).toBe(q.buffer);
  });

  it('copies what is not the type’s own array, and names a length that does not fit the dims', () => {
    const plain = [1, 2, 3];
    const t = adoptTensor('w', DataType.FLOAT, [3], plain);
    expect(Array.from(readTensorAsFloat32(t))).toEqual(plain);
    const wrongType = new Float64Array([1, 2, 3]);
    expect(adoptTensor('w', DataType.FLOAT, [3], wrongType).rawData!.buffer).not.toBe(wrongType.buffer);
    expect(() => adoptTensor('w', DataType.FLOAT, [2, 2], new Float32Array(3))).toThrow(OnnxFormatError);
    expect(() => adoptTensor('w', DataType.FLOAT, [2, 2], new Float32Array(3))).toThrow(/'w'.*3 values given/);
  });
});

describe('a parsed model handed to an entry point', () => {
  it('is copied structurally: the copy shares its weights, and quantizing leaves the model as it was', async () => {
    const model = decodeModel(MNIST());
    const before = encodeModel(model);
    const copy = await privateCopy(model);
    expect(copy).not.toBe(model);
    expect(copy.graph!.initializer![0]!.rawData!.buffer).toBe(model.graph!.initializer![0]!.rawData!.buffer);
    const config = await createQuantConfig(model, { batchNum: 2 });
    const r = await quantizeModel(model, config, calibration());
    expect(r.deployModel.length).toBeGreaterThan(0);
    expect(encodeModel(model)).toEqual(before);
  });
});

describe('adoptModel', () => {
  it("decodes without a copy (the tensors view the given bytes) and rejects bytes that are not a model", async () => {
    const bytes = MNIST();
    const model = await adoptModel(bytes);
    expect(model.graph!.initializer!.some((t) => t.rawData && t.rawData.length > 0 && t.rawData.buffer === bytes.buffer)).toBe(true);
    await expect(adoptModel(new TextEncoder().encode('not a model at all'))).rejects.toThrow(OnnxFormatError);
  });
});

describe('per-layer errors in groups bounded by fake-quant weight bytes', () => {
  it('give the same errors in one group per weighted activation as in one group for all', async () => {
    const bytes = MNIST();
    const p = await PreparedQuantization.create(bytes, await createQuantConfig(bytes, { batchNum: 2, skipSlowLayers: false }));
    await p.calibrate(calibration());
    const plan = p.plan();
    // Layers without a weight add nothing to the bound, so they join any group.
    const activations = new Set(plan.filter((q) => q.weight).map((q) => q.layer.activation)).size;
    expect(activations).toBeGreaterThan(1);
    const run = async (fakeWeightBudgetBytes?: number) => {
      let groups = 0;
      const errors = await p.layerErrors(plan, { ...(fakeWeightBudgetBytes === undefined ? {} : { fakeWeightBudgetBytes }), onBatch: (i) => (groups = i.groups) });
      return { errors, groups };
    };
    const together = await run();
    const apart = await run(1);
    expect(together.groups).toBe(1);
    expect(apart.groups).toBe(activations);
    expect(apart.errors.map((e) => e.layer)).toEqual(together.errors.map((e) => e.layer));
    for (const [i, e] of apart.errors.entries()) {
      expect(e.cosine).toBeCloseTo(together.errors[i]!.cosine, 6);
      expect(e.sqnr).toBeCloseTo(together.errors[i]!.sqnr, 3);
    }
  });
});
