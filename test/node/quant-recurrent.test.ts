/**
 * Recurrent layers (LSTM, GRU, RNN) are quantized weight-only: W and R per gate row, symmetric int8,
 * nothing calibrated. The deploy model stores them as int8 and computes exactly the fake-quant
 * model's values; on the trained row-reading LSTM the deploy output stays close to float, and its
 * error does not grow with the length of the sequence (the state is carried over up to 840 steps).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, quantizeModel, QuantConfigError, Tensor, type LayerQuantConfig } from '../../src/index.js';
import { getKernels, referenceKernels } from '../../src/subpaths/kernels.js';
import { DataType, decodeModel, encodeModel, readTensorAsFloat32 } from '../../src/subpaths/onnx.js';
import { ROOT } from '../helpers/cli-runner.js';
import { firstOutput as run } from '../helpers/run-model.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

describe('a GRU and a bidirectional LSTM', () => {
  const rng = new Random(17);
  const [steps, batch, input, hidden] = [5, 2, 3, 4];
  const gru = { W: [1, 3 * hidden, input], R: [1, 3 * hidden, hidden] };
  const lstm = { W: [2, 4 * hidden, hidden], R: [2, 4 * hidden, hidden] };
  const size = (d: number[]) => d.reduce((a, b) => a * b, 1);
  const model = encodeModel(buildModel(
    new GraphBuilder()
      .input('x', DataType.FLOAT, [steps, batch, input])
      .initializer('gw', gru.W, rng.normals(size(gru.W), 0.5))
      .initializer('gr', gru.R, rng.normals(size(gru.R), 0.5))
      .initializer('lw', lstm.W, rng.normals(size(lstm.W), 0.5))
      .initializer('lr', lstm.R, rng.normals(size(lstm.R), 0.5))
      .node('GRU', ['x', 'gw', 'gr'], ['gy'], { hidden_size: hidden }, { name: 'gru' })
      .node('Squeeze', ['gy'], ['gs'], { axes: [1] })
      .node('LSTM', ['gs', 'lw', 'lr'], ['ly'], { hidden_size: hidden, direction: 'bidirectional' }, { name: 'lstm' })
      .output('ly', DataType.FLOAT),
    { opset: 12 },
  ));
  const feeds = { x: new Tensor('float32', Float32Array.from(rng.normals(steps * batch * input, 1)), [steps, batch, input]) };

  it('are weight-only layers of the config, quantized per gate row with nothing calibrated', async () => {
    const config = await createQuantConfig(model);
    for (const name of ['gru', 'lstm']) {
      expect(config[name]).toEqual({ quant_enable: true, weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: true } });
    }
    const result = await quantizeModel(model, config, [feeds]);
    expect(result.layers.map((l) => [l.name, l.quantized, l.weights])).toEqual([['gru', true, 'per-channel'], ['lstm', true, 'per-channel']]);
    expect(result.warnings).toEqual([]);
    expect(result.record.layers).toEqual({});
  });

  it('store W and R as int8 and compute exactly the fake-quant values, one scale per row of each direction', async () => {
    const result = await quantizeModel(model, await createQuantConfig(model), [feeds]);
    const fake = decodeModel(result.fakeQuantModel).graph!;
    const original = decodeModel(model).graph!;
    for (const name of ['lw', 'lr', 'gw', 'gr']) {
      const w = readTensorAsFloat32(original.initializer!.find((t) => t.name === name)!);
      const cols = name === 'gw' ? input : hidden;
      const fq = readTensorAsFloat32(fake.initializer!.find((t) => t.name === `${name}_fake_quant`)!);
      for (let r = 0; r < w.length / cols; r++) {
        const row = w.subarray(r * cols, (r + 1) * cols);
        const expected = referenceKernels.fakeQuantize(row, Math.fround(Math.max(...row.map(Math.abs)) / 127), 0, { type: 'int8' });
        expect(Array.from(fq.subarray(r * cols, (r + 1) * cols))).toEqual(Array.from(expected));
      }
    }
    const deploy = decodeModel(result.deployModel).graph!;
    // The weights are int8 only (their float scales have a last axis of 1).
    const weights = deploy.initializer!.filter((t) => t.dims!.length === 3 && Number(t.dims![2]) > 1);
    expect(weights.map((t) => t.dataType)).toEqual([DataType.INT8, DataType.INT8, DataType.INT8, DataType.INT8]);
    expect(Number(decodeModel(result.deployModel).opsetImport![0]!.version)).toBe(12);
    // The same engine for both, with constant folding: the runtime folds Cast → Mul into the constant
    // weight the recurrent kernels pre-pack, as the fake-quant model's is (unfolded, they take
    // another summation order).
    const a = await run(result.fakeQuantModel, feeds, 'node', 'all');
    const b = await run(result.deployModel, feeds, 'node', 'all');
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('refuses activation_quant_params on a recurrent layer, naming it', async () => {
    const config = await createQuantConfig(model);
    const bad = { ...config, lstm: { ...(config.lstm as LayerQuantConfig), activation_quant_params: { num_bits: 8, act_algo: 'ifmr' } } };
    const error = await quantizeModel(model, bad as typeof config, [feeds]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuantConfigError);
    expect((error as Error).message).toContain("layer 'lstm' is an LSTM, quantized weight-only: remove activation_quant_params");
  });
});

describe('the row-reading LSTM fixture (MNIST digits, one row per step)', () => {
  const model = new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/transformers/lstm_rows.onnx')));
  /** `n` strips of `digits` held-out digits, rows concatenated: 28 steps per digit. */
  const strips = (n: number, digits: number) => {
    const x = new Float32Array(n * digits * 784);
    const labels: number[] = [];
    for (let d = 0; d < digits; d++) {
      const b = heldOutBatch(d * n, n);
      for (let i = 0; i < n; i++) x.set(b.x.subarray(i * 784, (i + 1) * 784), (i * digits + d) * 784);
      if (d === digits - 1) labels.push(...b.labels);
    }
    return { feeds: { rows: new Tensor('float32', x, [n, 28 * digits, 28]) }, labels };
  };

  it('keeps the deploy output close to float, with no error growth from 28 to 840 steps', async () => {
    const config = await createQuantConfig(model, { batchNum: 2 });
    const result = await quantizeModel(model, config, [0, 1].map((b) => ({ rows: new Tensor('float32', trainBatch(b * 32, 32), [32, 28, 28]) })));
    expect(result.layers.filter((l) => l.quantized).map((l) => l.opType).sort()).toEqual(['Gemm', 'LSTM']);
    const k = await getKernels();
    const cosines: number[] = [];
    for (const digits of [1, 5, 30]) {
      const { feeds, labels } = strips(200, digits);
      const float = await run(model, feeds, 'node');
      const deploy = await run(result.deployModel, feeds, 'node');
      cosines.push(k.cosine(float, deploy));
      const top = (o: Float32Array, i: number) => {
        const row = o.subarray(i * 10, i * 10 + 10);
        return row.indexOf(Math.max(...row));
      };
      const accuracy = (o: Float32Array) => labels.filter((l, i) => top(o, i) === l).length / labels.length;
      expect(Math.abs(accuracy(deploy) - accuracy(float))).toBeLessThanOrEqual(0.02);
    }
    console.log(`row LSTM: deploy/float output cosine ${cosines.map((c) => c.toFixed(5)).join(', ')} after 28, 140, 840 steps`);
    for (const c of cosines) expect(c).toBeGreaterThan(0.999);
    // The error after 840 steps is no larger than after one digit, up to noise between the digit sets.
    expect(1 - cosines[2]!).toBeLessThanOrEqual(2 * (1 - cosines[0]!) + 1e-4);
  }, 120_000);
});
