// How much memory the browser app's tab takes for a large model: a 100 MB float MLP (six 2048×2048 MatMul
// layers) and 16 calibration rows dropped into the app that `autoquant app` serves, run with the CPU target
// (label-free limit), in Debian's Chromium. The tab's renderer processes (the page and its worker) are
// sampled every 100 ms from /proc; the table gives the peak above the idle page, in copies of the model, and
// what performance.measureUserAgentSpecificMemory() finds live once the run is over.
//   node bench/app-memory.mjs [--mb 100]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromiumPath } from '../test/browser/harness.mjs';
import { emitTable } from './report.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const targetMb = arg('mb', 100);
const { encodeModel } = await import('../dist/onnx.js');
const { encodeNpy } = await import('../dist/npy.js');

/** A float MLP of `layers` square MatMul layers of width `w` (deterministic weights), with Relu between. */
function mlp(layers, w) {
  let s = 1;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * (2 / Math.sqrt(w));
  const value = (name) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }, { dimValue: w }] } } } });
  const node = [];
  const initializer = [];
  let x = 'x';
  for (let l = 0; l < layers; l++) {
    const weights = Float32Array.from({ length: w * w }, rnd);
    initializer.push({ name: `w${l}`, dims: [w, w], dataType: 1, rawData: new Uint8Array(weights.buffer) });
    node.push({ opType: 'MatMul', name: `fc${l}`, input: [x, `w${l}`], output: [`h${l}`] });
    x = `h${l}`;
    if (l < layers - 1) {
      node.push({ opType: 'Relu', name: `relu${l}`, input: [x], output: [`r${l}`] });
      x = `r${l}`;
    }
  }
  return encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'mlp', node, initializer, input: [value('x')], output: [value(x)] } });
}

/** Resident bytes of Chromium's renderer processes (pages and their workers; the bench runs the only Chromium). */
function rendererRss() {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('--type=renderer')) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (rss) total += Number(rss[1]) * 1024;
    } catch {
      // the process ended while we looked
    }
  }
  return total;
}

function startApp() {
  const child = spawn(process.execPath, [new URL('../dist/cli.js', import.meta.url).pathname, 'app', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(http:\S+)\n/.exec(out);
      if (m) ok({ url: m[1], child });
    });
  });
}

const w = 2048;
const layers = Math.max(1, Math.round((targetMb * 2 ** 20) / (w * w * 4)));
const dir = mkdtempSync(join(tmpdir(), 'aq-app-mem-'));
const modelFile = join(dir, `mlp${layers}x${w}.onnx`);
const model = mlp(layers, w);
writeFileSync(modelFile, model);
const dataFile = join(dir, 'rows.npy');
let s = 9;
writeFileSync(dataFile, encodeNpy(Float32Array.from({ length: 16 * w }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1), [16, w]));

const { url, child } = await startApp();
const { chromium } = await import('playwright-core');
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-background-networking', '--no-first-run', '--enable-blink-features=ForceEagerMeasureMemory'] });
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForTimeout(1500);
  const idle = rendererRss();
  let peak = idle;
  // The status line names the phase; the peak is kept per phase to say where the memory goes.
  let phase = 'reading the model';
  const byPhase = new Map();
  const timer = setInterval(() => {
    const rss = rendererRss();
    peak = Math.max(peak, rss);
    byPhase.set(phase, Math.max(byPhase.get(phase) ?? 0, rss));
  }, 100);
  const phases = setInterval(() => {
    page.locator('[data-testid=status]').textContent().then((t) => (phase = /^([a-z-]+):/.exec(t ?? '')?.[1] ?? phase), () => {});
  }, 100);
  const t0 = performance.now();
  await page.setInputFiles('[data-testid=model-file]', modelFile);
  await page.waitForFunction(() => /quantizable layers|^error/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.setInputFiles('[data-testid=data-file]', dataFile);
  await page.locator('[data-testid=run]').click();
  await page.waitForFunction(() => /^(done|error|finished without)/.test(document.querySelector('[data-testid=status]')?.textContent ?? ''), null, { timeout: 590_000, polling: 250 });
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  clearInterval(phases);
  const status = await page.locator('[data-testid=status]').textContent();
  // What stays live after the run (the browser collects garbage first; the worker's WebAssembly heap included).
  const live = await page.evaluate(async () => (await performance.measureUserAgentSpecificMemory()).bytes);
  const result = await page.locator('[data-testid=result]').textContent();
  const mb = (b) => (b / 2 ** 20).toFixed(0);
  emitTable('app-memory', {
    title: `Browser app, one run of a ${mb(model.length)} MB float MLP (${layers} MatMul ${w}×${w}), CPU target, 16 rows, label-free limit 0.01: the tab's renderer memory (page and worker, resident, sampled every 100 ms), Chromium ${browser.version()}`,
    header: ['model MB', 'idle tab MB', 'peak tab MB', 'peak above idle MB', 'copies of the model', 'live after the run MB', 'seconds', 'status'],
    align: ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: [[mb(model.length), mb(idle), mb(peak), mb(peak - idle), ((peak - idle) / model.length).toFixed(2), mb(live), seconds.toFixed(1), status]],
    note: `Result line: ${result}. Peak above idle by phase (MB): ${[...byPhase].map(([p, v]) => `${p} ${mb(v - idle)}`).join(', ')}.`,
  });
} finally {
  await browser.close();
  child.kill('SIGTERM');
}
