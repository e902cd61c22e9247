/**
 * The 'wasm' deploy target: onnxruntime-web's wasm backend, where int8 QDQ runs slower than float and
 * the weight-only forms run at about float speed (bench/wasm-target.mjs), so it takes the 'webgpu'
 * target's forms. Checked on real sessions: the deploy model runs on onnxruntime-web wasm, parity is
 * measured there, and the automatic search and the CLI take the target.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { accuracyBasedAutoCalibration, createQuantConfig, createSession, FidelityEvaluator, OptionsError, quantizeModel, Tensor } from '../../src/index.js';
import { encodeNpy } from '../../src/data/npy.js';
import { decodeModel } from '../../src/subpaths/onnx.js';
import { removeTempDirs, runCli, tempDir } from '../helpers/cli-runner.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';

const ROOT = join(import.meta.dirname, '../..');
const VIT = new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/transformers/vit_tiny.onnx')));
const ops = (bytes: Uint8Array) => decodeModel(bytes).graph!.node!.map((n) => n.opType!);
const calib = [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));

/** Top-1 accuracy on 1000 held-out digits, the model run by onnxruntime-web's wasm backend. */
async function wasmAccuracy(bytes: Uint8Array): Promise<number> {
  const { x, labels } = heldOutBatch(0, 1000);
  const s = await createSession(bytes, { engine: 'web', executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  try {
    const out = (await s.run({ input: new Tensor('float32', x, [1000, 1, 28, 28]) }))[s.outputNames[0]!]!.data as Float32Array;
    return labels.filter((l, i) => {
      const row = out.subarray(i * 10, i * 10 + 10);
      return row.indexOf(Math.max(...row)) === l;
    }).length / labels.length;
  } finally {
    await s.release();
  }
}

afterAll(removeTempDirs);

describe("deployTarget 'wasm'", () => {
  it('the tiny ViT at 4 bits: weight-only forms, parity measured on onnxruntime-web wasm, accuracy there within 0.01 of float (1000 held-out digits)', async () => {
    const config = await createQuantConfig(VIT, { deployTarget: 'wasm', weightBits: 4 });
    expect(config.deploy_target).toBe('wasm');
    const r = await quantizeModel(VIT, config, calib);
    const deployed = ops(r.deployModel);
    expect(deployed.filter((o) => o === 'MatMulNBits').length).toBe(r.layers.filter((l) => l.quantized && l.weights === 'per-block').length);
    expect(deployed.filter((o) => o === 'QuantizeLinear')).toEqual([]);
    // Engine node by default here: the deploy model still ran where it ships, and the backend says so.
    expect(r.parity!.backend).toMatch(/^onnxruntime-web wasm \(the fake-quant model on onnxruntime-node/);
    expect(r.parity!.cosine).toBeGreaterThan(0.9999);
    expect(r.weightBytes!.quantized).toBeLessThan(0.2 * r.weightBytes!.float);
    expect(r.record.weights!['/blocks.0/q/MatMul']).toMatchObject({ num_bits_w: 4, block_size: 32 });
    // Attention's activation products have no weight: not layers of this target, and said why.
    expect(r.layers.filter((l) => !l.quantized).every((l) => /'wasm' deploy target quantizes weights only/.test(l.reason!))).toBe(true);
    expect(r.warnings.filter((w) => w.code === 'LEFT_FLOAT')).toEqual([]);
    const float = await wasmAccuracy(VIT);
    expect(Math.abs((await wasmAccuracy(r.deployModel)) - float)).toBeLessThanOrEqual(0.01);
  }, 120_000);

  it('the automatic search with weightBits [4, 8] keeps the limit and returns a config that rebuilds its model', async () => {
    const held = [0, 1].map((b) => ({ input: new Tensor('float32', heldOutBatch(b * 100, 100).x, [100, 1, 28, 28]) }));
    const evaluator = new FidelityEvaluator(held, { calibrationInputs: calib, batchNum: 4, mode: 'cosine', maxDrop: 0.002 });
    const r = await accuracyBasedAutoCalibration(VIT, evaluator, { deployTarget: 'wasm', weightBits: [4, 8] });
    expect(r.passed, r.message).toBe(true);
    expect(r.config.deploy_target).toBe('wasm');
    expect(r.originalMetric - r.quantizedMetric).toBeLessThanOrEqual(0.002);
    expect(r.parity!.backend).toMatch(/^onnxruntime-web wasm/);
    expect((await quantizeModel(VIT, r.config, calib)).deployModel).toEqual(r.deployModel);
  }, 180_000);

  it('4-bit weights still need a weight-only target; the CLI takes --target wasm', async () => {
    await expect(createQuantConfig(VIT, { weightBits: 4 })).rejects.toThrow(/weightBits 4 needs deployTarget 'webgpu' or 'wasm'/);
    await expect(accuracyBasedAutoCalibration(VIT, new FidelityEvaluator(calib, { mode: 'cosine', maxDrop: 0.01 }), { deployTarget: 'cpu', weightBits: 4 })).rejects.toThrow(OptionsError);
    const dir = tempDir({ 'model.onnx': VIT, 'calib.npy': encodeNpy(trainBatch(0, 32), [32, 1, 28, 28]) });
    const c = await runCli(['config', 'model.onnx', '-o', 'config.json', '--target', 'wasm', '--weight-bits', '4'], dir);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).deploy_target).toBe('wasm');
    const bad = await runCli(['config', 'model.onnx', '-o', 'c2.json', '--target', 'wasm32'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--target must be one of cpu, webgpu, wasm, got 'wasm32'/);
  }, 120_000);
});
