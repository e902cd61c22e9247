import { defineConfig, type Options } from 'tsup';
import type { Plugin } from 'esbuild';

// onnxruntime-web stays external: its wasm files are 14-28 MB and users pick the build.
// protobufjs is bundled: its runtime is CommonJS, which a browser cannot import unbundled.
const shared: Options = {
  sourcemap: true,
  target: 'es2022',
  platform: 'neutral',
  external: ['onnxruntime-web', 'onnxruntime-web/wasm', /^node:/],
  noExternal: ['protobufjs', 'long'],
  shims: false,
};

// The subpaths share chunks with the root (ESM splitting) so that there is one copy of the engine
// state: useOrt() through `autoquant` is seen by `autoquant/runtime`.
const subpaths = ['onnx', 'kernels', 'npy', 'config', 'auto', 'runtime'];

// `autoquant/wasm` is the root over onnxruntime-web's plain wasm build (no WebGPU; a 14 MB wasm instead of
// the 28 MB JSEP one), so that a bundle that imports it never pulls in the larger build.
const ortWasm: Plugin = {
  name: 'ort-wasm',
  setup(build) {
    build.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: 'onnxruntime-web/wasm', external: true }));
  },
};

export default defineConfig([
  {
    ...shared,
    entry: { index: 'src/index.ts', ...Object.fromEntries(subpaths.map((s) => [s, `src/subpaths/${s}.ts`])) },
    format: ['esm'],
    splitting: true,
    dts: true,
    clean: true,
  },
  {
    // Node 20 cannot require() an ES module, so CommonJS callers get the root as one file.
    ...shared,
    entry: { index: 'src/index.ts' },
    format: ['cjs'],
    dts: true,
  },
  {
    ...shared,
    entry: { wasm: 'src/index.ts' },
    format: ['esm'],
    // Taken out of tsup's own externals (which would keep the name as is) so that ortWasm sees it.
    noExternal: ['protobufjs', 'long', /^onnxruntime-web$/],
    esbuildPlugins: [ortWasm],
  },
  {
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    platform: 'node',
    external: ['onnxruntime-web', /^node:/],
    noExternal: ['protobufjs', 'long'],
    banner: { js: '#!/usr/bin/env node' },
  },
]);
