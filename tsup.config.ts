import { defineConfig } from 'tsup';

// onnxruntime-web stays external: its wasm files are 14-28 MB and users pick the build.
// protobufjs is bundled: its runtime is CommonJS, which a browser cannot import unbundled.
export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'es2022',
    platform: 'neutral',
    external: ['onnxruntime-web', /^node:/],
    noExternal: ['protobufjs', 'long'],
    shims: false,
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
