/**
 * Parity before saving: every quantized result says how closely its deploy model, run with every graph
 * optimization on, follows the fake-quant model on the calibration batches; saveModel and the automatic
 * calibration refuse to write a deploy model that computes something else, unless forced.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  ClassificationEvaluator,
  createQuantConfig,
  OptionsError,
  ParityError,
  quantizeModel,
  saveModel,
  Tensor,
  type QuantizeResult,
} from '../../src/index.js';
import { saveOutputs } from '../../src/auto/outputs.js';
import { measureParity, PARITY_MIN_COSINE, parityWarnings } from '../../src/quant/export/parity.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';

const mnist = new Uint8Array(readFileSync('test/fixtures/mnist_cnn.onnx'));
const calibration = [0, 1].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
const dir = () => mkdtempSync(join(tmpdir(), 'autoquant-parity-'));

let result: QuantizeResult;
beforeAll(async () => {
  result = await quantizeModel(mnist, await createQuantConfig(mnist, { batchNum: 2 }), calibration);
});

/** The same result with its parity replaced by a failing one (a deploy model no runtime here gets wrong). */
const failing = (r: QuantizeResult) => ({ ...r, parity: { ...r.parity!, cosine: 0.9 } });

describe('parity of the deploy model to the fake-quant model', () => {
  it('is measured on the calibration batches and is at least 0.999 on the MNIST CNN', () => {
    expect(result.parity).toBeDefined();
    const p = result.parity!;
    expect(p.backend).toMatch(/^onnxruntime-(node|web) /);
    expect(p.output).toBe('logits');
    expect(p.batches).toBe(2);
    expect(p.cosine).toBeGreaterThanOrEqual(PARITY_MIN_COSINE);
    expect(p.maxAbs).toBeGreaterThanOrEqual(0);
    expect(result.warnings.map((w) => w.code)).not.toContain('LOW_PARITY');
  });

  it('finds a deploy model that is not the fake-quant one', async () => {
    // The float model as "deploy": what int8 changes is then exactly the gap parity must see.
    const kept = [{ feeds: calibration[0]!, outputs: {} }];
    const same = await measureParity(result.fakeQuantModel, result.fakeQuantModel, kept);
    const other = await measureParity(result.fakeQuantModel, mnist, kept);
    expect(same!.cosine).toBeCloseTo(1, 6);
    expect(same!.maxAbs).toBe(0);
    expect(other!.maxAbs).toBeGreaterThan(0);
    expect(other!.cosine).toBeLessThan(same!.cosine);
  });

  it('warns below 0.999 with LOW_PARITY, naming the output and the backend', () => {
    const [w] = parityWarnings(failing(result).parity);
    expect(w?.code).toBe('LOW_PARITY');
    expect(w?.output).toBe('logits');
    expect(w?.message).toContain('0.90000');
    expect(w?.message).toContain(result.parity!.backend);
    expect(parityWarnings(result.parity)).toEqual([]);
  });
});

describe('saveModel and parity', () => {
  it('refuses a result that fails parity with a ParityError and writes nothing', async () => {
    const out = dir();
    const err = await saveModel(failing(result), join(out, 'm')).catch((e) => e);
    expect(err).toBeInstanceOf(ParityError);
    expect((err as ParityError).code).toBe('PARITY');
    expect((err as ParityError).parity.cosine).toBe(0.9);
    expect((err as Error).message).toMatch(/force: true/);
    expect(readdirSync(out)).toEqual([]);
  });

  it('writes it with { force: true }', async () => {
    const out = dir();
    const files = await saveModel(failing(result), join(out, 'm'), { force: true });
    expect(files).toHaveLength(3);
    expect(readdirSync(out).sort()).toEqual(['m_deploy_model.onnx', 'm_fake_quant_model.onnx', 'm_record.json']);
  });

  it('takes force only as a boolean', async () => {
    const err = await saveModel(result, join(dir(), 'm'), { force: 'yes' as unknown as boolean }).catch((e) => e);
    expect(err).toBeInstanceOf(OptionsError);
    expect((err as Error).message).toMatch(/force must be a boolean/);
  });
});

describe('automatic calibration and parity', () => {
  const evaluator = () => {
    const data = [0, 1].map((b) => {
      const { x, labels } = heldOutBatch(b * 200, 200);
      return { feeds: { input: new Tensor('float32', x, [200, 1, 28, 28]) }, labels };
    });
    return new ClassificationEvaluator(data, { calibrationInputs: calibration, batchNum: 2, maxDrop: 0.01 });
  };

  it('carries the parity of the returned deploy model, written to its report', async () => {
    const out = dir();
    const r = await accuracyBasedAutoCalibration(mnist, evaluator(), { savePrefix: join(out, 'm') });
    expect(r.passed).toBe(true);
    expect(r.parity!.cosine).toBeGreaterThanOrEqual(PARITY_MIN_COSINE);
    expect(r.parity!.batches).toBe(1); // the default config's batch_num
    expect(existsSync(join(out, 'm_deploy_model.onnx'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'm_auto_calibration.json'), 'utf8')).parity).toEqual(r.parity);
    expect(readFileSync(join(out, 'm_report.html'), 'utf8')).toContain('<dt>parity</dt>');
  });

  it('withholds the models of a result that fails parity but writes its reports, unless forced', async () => {
    const r = await accuracyBasedAutoCalibration(mnist, evaluator());
    const forged = { ...r, parity: { ...r.parity!, cosine: 0.9 } };
    const refused = dir();
    const files = await saveOutputs(forged, { savePrefix: join(refused, 'm') }, mnist.length);
    expect(files.some((f) => f.endsWith('_deploy_model.onnx'))).toBe(false);
    expect(readdirSync(refused).sort()).toEqual(['m_auto_calibration.json', 'm_quant_config.json', 'm_record.json', 'm_report.html']);
    const forced = dir();
    await saveOutputs(forged, { savePrefix: join(forced, 'm'), force: true }, mnist.length);
    expect(readdirSync(forced)).toContain('m_deploy_model.onnx');
  });

  it('takes force only as a boolean', async () => {
    const err = await accuracyBasedAutoCalibration(mnist, evaluator(), { force: 1 as unknown as boolean }).catch((e) => e);
    expect(err).toBeInstanceOf(OptionsError);
    expect((err as Error).message).toMatch(/force must be a boolean/);
  });
});
