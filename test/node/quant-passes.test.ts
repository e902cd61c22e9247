/**
 * The record says which data passes ran and with which settings: the same list as the result's
 * `passes`, none in the AMCT form, kept when a record is read back and reused, and a malformed
 * `passes` field is refused with a message that names it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, quantizeModel, QuantConfigError, Tensor } from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

describe('the data passes in the record', () => {
  const rng = new Random(7);
  const [rows, k, n] = [64, 16, 4];
  const model = encodeModel(buildModel(
    new GraphBuilder()
      .input('x', DataType.FLOAT, ['N', k])
      .initializer('W', [n, k], rng.normals(n * k, 0.3))
      .initializer('B', [n], rng.normals(n, 0.1))
      .node('Gemm', ['x', 'W', 'B'], ['y'], { transB: 1 }, { name: 'fc' })
      .output('y', DataType.FLOAT),
    { opset: 13 },
  ));
  const calib = [0, 1].map(() => ({ x: new Tensor('float32', Float32Array.from({ length: rows * k }, () => 1 + rng.normal()), [rows, k]) }));

  it('lists the passes that ran with their settings, the same as the result', async () => {
    const config = await createQuantConfig(model, { batchNum: 2, biasCorrection: true });
    const result = await quantizeModel(model, config, calib);
    expect(result.record.passes!.map((p) => p.name)).toEqual(result.passes.map((p) => p.name));
    expect(result.record.passes!.map((p) => p.name)).toEqual(['activation_equalization', 'bias_correction']);
    const bias = result.record.passes!.find((p) => p.name === 'bias_correction')!;
    expect(bias.stage).toBe('after-calibration');
    expect(bias.settings).toEqual({ bias_correction: true, weight_rounding: 'nearest' });
    expect(result.passes.find((p) => p.name === 'bias_correction')!.settings).toEqual(bias.settings);
    // Files show the passes before the layers.
    expect(Object.keys(result.record)).toEqual(['version', 'passes', 'layers']);
  });

  it('lists no pass in the AMCT form (every data pass off)', async () => {
    const config = await createQuantConfig(model, { batchNum: 2, activationEqualization: false, crossLayerEqualization: false });
    const result = await quantizeModel(model, config, calib);
    expect(result.passes).toEqual([]);
    expect(result.record.passes).toEqual([]);
  });

  it('reads a record with passes back from a file and reuses it to the same model', async () => {
    const config = await createQuantConfig(model, { batchNum: 2, biasCorrection: true });
    const first = await quantizeModel(model, config, calib);
    const file = join(mkdtempSync(join(tmpdir(), 'aq-passes-')), 'record.json');
    writeFileSync(file, JSON.stringify(first.record));
    const again = await quantizeModel(model, config, calib, { record: file });
    expect(again.fakeQuantModel).toEqual(first.fakeQuantModel);
    expect(again.record.layers).toEqual(first.record.layers);
    expect(again.record.passes).toEqual(first.record.passes);
  });

  it('refuses a record whose passes field is malformed, naming the field and the file', async () => {
    const config = await createQuantConfig(model, { batchNum: 2 });
    const first = await quantizeModel(model, config, calib);
    const file = join(mkdtempSync(join(tmpdir(), 'aq-passes-')), 'bad-record.json');
    for (const passes of [{ name: 'x' }, [{ name: 'x', stage: 'during', settings: {} }], [{ name: 3, stage: 'after-calibration', settings: {} }], [{ name: 'x', stage: 'after-calibration', settings: [] }]]) {
      writeFileSync(file, JSON.stringify({ ...first.record, passes }));
      const error = await quantizeModel(model, config, calib, { record: file }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(QuantConfigError);
      expect(String((error as Error).message)).toMatch(/passes must be an array/);
      expect(String((error as Error).message)).toContain('bad-record.json');
    }
  });
});
