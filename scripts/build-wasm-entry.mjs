#!/usr/bin/env node
// Writes dist/wasm.js, the package over onnxruntime-web's plain wasm build (no WebGPU; a 14 MB wasm
// instead of the 28 MB JSEP one), so that `import … from 'autoquant/wasm'` keeps the largest build out
// of a bundle. It is dist/index.js with its one import of onnxruntime-web pointed at the /wasm entry.
import { readFileSync, writeFileSync } from 'node:fs';

const src = readFileSync('dist/index.js', 'utf8');
const from = /from "onnxruntime-web";/g;
const count = [...src.matchAll(from)].length;
if (count !== 1) throw new Error(`build-wasm-entry: expected one import of onnxruntime-web in dist/index.js, found ${count}`);
writeFileSync('dist/wasm.js', src.replace(from, 'from "onnxruntime-web/wasm";').replace(/\/\/# sourceMappingURL=index\.js\.map\s*$/, '//# sourceMappingURL=index.js.map\n'));
console.log('wrote dist/wasm.js');
