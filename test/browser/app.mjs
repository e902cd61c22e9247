// The browser app end to end, as a person uses it: `autoquant app` serves it from the built package,
// a real Chromium (playwright-core) drops the MNIST CNN and 64 calibration digits as a .npy through the
// page's data-testid hooks, runs, and downloads the deploy model; onnxruntime-node then checks its top-1
// accuracy on 300 held-out digits against the float model's. Every request the page makes is recorded:
// none may leave the app's origin.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromiumPath } from './harness.mjs';

const root = new URL('../../', import.meta.url);
const fixture = new URL('test/fixtures/mnist_cnn.onnx', root).pathname;

/** Starts `autoquant app --port 0` and resolves with its URL (the first line on stdout) and the process. */
function startApp() {
  const child = spawn(process.execPath, [new URL('dist/cli.js', root).pathname, 'app', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((ok, fail) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(out);
      if (m) ok({ url: m[1], child });
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => fail(new Error(`autoquant app exited with ${code} before printing its URL: ${err}${out}`)));
    setTimeout(() => fail(new Error(`autoquant app printed no URL in 20 s: ${err}${out}`)), 20_000);
  });
}

/** Top-1 accuracy of `model` (bytes) on the demo's 300 held-out digits, in onnxruntime-node. */
async function accuracy(ort, model, images, labels) {
  const session = await ort.InferenceSession.create(model);
  try {
    const x = Float32Array.from(images.data, (v) => v / 255);
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [labels.length, 1, 28, 28]) });
    const logits = out[session.outputNames[0]].data;
    const classes = logits.length / labels.length;
    let correct = 0;
    for (let r = 0; r < labels.length; r++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
      if (best === labels[r]) correct++;
    }
    return correct / labels.length;
  } finally {
    await session.release();
  }
}

const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** An 8-bit greyscale PNG of `pixels` (rows of `width`), as a camera roll would hand the app one. */
function png(pixels, width, height) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (grey), no interlace
  const raw = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) Buffer.from(pixels.subarray(y * width, (y + 1) * width)).copy(raw, y * (width + 1) + 1);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/** A plain static server for a folder: no isolation headers, as a simple host would serve `npm run build:app`'s output. */
