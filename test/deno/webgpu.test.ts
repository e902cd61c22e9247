// Deno: the fake-quant model runs on onnxruntime-web's WebGPU backend (a software adapter on machines
// without a GPU) and agrees with the wasm backend. The package is pointed at the WebGPU build of
// onnxruntime-web with useOrt.
import assert from 'node:assert/strict';
import * as ortWebGpu from 'onnxruntime-web/webgpu';
import { createQuantConfig, createSession, quantizeModel, Tensor, useOrt } from '../../dist/index.js';
import { getKernels } from '../../dist/kernels.js';
import { rng } from './random.ts';

async function requireAdapter(): Promise<void> {
  const adapter = await (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu?.requestAdapter();
  assert.ok(adapter, 'no WebGPU adapter in this Deno');
  useOrt(ortWebGpu as never);
}

/**
 * Releases the GPU device before Deno exits: a live device at exit once aborted the process
 * ("double free or corruption") after every test had passed.
 */
async function releaseDevice(): Promise<void> {
  const device = await (ortWebGpu.env.webgpu as unknown as { device?: Promise<{ destroy?: () => void }> | { destroy?: () => void } }).device;
  device?.destroy?.();
}

Deno.test('the fake-quant model of the MNIST CNN runs on WebGPU and matches the wasm backend', async () => {
  await requireAdapter();
  const model = await Deno.readFile(new URL('../fixtures/mnist_cnn.onnx', import.meta.url));
  const next = rng(4);
  const x = Float32Array.from({ length: 4 * 784 }, () => next());
  const feeds = () => ({ input: new Tensor('float32', x, [4, 1, 28, 28]) });
  const result = await quantizeModel(model, await createQuantConfig(model), [feeds()]);
  const run = async (ep: string) => {
    const s = await createSession(result.fakeQuantModel, { executionProviders: [ep] });
    try {
      return (await s.run(feeds())).logits.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const k = await getKernels();
  const onWasm = await run('wasm');
  const onGpu = await run('webgpu');
  assert.ok(k.cosine(onWasm, onGpu) > 0.9999, `wasm vs webgpu cosine ${k.cosine(onWasm, onGpu)}`);
  await releaseDevice();
});

Deno.test("the tiny ViT's 4-bit webgpu-target deploy model (MatMulNBits) runs on WebGPU and parity is measured there", async () => {
  await requireAdapter();
  const model = await Deno.readFile(new URL('../fixtures/transformers/vit_tiny.onnx', import.meta.url));
  const next = rng(6);
  const x = Float32Array.from({ length: 2 * 784 }, () => next());
  const feeds = () => ({ input: new Tensor('float32', x, [2, 1, 28, 28]) });
  const config = await createQuantConfig(model, { deployTarget: 'webgpu', weightBits: 4 });
  // Calibrated on WebGPU: parity runs the deploy model there against the fake-quant model.
  const result = await quantizeModel(model, config, [feeds()], { executionProviders: ['webgpu'] });
  assert.match(result.parity!.backend, /webgpu/);
  assert.ok(result.parity!.cosine > 0.999, `parity on WebGPU ${result.parity!.cosine}`);
  const run = async (bytes: Uint8Array, ep: string) => {
    const s = await createSession(bytes, { executionProviders: [ep] });
    try {
      return (await s.run(feeds())).logits.data as Float32Array;
    } finally {
      await s.release();
    }
  };
  const k = await getKernels();
  const fakeOnWasm = await run(result.fakeQuantModel, 'wasm');
  const deployOnGpu = await run(result.deployModel, 'webgpu');
  assert.ok(k.cosine(fakeOnWasm, deployOnGpu) > 0.999, `fake-quant on wasm vs deploy on webgpu cosine ${k.cosine(fakeOnWasm, deployOnGpu)}`);
  await releaseDevice();
});
