/**
 * The browser app's parts that run outside a browser: the job (files to feeds, evaluator, run, named
 * downloads) on the real MNIST CNN in onnxruntime, the static build, and `autoquant app`'s server.
 * The page itself is driven in Chromium by test/browser/app.mjs.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { encodeNpy } from '../../src/data/npy.js';
import { filePrefix, jobFeeds, parseLabels, runJob } from '../../src/app/job.js';
import { suggestImageSettings } from '../../src/app/images.js';
import type { Job } from '../../src/app/protocol.js';
import { outputFiles } from '../../src/auto/outputs.js';
import { UsageError } from '../../src/errors.js';
import { CLI, ROOT, runCli } from '../helpers/cli-runner.js';

const MNIST = readFileSync(join(ROOT, 'test/fixtures/mnist_cnn.onnx'));
const buffer = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** Digit-like inputs: 40 rows of [1, 28, 28] in [0, 1]. */
function digitsNpy(rows = 40): ArrayBuffer {
  const x = Float32Array.from({ length: rows * 784 }, (_, i) => (((i * 7919) % 251) / 251) * (i % 5 === 0 ? 1 : 0.2));
  return buffer(encodeNpy(x, [rows, 1, 28, 28]));
}

function job(over: Partial<Job> = {}): Job {
  return { model: { name: 'mnist_cnn.onnx', bytes: buffer(MNIST) }, data: [{ name: 'digits.npy', bytes: digitsNpy() }], maxDrop: 0.05, batchSize: 16, target: 'cpu', precision: '8', ...over };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('the app job', () => {
  it('names its files as the CLI does with --save <model name>', () => {
    expect(filePrefix('mnist_cnn.onnx')).toBe('mnist_cnn');
    expect(filePrefix('C:\\models\\ocr.rec.ONNX')).toBe('ocr.rec');
    expect(filePrefix('.onnx')).toBe('model');
  });

  it('reads labels from a .npy or from text, and names the first label that is not a class index', () => {
    expect(parseLabels({ name: 'l.npy', bytes: buffer(encodeNpy(Int32Array.from([3, 1, 4]), [3])) })).toEqual([3, 1, 4]);
    expect(parseLabels({ name: 'l.txt', bytes: buffer(new TextEncoder().encode('3\n1, 4 ;5\n')) })).toEqual([3, 1, 4, 5]);
    const e = (() => {
      try {
        parseLabels({ name: 'l.csv', bytes: buffer(new TextEncoder().encode('1,2,cat')) });
      } catch (err) {
        return err as Error;
      }
    })();
    expect(e).toBeInstanceOf(UsageError);
    expect(e?.message).toMatch(/l\.csv: label 3 is not a class index/);
    expect(() => parseLabels({ name: 'l.txt', bytes: buffer(new Uint8Array()) })).toThrow(/no labels/);
  });

  it('suggests image settings from an NCHW or NHWC input, and none for other inputs', () => {
    expect(suggestImageSettings({ dims: ['batch', 1, 28, 28] })).toMatchObject({ width: 28, height: 28, channels: 1, layout: 'NCHW' });
    expect(suggestImageSettings({ dims: [1, 48, 320, 3] })).toMatchObject({ width: 320, height: 48, channels: 3, layout: 'NHWC', std: [0.229, 0.224, 0.225] });
    expect(suggestImageSettings({ dims: ['n', 3, 'h', 'w'] })).toMatchObject({ width: 224, height: 224 });
    expect(suggestImageSettings({ dims: [1, 16] })).toBeUndefined();
    expect(suggestImageSettings({ dims: [1, 5, 8, 8] })).toBeUndefined();
  });

  it('batches a .npy by the rows per batch, and refuses two NumPy files or images for a model of several inputs', async () => {
    const feeds = await jobFeeds(job(), [{ name: 'input', type: 'float32', dims: ['batch', 1, 28, 28] }]);
    expect(feeds.map((f) => f.input!.dims[0])).toEqual([16, 16, 8]);
    const two = await rejection(jobFeeds(job({ data: [{ name: 'a.npy', bytes: digitsNpy(2) }, { name: 'b.npy', bytes: digitsNpy(2) }] }), [{ name: 'input' }]));
    expect(two).toBeInstanceOf(UsageError);
    expect(two.message).toMatch(/give one \.npy or \.npz file, or images only \(got 2 files: a\.npy, b\.npy\)/);
    const images = await rejection(jobFeeds(job({ data: [{ name: 'x.png', bytes: new ArrayBuffer(8) }] }), [{ name: 'a' }, { name: 'b' }]));
    expect(images.message).toMatch(/the model has 2 inputs \(a, b\); images feed a model of one input/);
    expect((await rejection(jobFeeds(job({ data: [] }), [{ name: 'input' }]))).message).toMatch(/no calibration data/);
  });

  it('refuses 4-bit weights for the CPU target and labels that do not match the rows, before any session', async () => {
    const bits = await rejection(runJob(job({ precision: '4' }), { executionProviders: ['wasm'], backend: 'wasm', onProgress: () => {} }));
    expect(bits).toBeInstanceOf(UsageError);
    expect(bits.message).toMatch(/4-bit weights need the WebGPU or wasm target/);
    const labels = { name: 'labels.txt', bytes: buffer(new TextEncoder().encode('1 2 3')) };
    const few = await rejection(runJob(job({ labels }), { executionProviders: ['wasm'], backend: 'wasm', onProgress: () => {} }));
    expect(few.message).toMatch(/labels\.txt: 3 labels, but the data gives 3 batch\(es\) of up to 16 rows/);
  });

  it('runs the automatic calibration on the MNIST CNN and returns the files the CLI writes, the models as bytes', async () => {
    const phases = new Set<string>();
    const run = await runJob(job({ allLayers: true }), { executionProviders: ['wasm'], backend: 'wasm', onProgress: (e) => phases.add(e.phase) });
    expect(run.summary.passed).toBe(true);
    expect(run.summary.layers).toHaveLength(6);
    expect(run.summary.metricName).toBe('agreement with float');
    expect(phases).toContain('calibration');
    const { models, reports } = outputFiles({ savePrefix: 'mnist_cnn' });
    expect(run.files.map((f) => f.file)).toEqual([...models, ...reports]);
    expect(run.files.map((f) => f.kind)).toEqual(['fake-quant', 'deploy', 'config', 'record', 'summary', 'report']);
    const deploy = run.files.find((f) => f.kind === 'deploy')!.data as ArrayBuffer;
    expect(new Uint8Array(deploy)).toEqual(run.result.deployModel);
    expect(run.summary.deployBytes).toBe(deploy.byteLength);
    expect(JSON.parse(run.files.find((f) => f.kind === 'summary')!.data as string).passed).toBe(true);
  }, 120_000);

  it('runs the mixed 4/8-bit search for the wasm target: block-quantized weights (MatMulNBits) in the deploy model, bits in the summary', async () => {
    const run = await runJob(job({ target: 'wasm', precision: '4,8' }), { executionProviders: ['wasm'], backend: 'wasm', onProgress: () => {} });
    expect(run.summary.passed).toBe(true);
    const deploy = new Uint8Array(run.files.find((f) => f.kind === 'deploy')!.data as ArrayBuffer);
    expect(Buffer.from(deploy).toString('latin1')).toContain('MatMulNBits');
    const bits = JSON.parse(run.files.find((f) => f.kind === 'summary')!.data as string).weight_bits as Record<string, number>;
    expect(Object.values(bits).length).toBeGreaterThan(0);
    expect(Object.values(bits).every((b) => b === 4 || b === 8)).toBe(true);
  }, 120_000);
});

describe('the static app', () => {
  it("npm run build:app's script writes the page, the worker and onnxruntime-web's files, the worker importing ort from ./ort/", () => {
    const out = join(mkdtempSync(join(tmpdir(), 'aq-app-build-')), 'site');
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-app.mjs'), '--out', out, '--with-ort'], { stdio: 'pipe' });
    for (const f of ['index.html', 'style.css', 'app.js', 'worker.js']) expect(existsSync(join(out, f)), f).toBe(true);
    const ortDist = join(ROOT, 'node_modules/onnxruntime-web/dist');
    for (const f of ['ort.bundle.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm']) {
      expect(statSync(join(out, 'ort', f)).size, f).toBe(statSync(join(ortDist, f)).size);
    }
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).toMatch(/<script type="module" src="\.\/app\.js">/);
    expect(html).toMatch(/Content-Security-Policy" content="default-src 'self'/);
    for (const id of ['model-file', 'data-file', 'run', 'status', 'download-deploy', 'download-report']) expect(html).toContain(`data-testid="${id}"`);
    const worker = readFileSync(join(out, 'worker.js'), 'utf8');
    expect(worker).toMatch(/from"\.\/ort\/ort\.bundle\.min\.mjs"/);
    // The page bundle stays small: it holds none of the library.
    expect(statSync(join(out, 'app.js')).size).toBeLessThan(40_000);
  }, 60_000);
});

