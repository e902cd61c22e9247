import * as ortWebGpu from 'onnxruntime-web/webgpu';
import fs from 'node:fs';
const orig = fs.writeSync;
let n = 0;
(fs as any).writeSync = function (fd: any, data: any, ...r: any[]) { n++; return orig.call(this, fd, 'CAPTURED ' + data, ...r); };
const model = await Deno.readFile(new URL('./fixtures/mnist_cnn.onnx', import.meta.url));
(ortWebGpu as any).env.logLevel = 'verbose';
const s = await ortWebGpu.InferenceSession.create(model, { executionProviders: ['webgpu'], logSeverityLevel: 0, logVerbosityLevel: 0 } as any);
console.error('writes', n);
