/**
 * Embeddings: a Gather from a constant float table is a weight-only layer of the config, quantized
 * per row to int8 with no calibration; the deploy model looks int8 rows up and scales them, giving
 * exactly the fake-quant model's values, and stores the table as int8. On the trained token
 * classifier (Gather embedding, attention mask, two encoder blocks) every Gather-on-weights, MatMul
 * and Gemm is quantized by default and deploy accuracy stays within 0.01 of float.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, quantizeModel, QuantConfigError, Tensor, type LayerQuantConfig } from '../../src/index.js';
import { referenceKernels } from '../../src/subpaths/kernels.js';
import { parseNpy } from '../../src/subpaths/npy.js';
import { DataType, decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { ROOT } from '../helpers/cli-runner.js';
import { firstOutput as run } from '../helpers/run-model.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

describe('a Gather from an embedding table', () => {
  const rng = new Random(5);
  const [vocab, dim] = [12, 6];
  // Rows of very different magnitudes: per-row scales keep the small rows' precision.
  const table = Float32Array.from({ length: vocab * dim }, (_, i) => rng.normal() * 10 ** ((Math.floor(i / dim) % 3) - 1));
  const model = encodeModel(buildModel(
    new GraphBuilder()
      .input('ids', DataType.INT64, ['N', 4])
      .initializer('table', [vocab, dim], table)
      .node('Gather', ['table', 'ids'], ['e'], {}, { name: 'embed' })
      .node('Relu', ['e'], ['y'])
      .output('y', DataType.FLOAT),
    { opset: 13 },
  ));
  const ids = new Tensor('int64', BigInt64Array.from({ length: 8 }, (_, i) => BigInt((i * 5) % vocab)), [2, 4]);

  it('is a weight-only layer of the config, quantized per row with nothing calibrated', async () => {
    const config = await createQuantConfig(model);
    expect(config.embed).toEqual({ quant_enable: true, weight_quant_params: { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: true } });
    const result = await quantizeModel(model, config, [{ ids }]);
    expect(result.layers.find((l) => l.name === 'embed')).toMatchObject({ quantized: true, weights: 'per-channel' });
    expect(result.warnings).toEqual([]);
    expect(result.record.layers).toEqual({});
  });

  it('looks up exactly the rows of the int8 table times their scales, in both model forms', async () => {
    const result = await quantizeModel(model, await createQuantConfig(model), [{ ids }]);
    const expected = new Float32Array(8 * dim);
    for (let i = 0; i < 8; i++) {
      const row = Number(ids.data[i]);
      const values = table.subarray(row * dim, (row + 1) * dim);
      const absmax = Math.max(...values.map(Math.abs));
      const fq = referenceKernels.fakeQuantize(values, Math.fround(absmax / 127), 0, { type: 'int8' });
      expected.set(fq.map((v) => Math.max(0, v)), i * dim);
    }
    const fake = await run(result.fakeQuantModel, { ids });
    const deployed = await run(result.deployModel, { ids }, 'node');
    expect(Array.from(fake)).toEqual(Array.from(expected));
    expect(Array.from(deployed)).toEqual(Array.from(expected));
    // The deploy model stores the table as int8 only.
    const graph = decodeModel(result.deployModel).graph!;
    expect(graph.initializer!.filter((t) => t.dims!.length === 2 && t.dims![1] === dim).map((t) => t.dataType)).toEqual([DataType.INT8]);
  });

  it('stays float with quant_enable false, and says so', async () => {
    const config = await createQuantConfig(model, { skipLayers: ['embed'] });
    const result = await quantizeModel(model, config, [{ ids }]);
    const graph = decodeModel(result.deployModel).graph!;
    expect(graph.node!.find((x) => x.name === 'embed')!.input).toEqual(['table', 'ids']);
    expect(graph.initializer!.map((t) => t.dataType)).toEqual([DataType.FLOAT]);
    expect(result.warnings.map((w) => [w.code, w.reason])).toEqual([['NOTHING_QUANTIZED', undefined], ['LEFT_FLOAT', 'quant_enable is false in the config']]);
  });

  it('refuses activation_quant_params on an embedding, naming the layer', async () => {
    const config = await createQuantConfig(model);
    const bad = { ...config, embed: { ...(config.embed as LayerQuantConfig), activation_quant_params: { num_bits: 8, act_algo: 'ifmr' } } };
    const error = await quantizeModel(model, bad as typeof config, [{ ids }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuantConfigError);
    expect((error as Error).message).toContain("layer 'embed' is a Gather from a constant table, quantized weight-only: remove activation_quant_params");
  });
});

describe('the token classifier fixture (Gather embedding, attention mask)', () => {
  const dir = join(ROOT, 'test/fixtures/transformers');
  const npy = (f: string) => parseNpy(new Uint8Array(readFileSync(join(dir, f))));
  const ids = npy('token_heldout_ids.npy');
  const mask = npy('token_heldout_mask.npy');
  const labels = npy('token_heldout_labels.npy').data as BigInt64Array;
  const seq = ids.shape[1]!;
  const slice = (a: typeof ids, start: number, n: number) => new Tensor('int64', (a.data as BigInt64Array).slice(start * seq, (start + n) * seq), [n, seq]);
  const feeds = (start: number, n: number) => ({ input_ids: slice(ids, start, n), attention_mask: slice(mask, start, n) });

  it('quantizes every Gather-on-weights, MatMul and Gemm by default; deploy accuracy within 0.01 of float', async () => {
    const model = new Uint8Array(readFileSync(join(dir, 'token_classifier.onnx')));
    const config = await createQuantConfig(model, { batchNum: 4 });
    // The first 128 held-out sequences calibrate; the other 872 measure.
    const result = await quantizeModel(model, config, [0, 1, 2, 3].map((b) => feeds(b * 32, 32)));
    const graph = decodeModel(model).graph!;
    const constant = new Set((graph.initializer ?? []).map((t) => t.name));
    const heavy = graph.node!.filter((x) => ['MatMul', 'Gemm'].includes(x.opType ?? '') || (x.opType === 'Gather' && constant.has(x.input![0]!)));
    expect(heavy.filter((x) => x.opType === 'Gather')).toHaveLength(1);
    expect(result.layers.filter((l) => l.quantized).map((l) => l.name).sort()).toEqual(heavy.map((x) => x.name).sort());
    const n = 872;
    const accuracy = async (bytes: Uint8Array) => {
      const out = await run(bytes, feeds(128, n), 'node');
      let ok = 0;
      for (let i = 0; i < n; i++) {
        const row = out.subarray(i * 4, i * 4 + 4);
        if (BigInt(row.indexOf(Math.max(...row))) === labels[128 + i]) ok++;
      }
      return ok / n;
    };
    const float = await accuracy(model);
    expect(float).toBeGreaterThan(0.95);
    expect(Math.abs((await accuracy(result.deployModel)) - float)).toBeLessThanOrEqual(0.01);
  }, 120_000);
});
