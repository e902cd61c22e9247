// Browser suite: runs test/browser/suite.js in headless Chromium against the built package.
import { existsSync } from 'node:fs';
import { chromiumCandidates, chromiumPath, runPage } from './harness.mjs';

const inCI = /^(1|true)$/i.test(process.env.CI ?? '');

if (!chromiumPath) {
  const msg = `no Chromium found (looked at ${chromiumCandidates.join(', ')}); install it with 'apt-get install -y chromium' or set CHROMIUM_PATH`;
  if (inCI) {
    console.error(`browser suite FAILED: ${msg}`);
    process.exit(1);
  }
  console.log(`browser suite SKIPPED: ${msg}`);
  process.exit(0);
}
if (!existsSync(new URL('../../dist/index.js', import.meta.url))) {
  console.error("browser suite FAILED: dist/index.js is missing; run 'npm run build' first");
  process.exit(1);
}

let failed = 0;
let passed = 0;
try {
  const results = await runPage('/test/browser/index.html');
  for (const r of results) {
    if (r.ok) passed++;
    else failed++;
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${r.ms.toFixed(0)} ms)${r.ok ? '' : `\n     ${r.error}`}`);
  }
} catch (e) {
  failed++;
  console.error(`browser suite crashed: ${e?.stack ?? e}`);
}
for (const [entry, wasm] of [['autoquant', 'ort-wasm-simd-threaded.jsep.wasm'], ['autoquant/wasm', 'ort-wasm-simd-threaded.wasm']]) {
  const name = `an app importing '${entry}', bundled by esbuild for the browser (no externals), quantizes the MNIST CNN and runs its deploy model`;
  const t0 = performance.now();
  try {
    const esbuild = await import('esbuild');
    const outfile = new URL('./.bundle/app.js', import.meta.url).pathname;
    const dist = new URL(`../../dist/${entry === 'autoquant' ? 'index' : 'wasm'}.js`, import.meta.url).pathname;
    const built = await esbuild.build({ entryPoints: [new URL('./bundle-app.js', import.meta.url).pathname], bundle: true, platform: 'browser', format: 'esm', outfile, alias: { autoquant: dist }, logLevel: 'silent' });
    if (built.errors.length) throw new Error(`esbuild: ${built.errors.map((e) => e.text).join('; ')}`);
    // Which onnxruntime-web build the bundle holds: the wasm file its loader asks for.
    const wasmFiles = [...new Set((await import('node:fs')).readFileSync(outfile, 'utf8').match(/ort-wasm-simd-threaded[a-z.]*\.wasm/g) ?? [])];
    if (wasmFiles.join() !== wasm) throw new Error(`the bundle refers to ${wasmFiles.join(', ')}, expected only ${wasm}`);
    const r = await runPage('/test/browser/bundle.html', { resultKey: '__bundleResult', timeoutMs: 120_000 });
    if (!r.ok) throw new Error(r.error);
    if (r.quantized !== 6 || String(r.logits) !== '4,10') throw new Error(`quantized ${r.quantized} layers, logits ${r.logits}`);
    passed++;
    console.log(`ok   ${name} (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e?.message ?? e}`);
  }
}
/** A check that runs in Node and drives its own Chromium page: counted and printed like the page's tests. */
async function check(name, run) {
  const t0 = performance.now();
  try {
    await run();
    passed++;
    console.log(`ok   ${name} (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e?.message ?? e}`);
  }
}
await check('the HTML report opens from a file without network, and its table and both charts render', async () => {
  const { checkReport } = await import('./report.mjs');
  await checkReport({ screenshot: process.env.REPORT_SCREENSHOT });
});
await check(
  "the app, served by 'autoquant app', quantizes the MNIST CNN from a dropped model and .npy (and from PNG digits with labels, and from build:app's folder on a plain static host), downloads a deploy model within 0.01 top-1 of float, cancels, and requests nothing off its origin",
  async () => {
    const { checkApp } = await import('./app.mjs');
    await checkApp({ screenshot: process.env.APP_SCREENSHOT });
  },
);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