/** `autoquant app` with these arguments, until it prints its URL (or exits). */
function serve(args: string[]): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'app', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
  return new Promise((ok, fail) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(http:\/\/127\.0\.0\.1:\d+\/)\n$/.exec(out);
      if (m) ok({ url: m[1]!, stop: () => (child.kill('SIGINT'), exited) });
    });
    child.stderr.on('data', (d) => (err += d));
    void exited.then((code) => fail(new Error(`exited ${code}: ${err}`)));
  });
}

describe('autoquant app', () => {
  it('prints only its URL on stdout, serves the app isolated and locked to its origin, 404s everything else, and stops on Ctrl+C', async () => {
    const { url, stop } = await serve(['--port', '0']);
    try {
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
      const html = await page.text();
      expect(html).toContain('data-testid="run"');
      // The worker obeys only the header, the page its meta tag too: one policy.
      expect(/http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1]).toBe(page.headers.get('content-security-policy'));
      const wasm = await fetch(`${url}ort/ort-wasm-simd-threaded.jsep.wasm`);
      expect(wasm.headers.get('content-type')).toBe('application/wasm');
      expect((await wasm.arrayBuffer()).byteLength).toBe(statSync(join(ROOT, 'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm')).size);
      expect((await fetch(`${url}worker.js`)).status).toBe(200);
      for (const p of ['package.json', 'ort/ort.node.min.js', '..%2fpackage.json', 'dist/cli.js']) expect((await fetch(`${url}${p}`)).status, p).toBe(404);
      expect((await fetch(url, { method: 'POST', body: 'x' })).status).toBe(405);
    } finally {
      expect(await stop()).toBe(0);
    }
  }, 30_000);

  it('refuses a bad port, a port in use and stray arguments, saying what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aq-app-cli-'));
    const bad = await runCli(['app', '--port', '70000'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--port .*a port number from 0 to 65535/);
    const stray = await runCli(['app', 'model.onnx'], dir);
    expect(stray.stderr).toMatch(/app: unexpected argument\(s\) model\.onnx/);
    const { url, stop } = await serve(['--port', '0']);
    try {
      const busy = await runCli(['app', '--port', new URL(url).port], dir);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(/port \d+ on 127\.0\.0\.1 is in use; give another with --port N/);
    } finally {
      await stop();
    }
  }, 30_000);
});
