/**
 * MatMuls of two activations (attention's Q·Kᵀ and A·V): both inputs are observed and quantized.
 * On a two-input MatMul the fake-quant model computes exactly MatMul(fq(a), fq(b)) with the recorded
 * factors, the deploy model reads both through Q/DQ, a record rebuilds the same models with no data,
 * a bad scale_d2 is refused; on the trained tiny ViT every MatMul/Gemm is quantized by default
 * and the deploy model stays within 0.01 of float accuracy in onnxruntime-node.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, quantizeModel, QuantConfigError, Tensor, type LayerQuantConfig } from '../../src/index.js';
import { referenceKernels } from '../../src/subpaths/kernels.js';
import { DataType, decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { ROOT } from '../helpers/cli-runner.js';
import { firstOutput as run } from '../helpers/run-model.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

describe('a MatMul of two activations', () => {
  const rng = new Random(29);
  const [m, k, n] = [6, 8, 5];
  // relu(a) @ b: the first input is non-negative (asymmetric factors), the second signed.
  const model = encodeModel(buildModel(
    new GraphBuilder()
      .input('a', DataType.FLOAT, [m, k])
      .input('b', DataType.FLOAT, [k, n])
      .node('Relu', ['a'], ['ra'], {}, { name: 'relu' })
      .node('MatMul', ['ra', 'b'], ['y'], {}, { name: 'scores' })
      .output('y', DataType.FLOAT),
    { opset: 13 },
  ));
  const batch = () => ({
    a: new Tensor('float32', Float32Array.from(rng.normals(m * k, 1)), [m, k]),
    b: new Tensor('float32', Float32Array.from(rng.normals(k * n, 2)), [k, n]),
  });
  const calib = [batch(), batch()];

  it('is a layer of the config and records factors for both inputs', async () => {
    const config = await createQuantConfig(model, { batchNum: 2 });
    expect((config.scores as LayerQuantConfig).quant_enable).toBe(true);
    const result = await quantizeModel(model, config, calib);
    const rec = result.record.layers.scores!;
    expect(rec.scale_d2).toBeGreaterThan(0);
    expect(rec.clip_min_d2).toBeLessThan(0); // the second input is signed
    expect(rec.clip_min_d).toBeGreaterThanOrEqual(0); // the first is a Relu output
    expect(result.warnings.filter((w) => w.code === 'LEFT_FLOAT')).toEqual([]);
  });

  it('fake-quantizes both inputs exactly as QuantizeLinear∘DequantizeLinear with the recorded factors', async () => {
    const result = await quantizeModel(model, await createQuantConfig(model, { batchNum: 2 }), calib);
    const rec = result.record.layers.scores!;
    const feeds = batch();
    const fq = (x: Float32Array, scale: number, zp: number) => referenceKernels.fakeQuantize(x, scale, zp, { type: 'int8' });
    const a = fq((feeds.a.data as Float32Array).map((v) => Math.max(0, v)), rec.scale_d, rec.offset_d);
    const b = fq(feeds.b.data as Float32Array, rec.scale_d2!, rec.offset_d2!);
    const got = await run(result.fakeQuantModel, feeds);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let t = 0; t < k; t++) sum += a[i * k + t]! * b[t * n + j]!;
        expect(got[i * n + j]).toBeCloseTo(sum, 4);
      }
    }
    // And the deploy model computes the same values from Q/DQ on both inputs.
    const deploy = decodeModel(result.deployModel);
    const matmul = deploy.graph!.node!.find((x) => x.name === 'scores')!;
    const producer = (t: string) => deploy.graph!.node!.find((x) => x.output?.includes(t))?.opType;
    expect(matmul.input!.map(producer)).toEqual(['DequantizeLinear', 'DequantizeLinear']);
    const deployed = await run(result.deployModel, feeds, 'node');
    for (let i = 0; i < got.length; i++) expect(deployed[i]).toBeCloseTo(got[i]!, 4);
  });

  it('is rebuilt from its record with no data', async () => {
    const config = await createQuantConfig(model, { batchNum: 2 });
    const first = await quantizeModel(model, config, calib);
    const again = await quantizeModel(model, config, [], { record: first.record });
    expect(again.deployModel).toEqual(first.deployModel);
    expect(again.fakeQuantModel).toEqual(first.fakeQuantModel);
  });

  it('refuses a record whose second-input factors are malformed, naming the field', async () => {
    const config = await createQuantConfig(model, { batchNum: 2 });
    const first = await quantizeModel(model, config, calib);
    const bad = structuredClone(first.record);
    bad.layers.scores!.scale_d2 = -1;
    bad.layers.scores!.offset_d2 = 300;
    const error = await quantizeModel(model, config, [], { record: bad }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuantConfigError);
    expect((error as Error).message).toMatch(/layer 'scores'\.scale_d2 must be a number > 0/);
    expect((error as Error).message).toMatch(/offset_d2 must be an integer in \[-128, 127\]/);
  });
});

describe('the tiny ViT fixture (Softmax attention, GELU MLP)', () => {
  for (const file of ['vit_tiny.onnx', 'vit_tiny_ln17.onnx']) {
    it(`${file}: every MatMul and Gemm quantized by default, the patch Conv left float, deploy accuracy within 0.01 of float`, async () => {
      const model = new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/transformers', file)));
      const config = await createQuantConfig(model, { batchNum: 4 });
      const calib = [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
      const result = await quantizeModel(model, config, calib);
      const heavy = decodeModel(model).graph!.node!.filter((x) => ['Conv', 'MatMul', 'Gemm'].includes(x.opType ?? ''));
      expect(result.layers.map((l) => l.name).sort()).toEqual(heavy.map((x) => x.name).sort());
      // The patch embedding feeds a LayerNorm, so in int8 it would convert its input and output for itself alone.
      const floatLayers = result.layers.filter((l) => !l.quantized);
      expect(floatLayers.map((l) => l.opType)).toEqual(['Conv']);
      expect(floatLayers[0]!.reason).toMatch(/skip_slow_layers: a Conv with no int8 neighbour and \d+ multiply-adds per element/);
      expect(result.layers.filter((l) => result.record.layers[l.name]?.scale_d2 !== undefined)).toHaveLength(4);
      const n = 1000;
      const { x, labels } = heldOutBatch(0, n);
      const accuracy = async (bytes: Uint8Array) => {
        const out = await run(bytes, { input: new Tensor('float32', x, [n, 1, 28, 28]) }, 'node');
        return labels.filter((label, i) => {
          const row = out.subarray(i * 10, i * 10 + 10);
          return row.indexOf(Math.max(...row)) === label;
        }).length / n;
      };
      const float = await accuracy(model);
      expect(float).toBeGreaterThan(0.85);
      expect(Math.abs((await accuracy(result.deployModel)) - float)).toBeLessThanOrEqual(0.01);
    }, 120_000);
  }
});
