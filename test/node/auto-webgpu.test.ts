/**
 * The automatic search under the 'webgpu' target: its layers are weight-only, and the search falls
 * them back (to float, or with weightBits [4, 8] from 4 to 8 bits first) as it does activation layers;
 * the returned config rebuilds the model it chose. Also the CLI's --target and --weight-bits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../../src/data/npy.js';
import { accuracyBasedAutoCalibration, FidelityEvaluator, OptionsError, quantizeModel, Tensor } from '../../src/index.js';
import { validateRecord } from '../../src/quant/config/record.js';
import { decodeModel } from '../../src/subpaths/onnx.js';
import { removeTempDirs, ROOT, runCli, tempDir } from '../helpers/cli-runner.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';

const VIT = new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/transformers/vit_tiny.onnx')));
const calib = [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
const held = [0, 1].map((b) => ({ input: new Tensor('float32', heldOutBatch(b * 100, 100).x, [100, 1, 28, 28]) }));
const evaluator = (maxDrop: number) => new FidelityEvaluator(held, { calibrationInputs: calib, batchNum: 4, mode: 'cosine', maxDrop });
const bitsOf = (r: { layers: { name: string; quantized: boolean; weightBits?: number }[] }) => new Map(r.layers.filter((l) => l.quantized && l.weightBits).map((l) => [l.name, l.weightBits!]));
const ops = (bytes: Uint8Array, op: string) => decodeModel(bytes).graph!.node!.filter((n) => n.opType === op).length;

afterAll(removeTempDirs);

describe("the automatic search, deployTarget 'webgpu'", () => {
  it('weightBits [4, 8]: moves the most sensitive layers to 8 bits, as few as the limit allows; at least 20% fewer weight bytes than all at 8 bits; the config rebuilds the model', async () => {
    const eight = await accuracyBasedAutoCalibration(VIT, evaluator(0.002), { deployTarget: 'webgpu' });
    expect(eight.passed).toBe(true);
    expect([...bitsOf(eight).values()].every((b) => b === 8)).toBe(true);
    const mixed = await accuracyBasedAutoCalibration(VIT, evaluator(0.002), { deployTarget: 'webgpu', weightBits: [4, 8] });
    expect(mixed.passed, mixed.message).toBe(true);
    expect(mixed.fallbackTo).toBe('8-bit');
    expect(mixed.originalMetric - mixed.quantizedMetric).toBeLessThanOrEqual(0.002);
    const bits = bitsOf(mixed);
    const four = [...bits].filter(([, b]) => b === 4).map(([n]) => n);
    const up = [...bits].filter(([, b]) => b === 8).map(([n]) => n);
    expect(four.length).toBeGreaterThan(0);
    expect(up.sort()).toEqual([...mixed.fallbackLayers].sort());
    // All at 4 bits fails this limit (the search had to move some), so it is not the trivial answer.
    expect(mixed.history[1]!.ok).toBe(false);
    expect(mixed.weightBytes!.quantized).toBeLessThan(0.8 * eight.weightBytes!.quantized);
    expect(mixed.parity!.cosine).toBeGreaterThan(0.99999);
    for (const [name, b] of bits) expect((mixed.config[name] as { weight_quant_params: { num_bits: number } }).weight_quant_params.num_bits).toBe(b);
    // Weight-only layers need no calibration data: the returned config alone rebuilds the deploy model.
    const again = await quantizeModel(VIT, mixed.config, calib);
    expect(again.deployModel).toEqual(mixed.deployModel);
    expect(ops(mixed.deployModel!, "MatMulNBits")).toBe(bits.size);
    // The record says the bits each layer got and what its weights weigh, summing to weightBytes.
    const weights = mixed.record.weights!;
    const blocked = Object.entries(weights).filter(([, w]) => w.block_size !== undefined);
    expect(new Map(blocked.map(([n, w]) => [n, w.num_bits_w]))).toEqual(bits);
    expect(blocked.every(([, w]) => w.block_size === 32)).toBe(true);
    // The patch embedding is a Conv: int8 per output channel, no blocks.
    expect(weights['/patch/Conv']).toMatchObject({ num_bits_w: 8 });
    expect(weights['/patch/Conv']!.block_size).toBeUndefined();
    expect(Object.values(weights).reduce((s, w) => s + w.bytes, 0)).toBe(mixed.weightBytes!.quantized);
    expect(Object.values(weights).reduce((s, w) => s + w.float_bytes, 0)).toBe(mixed.weightBytes!.float);
    expect(validateRecord(JSON.parse(JSON.stringify(mixed.record))).weights).toEqual(weights);
  }, 180_000);

  it("the record's weights section is checked like its layers", () => {
    const base = { version: 1, layers: {} };
    expect(validateRecord({ ...base, weights: { fc: { num_bits_w: 4, block_size: 32, bytes: 10, float_bytes: 64 } } }).weights).toEqual({ fc: { num_bits_w: 4, block_size: 32, bytes: 10, float_bytes: 64 } });
    expect(() => validateRecord({ ...base, weights: { fc: { num_bits_w: 3, bytes: 1, float_bytes: 4 } } })).toThrow(/weights 'fc'.num_bits_w must be 4 or 8, got 3/);
    expect(() => validateRecord({ ...base, weights: { fc: { num_bits_w: 8, bytes: -1, float_bytes: 4, scale: 1 } } })).toThrow(/weights 'fc'.bytes must be a whole number ≥ 0[\s\S]*weights 'fc'.scale is not a known field|weights 'fc'.scale is not a known field[\s\S]*bytes must be/);
    expect(() => validateRecord({ ...base, weights: [] })).toThrow(/weights must be an object/);
  });

  it('falls weight-only layers back to float where even 8 bits exceed the limit, and says that every layer at 8 bits failed', async () => {
    const r = await accuracyBasedAutoCalibration(VIT, evaluator(0.00002), { deployTarget: 'webgpu', weightBits: [4, 8] });
    expect(r.passed, r.message).toBe(true);
    expect(r.fallbackTo).toBe('float');
    expect(r.message).toMatch(/every block-quantized layer at 8-bit weights still exceeds the limit/);
    expect(r.fallbackLayers.length).toBeGreaterThan(0);
    for (const name of r.fallbackLayers) {
      expect(r.layers.find((l) => l.name === name)!.quantized).toBe(false);
      expect((r.config[name] as { quant_enable: boolean }).quant_enable).toBe(false);
    }
    expect([...bitsOf(r).values()].every((b) => b === 8)).toBe(true);
    expect(r.originalMetric - r.quantizedMetric).toBeLessThanOrEqual(0.00002);
    expect(ops(r.deployModel!, 'MatMulNBits')).toBe(bitsOf(r).size);
  }, 180_000);

  it('rejects 4-bit or mixed weights off the webgpu target, and a deployTarget beside a given config', async () => {
    await expect(accuracyBasedAutoCalibration(VIT, evaluator(0.01), { weightBits: [4, 8] })).rejects.toThrow(OptionsError);
    await expect(accuracyBasedAutoCalibration(VIT, evaluator(0.01), { weightBits: 5 as never, deployTarget: 'webgpu' })).rejects.toThrow(/weightBits must be 8, 4 or \[4, 8\]/);
    await expect(accuracyBasedAutoCalibration(VIT, evaluator(0.01), { deployTarget: 'webgpu', config: { version: 1 } as never })).rejects.toThrow(/deployTarget applies to the default config/);
  });
});

describe('the CLI: --target and --weight-bits', () => {
  const npy = (n: number, start: number) => encodeNpy(trainBatch(start, n), [n, 1, 28, 28]);

  it('config --target webgpu --weight-bits 4 lists weight-only entries; quantize prints the weight bytes; --weight-bits 4 without the target is a usage error', async () => {
    const dir = tempDir({ 'model.onnx': VIT, 'calib.npy': npy(32, 0) });
    const c = await runCli(['config', 'model.onnx', '-o', 'config.json', '--target', 'webgpu', '--weight-bits', '4'], dir);
    expect(c.code, c.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config.deploy_target).toBe('webgpu');
    const dense = Object.values(config).filter((v) => (v as { weight_quant_params?: { block_size?: number } })?.weight_quant_params?.block_size);
    expect(dense.length).toBe(13);
    for (const e of dense) expect(e).toMatchObject({ quant_enable: true, weight_quant_params: { num_bits: 4, block_size: 32 } });
    const q = await runCli(['quantize', 'model.onnx', '--config', 'config.json', '--data', 'calib.npy', '--batch-size', '32', '--save', 'out/m'], dir);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toMatch(/weights: .* against .* float32 \(\d+\.\d%\); block-quantized layers at 4 bits: 13, at 8 bits: 0/);
    expect(q.stdout).toMatch(/parity: .*cosine 1\.0000/);
    const bad = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--save', 'out/n', '--weight-bits', '4'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--weight-bits 4 needs --target webgpu/);
    const both = await runCli(['quantize', 'model.onnx', '--config', 'config.json', '--data', 'calib.npy', '--save', 'out/n', '--target', 'webgpu'], dir);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--target and --weight-bits apply to the config autoquant creates/);
  }, 120_000);

  it('auto --target webgpu --weight-bits 4,8 reports the bits per layer in its JSON report', async () => {
    const dir = tempDir({ 'model.onnx': VIT, 'inputs.npy': encodeNpy(heldOutBatch(0, 64).x, [64, 1, 28, 28]), 'calib.npy': npy(64, 0) });
    const r = await runCli(['auto', 'model.onnx', '--data', 'inputs.npy', '--calibration-data', 'calib.npy', '--batch-size', '32', '--batch-num', '2', '--fidelity', 'cosine', '--max-drop', '0.002', '--target', 'webgpu', '--weight-bits', '4,8', '--json', '--save', 'out/m'], dir);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(report.passed).toBe(true);
    const bits = Object.values(report.weight_bits as Record<string, number>);
    expect(bits.length).toBe(13);
    expect(bits.every((b) => b === 4 || b === 8)).toBe(true);
    expect(report.weight_bytes.quantized).toBeLessThan(report.weight_bytes.float);
    const html = readFileSync(join(dir, 'out/m_report.html'), 'utf8');
    expect(html).toMatch(/block-quantized layers: \d+ at 4 bits, \d+ at 8/);
  }, 180_000);
});
