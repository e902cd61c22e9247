// Builds the browser app (src/app) with esbuild.
//   node scripts/build-app.mjs                      -> dist/app: page, worker, html, css (run by `npm run build`;
//                                                     `autoquant app` serves it with onnxruntime-web's files)
//   node scripts/build-app.mjs --out DIR --with-ort -> a static folder any host can serve (`npm run build:app`
//                                                     writes build/app), onnxruntime-web's three files in DIR/ort/
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const out = resolve(root, outAt >= 0 ? args[outAt + 1] ?? '' : 'dist/app');
const withOrt = args.includes('--with-ort');
if (outAt >= 0 && !args[outAt + 1]) {
  console.error('build-app: --out needs a folder');
  process.exit(1);
}

/** The onnxruntime-web files the worker loads: the JSEP bundle (wasm and WebGPU), the loader its threads start from, and the wasm binary. */
export const ORT_FILES = ['ort.bundle.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];
const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));

// The worker imports onnxruntime-web from ./ort/ beside it, not bundled: its threads start new workers from
// the module's own URL, which inside a bundle would be the app's worker.
const ortBeside = {
  name: 'ort-beside',
  setup(b) {
    b.onResolve({ filter: /^onnxruntime-web(\/.*)?$/ }, () => ({ path: './ort/ort.bundle.min.mjs', external: true }));
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const common = { bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true, sourcemap: true, logLevel: 'warning', legalComments: 'none' };
await build({ ...common, entryPoints: { app: join(root, 'src/app/page.ts') }, outdir: out });
await build({ ...common, entryPoints: { worker: join(root, 'src/app/worker.ts') }, outdir: out, plugins: [ortBeside] });
for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'src/app', f), join(out, f));
if (withOrt) {
  mkdirSync(join(out, 'ort'), { recursive: true });
  for (const f of ORT_FILES) copyFileSync(join(ortDir, f), join(out, 'ort', f));
}
console.log(`build-app: wrote ${out}${withOrt ? ' (with onnxruntime-web in ort/)' : ''}`);