async function serveStatic(dir) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm' };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname.replace(/\/$/, '/index.html');
    try {
      if (path.includes('..')) throw new Error('outside');
      const body = readFileSync(join(dir, path));
      res.writeHead(200, { 'Content-Type': types[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

const statusOf = (page) => page.locator('[data-testid=status]').textContent();

/** Waits until the status line settles on a final line (done, an error, cancelled) and returns it. */
async function finalStatus(page, timeout) {
  await page.waitForFunction(() => /^(done|error|finished without|cancelled)/.test(document.querySelector('[data-testid=status]')?.textContent ?? ''), null, { timeout, polling: 250 });
  return statusOf(page);
}

export async function checkApp({ screenshot } = {}) {
  const npy = await import('../../dist/npy.js');
  const digits = await npy.parseNpz(new Uint8Array(readFileSync(new URL('demo/digits.npz', root))), 'digits.npz');
  const dir = mkdtempSync(join(tmpdir(), 'aq-app-'));
  const calib = join(dir, 'calibration.npy');
  writeFileSync(calib, npy.encodeNpy(Float32Array.from(digits.get('calibration').data, (v) => v / 255), [64, 1, 28, 28]));
  const notAModel = join(dir, 'digits.onnx');
  writeFileSync(notAModel, readFileSync(calib));

  const { url, child } = await startApp();
  // The app's own origins: the server's, and the static host's once it starts.
  const origins = new Set([new URL(url).origin]);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const foreign = [];
    const pageErrors = [];
    context.on('request', (r) => {
      const u = r.url();
      if (![...origins].some((o) => u.startsWith(`${o}/`)) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(url);

    // Keyboard first: the first Tab reaches the model's file input, and every control has a name.
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.getAttribute('data-testid'));
    if (focused !== 'model-file') throw new Error(`the first Tab focuses ${focused}, not the model's file input`);
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, button')].filter((el) => !el.closest('label') && !el.getAttribute('aria-label') && !el.textContent?.trim()).map((el) => el.id));
    if (unnamed.length) throw new Error(`controls without a label: ${unnamed.join(', ')}`);

    // A file that is not a model: said in words, and the page keeps working.
    await page.setInputFiles('[data-testid=model-file]', notAModel);
    await page.waitForFunction(() => /^error/.test(document.querySelector('[data-testid=status]')?.textContent ?? ''), null, { timeout: 30_000 });
    const bad = await statusOf(page);
    if (!/digits\.onnx|ONNX|protobuf|model/i.test(bad)) throw new Error(`a .npy given as the model: the status says '${bad}'`);
    if (!(await page.locator('[data-testid=run]').isDisabled())) throw new Error('Run is enabled with no usable model');

    await page.setInputFiles('[data-testid=model-file]', fixture);
    await page.waitForFunction(() => /quantizable layers/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? ''), null, { timeout: 30_000 });
    await page.setInputFiles('[data-testid=data-file]', calib);
    await page.locator('[data-testid=run]').click();
    const status = await finalStatus(page, 240_000);
    if (!/^done/.test(status)) throw new Error(`the run ended with '${status}'`);

    const [deploy] = await Promise.all([page.waitForEvent('download'), page.locator('[data-testid=download-deploy]').click()]);
    if (deploy.suggestedFilename() !== 'mnist_cnn_deploy_model.onnx') throw new Error(`the deploy download is named ${deploy.suggestedFilename()}`);
    const deployFile = join(dir, deploy.suggestedFilename());
    await deploy.saveAs(deployFile);
    const [report] = await Promise.all([page.waitForEvent('download'), page.locator('[data-testid=download-report]').click()]);
    const reportFile = join(dir, report.suggestedFilename());
    await report.saveAs(reportFile);
    if (report.suggestedFilename() !== 'mnist_cnn_report.html' || !/<html/i.test(readFileSync(reportFile, 'utf8'))) throw new Error(`the report download is ${report.suggestedFilename()}, not an HTML report`);

    // The same model from 300 labelled digit images (PNG, decoded by the browser) with every layer in
    // play and top-1 accuracy allowed to drop by 0.002: the search ranks the layers, and the chart fills in.
    const images = digits.get('images');
    const labels = Array.from(digits.get('labels').data);
    const pngs = labels.map((_, i) => {
      const f = join(dir, `digit-${String(i).padStart(3, '0')}.png`);
      writeFileSync(f, png(images.data.subarray(i * 784, (i + 1) * 784), 28, 28));
      return f;
    });
    const labelsFile = join(dir, 'labels.txt');
    writeFileSync(labelsFile, labels.join('\n') + '\n');
    await page.setInputFiles('[data-testid=data-file]', pngs);
    await page.locator('[data-testid=all-layers]').check();
    await page.locator('[data-testid=metric-labels]').check();
    await page.setInputFiles('[data-testid=labels-file]', labelsFile);
    await page.locator('[data-testid=max-drop]').fill('0.002');
    await page.locator('[data-testid=batch-size]').fill('100');
    await page.locator('[data-testid=run]').click();
    const labelled = await finalStatus(page, 240_000);
    if (!/^done/.test(labelled)) throw new Error(`the labelled image run ended with '${labelled}'`);
    const bars = await page.locator('[data-testid=sensitivity-chart] rect').count();
    if (bars !== 6) throw new Error(`the sensitivity chart shows ${bars} bars, not one per layer (6)`);
    const result = await page.locator('[data-testid=result]').textContent();
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    // A phone's width: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`at 390 px wide the page is ${overflow} px wider than the screen`);
    if (screenshot) await page.screenshot({ path: screenshot.replace(/(\.png)?$/, '-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1200, height: 900 });

    // Cancel stops a run, and the page can run again.
    await page.locator('[data-testid=run]').click();
    await page.waitForFunction(() => /^(calibration|float-evaluation|quantized-evaluation)/.test(document.querySelector('[data-testid=status]')?.textContent ?? ''), null, { timeout: 60_000, polling: 50 });
    await page.locator('[data-testid=cancel]').click();
    const cancelled = await finalStatus(page, 30_000);
    if (cancelled !== 'cancelled') throw new Error(`after Cancel the status says '${cancelled}'`);
    if (await page.locator('[data-testid=run]').isDisabled()) throw new Error('Run stays disabled after a cancelled run');

    const ort = (await import('onnxruntime-node')).default;
    const floatAcc = await accuracy(ort, readFileSync(fixture), images, labels);
    const deployBytes = readFileSync(deployFile);
    const int8Acc = await accuracy(ort, deployBytes, images, labels);
    if (!(Math.abs(floatAcc - int8Acc) <= 0.01)) throw new Error(`deploy model top-1 ${int8Acc} against float ${floatAcc}: more than 0.01 apart`);
    if (!/QuantizeLinear|DequantizeLinear/.test(deployBytes.toString('latin1'))) throw new Error('the deploy model holds no QuantizeLinear/DequantizeLinear node');
    // The static folder of `npm run build:app`, from a host that sends no isolation headers (one thread).
    const site = join(dir, 'site');
    execFileSync(process.execPath, [new URL('scripts/build-app.mjs', root).pathname, '--out', site, '--with-ort'], { stdio: 'pipe' });
    const host = await serveStatic(site);
    origins.add(new URL(host.url).origin);
    try {
      const plain = await context.newPage();
      plain.on('pageerror', (e) => pageErrors.push(`static host: ${e.message}`));
      await plain.goto(host.url);
      await plain.setInputFiles('[data-testid=model-file]', fixture);
      await plain.waitForFunction(() => /quantizable layers/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? ''), null, { timeout: 30_000 });
      await plain.setInputFiles('[data-testid=data-file]', calib);
      await plain.locator('[data-testid=run]').click();
      const onStatic = await finalStatus(plain, 240_000);
      if (!/^done/.test(onStatic)) throw new Error(`on a plain static host the run ended with '${onStatic}'`);
      await plain.close();
    } finally {
      host.close();
    }
    if (foreign.length) throw new Error(`the page made requests off its origin: ${foreign.slice(0, 5).join(', ')}`);
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
    return { floatAcc, int8Acc, status, labelled, result };
  } finally {
    await browser.close();
    child.kill('SIGTERM');
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await checkApp({ screenshot: process.env.APP_SCREENSHOT }));
}
