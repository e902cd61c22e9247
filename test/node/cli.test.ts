/**
 * End-to-end tests of the command-line tool: the built dist/cli.js run as a child process in a
 * temp dir, asserting on exit status, stdout, stderr and the files it writes. Needs `npm run build`.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy, encodeNpz } from '../../src/data/npy.js';
import { createSession, loadModel, Tensor } from '../../src/index.js';
import { opsetVersion } from '../../src/subpaths/onnx.js';
import { builtCli, DIST_INDEX_URL, removeTempDirs, ROOT, runCli, tempDir } from '../helpers/cli-runner.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';
import { outlierInputs, outlierModel, WIDTH } from '../helpers/outlier-model.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const MNIST = readFileSync(join(ROOT, 'test/fixtures/mnist_cnn.onnx'));

const concat = (xs: Float32Array[]): Float32Array => {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of xs) (out.set(x, o), (o += x.length));
  return out;
};

/** `batches` × `rows` outlier-model inputs as one [batches·rows, 16] float32 .npy. */
function outlierNpy(batches: number, rows: number, seed: number): Uint8Array {
  return encodeNpy(concat(outlierInputs(batches, rows, seed)), [batches * rows, WIDTH]);
}

const json = (dir: string, file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8'));
const onnxFiles = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.onnx') && f !== 'model.onnx') : []);

/** Reads the float32 .npy files the tests write (format 1.0), relative to the module. */
const NPY_READER = `
import { readFileSync } from 'node:fs';
function readF32(name) {
  const b = readFileSync(new URL(name, import.meta.url));
  const hl = b[8] | (b[9] << 8);
  const header = b.toString('latin1', 10, 10 + hl);
  const shape = /'shape': \\(([^)]*)\\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const raw = b.subarray(10 + hl);
  return { data: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)), shape };
}
`;

/** Top-1 accuracy of the MNIST CNN on held-out digits; the default export is the subclass itself. */
const MNIST_EVALUATOR = `
import { AutoCalibrationEvaluator, Tensor } from ${JSON.stringify(DIST_INDEX_URL)};
${NPY_READER}
const digits = readF32('./digits.npy');
const calib = readF32('./calib.npy');
const labels = JSON.parse(readFileSync(new URL('./labels.json', import.meta.url), 'utf8'));

export default class MnistTop1 extends AutoCalibrationEvaluator {
  constructor(limit) {
    super(limit);
    console.error('evaluator limit ' + JSON.stringify(this.limit));
  }
  async calibration(session) {
    await session.run({ input: new Tensor('float32', calib.data, calib.shape) });
  }
  async evaluate(session) {
    const { logits } = await session.run({ input: new Tensor('float32', digits.data, digits.shape) });
    const d = logits.data;
    let correct = 0;
    for (let r = 0; r < labels.length; r++) {
      let best = 0;
      for (let j = 1; j < 10; j++) if (d[r * 10 + j] > d[r * 10 + best]) best = j;
      if (best === labels[r]) correct++;
    }
    return correct / labels.length;
  }
}
`;

/** An evaluator for the outlier model (input 'x' [N,16]); `body` completes the module. */
const outlierEvaluatorModule = (body: string) => `
import { AutoCalibrationEvaluator, Tensor } from ${JSON.stringify(DIST_INDEX_URL)};
${NPY_READER}
const inputs = readF32('./inputs.npy');
class OutlierEvaluator extends AutoCalibrationEvaluator {
  calls = 0;
  async calibration(session) {
    await session.run({ x: new Tensor('float32', inputs.data, inputs.shape) });
  }
  async evaluate(session) {
    this.calls++;
    const out = await session.run({ x: new Tensor('float32', inputs.data, inputs.shape) });
    return this.score(out[session.outputNames[0]].data);
  }
  score(data) {
    if (!this.reference) this.reference = data;
    let dot = 0, a = 0, b = 0;
    for (let i = 0; i < data.length; i++) (dot += data[i] * this.reference[i], a += data[i] ** 2, b += this.reference[i] ** 2);
    const norm = Math.sqrt(a * b);
    return norm > 0 ? dot / norm : 0; // the fully int8 outlier model outputs zeros
  }
}
${body}
`;

beforeAll(() => {
  builtCli(); // throws "run `npm run build`" when dist/cli.js is missing
});
afterAll(removeTempDirs);

describe('autoquant CLI: usage', () => {
  it('--help prints usage naming the three commands and exits 0', async () => {
    const dir = tempDir();
    for (const args of [['--help'], ['-h'], []]) {
      const r = await runCli(args, dir);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/Usage:/);
      for (const cmd of ['config', 'quantize', 'auto']) expect(r.stdout).toContain(`autoquant ${cmd} <model.onnx>`);
      expect(r.stdout).toMatch(/Exit status: 0 success, 1 error, 2 no acceptable model/);
    }
  });

  it("--version prints package.json's version", async () => {
    const r = await runCli(['--version'], tempDir());
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('an unknown command exits 1 and names it', async () => {
    const r = await runCli(['quantise', 'model.onnx'], tempDir());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown command 'quantise'/);
    expect(r.stderr).toMatch(/config, quantize, auto/);
    expect(r.stdout).toBe('');
  });

  it('a mistyped option exits 1 and names the option', async () => {
    const dir = tempDir({ 'model.onnx': outlierModel(4, 1).bytes, 'calib.npy': outlierNpy(1, 16, 7) });
    const q = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--save', 'out/m', '--batch-sise', '8'], dir);
    expect(q.code).toBe(1);
    expect(q.stderr).toMatch(/unknown option --batch-sise \(did you mean --batch-size\?\)/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
    const a = await runCli(['auto', 'model.onnx', '--data', 'calib.npy', '--max-dorp', '0.1'], dir);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/unknown option --max-dorp \(did you mean --max-drop\?\)/);
  });

  it('a mistyped config option exits 1 without writing the config file', async () => {
    const dir = tempDir({ 'model.onnx': outlierModel(4, 1).bytes });
    const r = await runCli(['config', 'model.onnx', '-o', 'config.json', '--skpi', 'layer0'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown option --skpi \(did you mean --skip\?\)/);
    // A usage error should have no side effects (quantize and auto check options before any work).
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
  });

  it('a missing or unreadable model path exits 1', async () => {
    const dir = tempDir();
    for (const cmd of ['config', 'quantize', 'auto']) {
      const r = await runCli([cmd], dir);
      expect(r.code, cmd).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`${cmd}: the model path is missing`));
    }
    const r = await runCli(['config', 'nope.onnx', '-o', 'config.json'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope\.onnx/);
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
  });
});

describe('autoquant config', () => {
  const { bytes, names } = outlierModel();

  it('writes a valid JSON config listing every layer', async () => {
    const dir = tempDir({ 'model.onnx': bytes });
    const r = await runCli(['config', 'model.onnx', '-o', 'config.json'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote config\.json: 8 quantizable layers/);
    const config = json(dir, 'config.json');
    expect(config.version).toBe(1);
    for (const n of names) expect(config[n].quant_enable, n).toBe(true);
    expect(Object.keys(config).filter((k) => typeof config[k] === 'object' && !Array.isArray(config[k])).sort()).toEqual([...names].sort());
  });

  it('--json prints a JSON summary; --skip turns layers off; --batch-num and --act-algo are written', async () => {
    const dir = tempDir({ 'model.onnx': bytes });
    const r = await runCli(['config', 'model.onnx', '-o', 'sub/config.json', '--skip', 'layer0,layer5', '--batch-num', '3', '--act-algo', 'minmax', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.config).toBe('sub/config.json');
    expect([...summary.layers].sort()).toEqual([...names].sort());
    const config = json(dir, 'sub/config.json');
    expect(config.batch_num).toBe(3);
    for (const n of names) expect(config[n].quant_enable, n).toBe(n !== 'layer0' && n !== 'layer5');
    expect(config.layer1.activation_quant_params.act_algo).toBe('minmax');
  });

  it('a bad --act-algo exits 1 and lists the choices', async () => {
    const dir = tempDir({ 'model.onnx': bytes });
    const r = await runCli(['config', 'model.onnx', '-o', 'config.json', '--act-algo', 'foo'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--act-algo must be one of ifmr, hfmg, minmax, percentile, got 'foo'/);
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
  });

  it('--skip with a layer the model does not have exits 1', async () => {
    const dir = tempDir({ 'model.onnx': bytes });
    const r = await runCli(['config', 'model.onnx', '-o', 'config.json', '--skip', 'layer99'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/layer99/);
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
  });
});

describe('autoquant quantize', () => {
  const { bytes, names } = outlierModel();

  it('calibrates on a .npy and writes fake-quant and deploy models that load and run', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npy': outlierNpy(2, 64, 7) });
    const c = await runCli(['config', 'model.onnx', '-o', 'config.json', '--batch-num', '2'], dir);
    expect(c.code, c.stderr).toBe(0);
    const r = await runCli(['quantize', 'model.onnx', '--config', 'config.json', '--data', 'calib.npy', '--batch-size', '64', '--save', 'out/model'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/calibration: batch 2\/2/);
    expect(r.stdout).toMatch(/^quantized 8 of 8 layers; model [\d.]+ KiB → deploy [\d.]+ KiB \([\d.]+%\)$/m);
    expect(r.stdout).toMatch(/^  quantized layer0 \(MatMul\): per-channel$/m);
    expect(r.stdout).toMatch(/^wrote out\/model_fake_quant_model\.onnx, out\/model_deploy_model\.onnx, out\/model_record\.json, out\/model_report\.html, out\/model_autoquant\.log$/m);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(['model_autoquant.log', 'model_deploy_model.onnx', 'model_fake_quant_model.onnx', 'model_record.json', 'model_report.html']);
    const record = json(dir, 'out/model_record.json');
    expect(typeof record).toBe('object');
    const x = outlierInputs(1, 4, 99)[0]!;
    for (const f of ['model_fake_quant_model.onnx', 'model_deploy_model.onnx']) {
      const model = await loadModel(join(dir, 'out', f));
      expect(model.graph?.node?.length, f).toBeGreaterThan(0);
      const session = await createSession(readFileSync(join(dir, 'out', f)));
      const out = await session.run({ x: new Tensor('float32', x, [4, WIDTH]) });
      expect(out[session.outputNames[0]!]!.dims, f).toEqual([4, WIDTH]);
      await session.release();
    }
  });

  it('prints the parity of the deploy model to the fake-quant one, carries it in --json, and takes --force', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npy': outlierNpy(2, 64, 7) });
    const r = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--batch-size', '64', '--save', 'out/model'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^parity: deploy model against fake-quant on onnxruntime-(node|web)[^,]*, output \S+: cosine (0\.999\d+|1\.0+), max \|difference\| \S+ \(1 calibration batch\)$/m);
    const j = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--batch-size', '64', '--save', 'out/forced', '--force', '--json'], dir);
    expect(j.code, j.stderr).toBe(0);
    const parity = (JSON.parse(j.stdout) as { parity: { cosine: number; batches: number } }).parity;
    expect(parity.cosine).toBeGreaterThanOrEqual(0.999);
    expect(parity.batches).toBe(1);
    const bad = await runCli(['config', 'model.onnx', '-o', 'config.json', '--force'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--force/);
  });

  it('--weight-rounding adaptive records a rounding for every weighted layer and prints what it changed; a bad value lists the choices', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npy': outlierNpy(2, 64, 7) });
    const r = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--batch-size', '64', '--batch-num', '2', '--save', 'out/model', '--weight-rounding', 'adaptive'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^adaptive rounding changed \d+ of \d+ layers; output error on the calibration batches \S+ → \S+$/m);
    const record = json(dir, 'out/model_record.json') as { layers: Record<string, { round_w?: unknown }> };
    for (const name of names.filter((n) => record.layers[n])) expect(typeof record.layers[name]!.round_w, name).toBe('string');
    const bad = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--save', 'out/b', '--weight-rounding', 'up'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--weight-rounding must be one of nearest, adaptive, got 'up'/);
  });

  it('--channel-splitting sets channel_splitting: the planted outlier channel is split in the record; a value outside [0, 1] is a usage error', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npy': outlierNpy(2, 64, 7) });
    const r = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--batch-size', '64', '--batch-num', '2', '--save', 'out/model', '--channel-splitting', '0.25'], dir);
    expect(r.code, r.stderr).toBe(0);
    const record = json(dir, 'out/model_record.json') as { layers: Record<string, { split_d?: number[] }> };
    const split = Object.keys(record.layers).filter((n) => record.layers[n]!.split_d);
    expect(split).toEqual(['layer3']);
    expect(record.layers.layer3!.split_d![0]).toBeGreaterThan(1);
    const config = await runCli(['config', 'model.onnx', '-o', '-', '--channel-splitting', '0.0625'], dir);
    expect((JSON.parse(config.stdout) as { channel_splitting: number }).channel_splitting).toBe(0.0625);
    const bad = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--save', 'out/b', '--channel-splitting', '2'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--channel-splitting must be a number in \[0, 1\]/);
  });

  it('--runtime web and --runtime node write the same record (to float rounding: the engines sum in different orders); an unknown runtime is a usage error', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npy': outlierNpy(2, 64, 7) });
    const records = [];
    for (const runtime of ['web', 'node']) {
      const r = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--batch-size', '64', '--batch-num', '2', '--save', `out/${runtime}`, '--runtime', runtime], dir);
      expect(r.code, r.stderr).toBe(0);
      records.push(json(dir, `out/${runtime}_record.json`));
    }
    const far: string[] = [];
    const compare = (a: unknown, b: unknown, path: string) => {
      if (typeof a === 'number' && typeof b === 'number') {
        if (Math.abs(a - b) > 1e-5 * Math.max(Math.abs(a), Math.abs(b), 1e-6)) far.push(`${path}: ${a} vs ${b}`);
      } else if (a && typeof a === 'object') {
        expect(Object.keys(b as object).sort(), path).toEqual(Object.keys(a).sort());
        for (const k of Object.keys(a)) compare((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      } else expect(b, path).toEqual(a);
    };
    compare(records[0], records[1], 'record');
    expect(far).toEqual([]);
    const bad = await runCli(['quantize', 'model.onnx', '--data', 'calib.npy', '--save', 'out/x', '--runtime', 'python'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--runtime must be one of web, node, got 'python'/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it('reads a .npz keyed by the input name, and --json prints the summary', async () => {
    const npz = encodeNpz({ x: { data: concat(outlierInputs(1, 32, 7)), shape: [32, WIDTH] } });
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npz': npz });
    const r = await runCli(['quantize', 'model.onnx', '--data', 'calib.npz', '--save', 'm', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect([...summary.quantizedLayers].sort()).toEqual([...names].sort());
    expect(summary.files).toEqual(['m_fake_quant_model.onnx', 'm_deploy_model.onnx', 'm_record.json', 'm_report.html', 'm_autoquant.log']);
    for (const f of summary.files) expect(existsSync(join(dir, f)), f).toBe(true);
  });

  it('a .npz without an array for the input exits 1 naming the input', async () => {
    const npz = encodeNpz({ y: { data: concat(outlierInputs(1, 32, 7)), shape: [32, WIDTH] } });
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npz': npz });
    const r = await runCli(['quantize', 'model.onnx', '--data', 'calib.npz', '--save', 'out/m'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no array for model input\(s\) x \(arrays: y\)/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('a config with an unknown layer exits 1, lists the problem and writes nothing', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'calib.npy': outlierNpy(1, 32, 7) });
    expect((await runCli(['config', 'model.onnx', '-o', 'config.json'], dir)).code).toBe(0);
    const config = json(dir, 'config.json');
    config.layer99 = structuredClone(config.layer0);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const r = await runCli(['quantize', 'model.onnx', '--config', 'config.json', '--data', 'calib.npy', '--save', 'out/model'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid quantization config in config\.json/);
    expect(r.stderr).toMatch(/- layer 'layer99' is not a quantizable layer of the model/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // a user error, not a stack trace
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});

describe('autoquant auto --data (label-free fidelity)', () => {
  const { bytes, fragile, names } = outlierModel();
  const autoArgs = ['auto', 'model.onnx', '--data', 'inputs.npy', '--fidelity', 'cosine', '--max-drop', '0.002', '--batch-size', '64', '--batch-num', '2'];
  // AMCT's search, where float is the only way out (the default repairs are tested below).
  const searchArgs = [...autoArgs, '--repairs', 'none'];

  it('falls back exactly the fragile layer, writes the six files and the log, and reports progress', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(2, 64, 11) });
    const r = await runCli([...searchArgs, '--save', 'out/m'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^passed: 7 of 8 layers .*; 1 fell back to float: layer3$/m);
    expect(r.stdout).toMatch(/^wrote out\/m_fake_quant_model\.onnx/m);
    expect(readdirSync(join(dir, 'out')).sort()).toEqual(
      ['m_auto_calibration.json', 'm_autoquant.log', 'm_deploy_model.onnx', 'm_fake_quant_model.onnx', 'm_quant_config.json', 'm_record.json', 'm_report.html'],
    );
    const report = json(dir, 'out/m_auto_calibration.json');
    expect(report.passed).toBe(true);
    expect(report.fallback_layers).toEqual([fragile]);
    expect([...report.quantized_layers].sort()).toEqual(names.filter((n) => n !== fragile).sort());
    expect(report.history.length).toBe(report.evaluations);
    expect(json(dir, 'out/m_quant_config.json')[fragile].quant_enable).toBe(false);
    // Progress on stderr: the float evaluation, calibration, and every later evaluation.
    expect(r.stderr).toMatch(/^float-evaluation: float model: metric 1\.000000/m);
    expect(r.stderr).toMatch(/^calibration: batch 2\/2$/m);
    expect(r.stderr).not.toMatch(/calibration: calibration|ranking: ranking/);
    expect(r.stderr).toMatch(/^quantized-evaluation: all layers int8: metric [\d.]+, loss [\d.]+ \(not ok/m);
    expect(r.stderr).toMatch(/^search: 1 layer\(s\) in float: .*\(ok/m);
    const evaluationLines = r.stderr.split('\n').filter((l) => /^(float-evaluation|quantized-evaluation|search): /.test(l));
    expect(evaluationLines.length).toBe(report.evaluations);
    await loadModel(join(dir, 'out/m_deploy_model.onnx'));
    await loadModel(join(dir, 'out/m_fake_quant_model.onnx'));
  });

  it('--json prints one parseable JSON object', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(2, 64, 11) });
    const r = await runCli([...searchArgs, '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').length).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.passed).toBe(true);
    expect(report.fallback_layers).toEqual([fragile]);
    expect(report.evaluations).toBe(report.history.length);
    expect(report.history[0].fallback_layers).toBeNull();
    expect(report.history[1].fallback_layers).toEqual([]);
    expect(report.files).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['inputs.npy', 'model.onnx']);
  });

  it('by default repairs the fragile layer with 16-bit activations; --repairs takes a list or none', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(2, 64, 11) });
    const r = await runCli([...autoArgs, '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.fallback_layers).toEqual([]);
    expect(report.repaired_layers).toEqual([{ layer: fragile, repair: 'int16', detail: '16-bit activations' }]);
    expect(r.stderr).toMatch(/^repair: 0 layer\(s\) in float, 1 repaired: .*\(ok/m);
    const observerOnly = JSON.parse((await runCli([...autoArgs, '--repairs', 'observer', '--json'], dir)).stdout);
    expect(observerOnly.fallback_layers).toEqual([fragile]);
    const bad = await runCli([...autoArgs, '--repairs', 'int8'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--repairs must be 'none' or a comma-separated list of weights, rounding, observer, int16, got 'int8'/);
  });

  it('--refine tries the layer left in float back in int8 and reports it in refined_layers', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(2, 64, 11) });
    const r = await runCli([...searchArgs, '--refine', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.fallback_layers).toEqual([fragile]);
    expect(report.refined_layers).toEqual([]);
    expect(report.history.at(-1).fallback_layers).toEqual([]);
    expect(r.stderr).toMatch(/^refine: all layers int8: metric [\d.]+, loss [\d.]+ \(not ok/m);
  });

  it("--ranking layer-output with --repairs none is AMCT's search (the fragile layer in float); a bad --ranking lists the choices", async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(2, 64, 11) });
    const r = await runCli([...autoArgs, '--repairs', 'none', '--ranking', 'layer-output', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).fallback_layers).toEqual([fragile]);
    expect(r.stderr).toMatch(/^ranking: group \d+\/\d+, batch /m);
    const bad = await runCli([...autoArgs, '--ranking', 'model'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--ranking.*model-output.*layer-output/);
  });

  it('--fallback int16 keeps the fragile layer quantized with 16-bit activations', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(2, 64, 11) });
    const r = await runCli([...autoArgs, '--fallback', 'int16', '--save', 'out/m', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.passed).toBe(true);
    expect(report.message).toMatch(/1 fell back to int16: layer3$/);
    expect(report.fallback_layers).toEqual([fragile]);
    expect([...report.quantized_layers].sort()).toEqual([...names].sort());
    const config = json(dir, 'out/m_quant_config.json');
    expect(config[fragile].quant_enable).toBe(true);
    expect(config[fragile].activation_quant_params.num_bits).toBe(16);
    expect(json(dir, 'out/m_record.json').layers[fragile].num_bits_d).toBe(16);
    const deploy = await loadModel(join(dir, 'out/m_deploy_model.onnx'));
    expect(opsetVersion(deploy)).toBe(21);

    const bad = await runCli([...autoArgs, '--fallback', 'int8'], dir);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--fallback must be one of float, int16, got 'int8'/);
  });

  it('exits 2 and writes no model when every layer would have to fall back', async () => {
    const dir = tempDir({ 'model.onnx': outlierModel(4, 1).bytes, 'inputs.npy': outlierNpy(1, 64, 11) });
    const r = await runCli(['auto', 'model.onnx', '--data', 'inputs.npy', '--fidelity', 'cosine', '--max-drop', '0', '--save', 'out/m'], dir);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toMatch(/^FAILED: .*every layer would have to fall back to float, so no quantized model is produced/m);
    expect(onnxFiles(dir)).toEqual([]);
    const report = json(dir, 'out/m_auto_calibration.json');
    expect(report.passed).toBe(false);
    expect(readdirSync(join(dir, 'out')).every((f) => /\.(json|html|log)$/.test(f))).toBe(true);
  });

  it('needs exactly one of --evaluator and --data', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(1, 8, 11), 'eval.mjs': 'export default 1;\n' });
    for (const extra of [['--evaluator', 'eval.mjs', '--data', 'inputs.npy'], []]) {
      const r = await runCli(['auto', 'model.onnx', ...extra, '--save', 'out/m'], dir);
      expect(r.code, extra.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/give exactly one of --evaluator <module> or --data/);
      expect(existsSync(join(dir, 'out'))).toBe(false);
    }
  });
});

describe('autoquant auto --evaluator', () => {
  // The help text promises both forms; the subclass is constructed by the CLI with { maxDrop }.
  const forms: [string, string][] = [
    ['a subclass of AutoCalibrationEvaluator', MNIST_EVALUATOR],
    ['an AutoCalibrationEvaluator instance', MNIST_EVALUATOR.replace('export default class', 'class') + 'export default new MnistTop1({ maxDrop: 0.01 });\n'],
  ];
  for (const [form, source] of forms) {
    it(`loads an evaluator module exporting ${form}; the MNIST CNN passes on the first quantized evaluation`, async () => {
      const n = 300;
      const { x, labels } = heldOutBatch(0, n);
      const dir = tempDir({
        'model.onnx': MNIST,
        'digits.npy': encodeNpy(x, [n, 1, 28, 28]),
        'calib.npy': encodeNpy(trainBatch(0, 64), [64, 1, 28, 28]),
        'labels.json': JSON.stringify(labels),
        'eval.mjs': source,
      });
      const r = await runCli(['auto', 'model.onnx', '--evaluator', './eval.mjs', '--max-drop', '0.01', '--save', 'out/mnist', '--json'], dir);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/evaluator limit \{"maxDrop":0\.01\}/);
      const report = JSON.parse(r.stdout);
      expect(report.passed).toBe(true);
      expect(report.evaluations).toBe(2);
      expect(report.fallback_layers).toEqual([]);
      expect(report.original_metric).toBeGreaterThan(0.9);
      expect(report.original_metric - report.quantized_metric).toBeLessThanOrEqual(0.01);
      expect(readdirSync(join(dir, 'out')).sort()).toEqual(
        ['mnist_auto_calibration.json', 'mnist_autoquant.log', 'mnist_deploy_model.onnx', 'mnist_fake_quant_model.onnx', 'mnist_quant_config.json', 'mnist_record.json', 'mnist_report.html'],
      );
    });
  }

  it('accepts a function returning an evaluator, and passes it the limit', async () => {
    const dir = tempDir({
      'model.onnx': outlierModel(4, 1).bytes,
      'inputs.npy': outlierNpy(1, 32, 11),
      'eval.mjs': outlierEvaluatorModule(`export default (limit) => { console.error('limit ' + JSON.stringify(limit)); return new OutlierEvaluator(limit); };`),
    });
    const r = await runCli(['auto', 'model.onnx', '--evaluator', 'eval.mjs', '--max-relative-drop', '0.25', '--repairs', 'none'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/limit \{"maxRelativeDrop":0\.25\}/);
    expect(r.stdout).toMatch(/^passed: 3 of 4 layers .*; 1 fell back to float: layer1$/m);
  });

  it('an evaluator module whose default export is not an evaluator exits 1 with a clear message', async () => {
    const dir = tempDir({
      'model.onnx': outlierModel(4, 1).bytes,
      'plain.mjs': 'export default { evaluate() { return 1; } };\n',
      'none.mjs': 'export const evaluator = 1;\n',
      'broken.mjs': 'export default (;\n',
    });
    for (const mod of ['plain.mjs', 'none.mjs']) {
      const r = await runCli(['auto', 'model.onnx', '--evaluator', mod, '--save', 'out/m'], dir);
      expect(r.code, mod).toBe(1);
      expect(r.stderr).toContain(`${mod}: the default export must be an evaluator (an AutoCalibrationEvaluator instance or subclass, a plain object with calibration and evaluate, or a function returning one)`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const r = await runCli(['auto', 'model.onnx', '--evaluator', 'broken.mjs'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot load the evaluator module broken\.mjs/);
    const m = await runCli(['auto', 'model.onnx', '--evaluator', 'missing.mjs'], dir);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/cannot load the evaluator module missing\.mjs/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('an evaluator whose evaluate throws exits 1 with the message and writes no file', async () => {
    const dir = tempDir({
      'model.onnx': outlierModel(4, 1).bytes,
      'inputs.npy': outlierNpy(1, 32, 11),
      'eval.mjs': outlierEvaluatorModule(`
class Broken extends OutlierEvaluator {
  async evaluate(session) {
    if (this.calls++ === 1) throw new Error('dataset went away');
    return 1;
  }
}
export default new Broken({ maxDrop: 0.1 });`),
    });
    const r = await runCli(['auto', 'model.onnx', '--evaluator', 'eval.mjs', '--save', 'out/m'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('dataset went away');
    expect(r.stderr).toMatch(/evaluate failed on the model with 0 layer\(s\) in float/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
    expect(onnxFiles(dir)).toEqual([]);
  });
});

describe('autoquant CLI: what a user sees', () => {
  const { bytes } = outlierModel(3, 1);

  it('checks the data shape against the model before calibrating, naming the file and the expected shape', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'wrong.npy': encodeNpy(new Float32Array(8 * 5), [8, 5]) });
    const r = await runCli(['quantize', 'model.onnx', '--data', 'wrong.npy', '--save', 'out/m'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/wrong\.npy: a batch of input 'x' has shape \[8, 5\], but the model declares float32 \[N, 16\]: axis 1 must be 16/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('--json prints errors as JSON on stdout too; -o - prints the config; auto without --save says nothing is written; --quiet silences progress', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(1, 32, 11) });
    const bad = await runCli(['quantize', 'model.onnx', '--data', 'missing.npy', '--save', 'out/m', '--json'], dir);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual({ error: { code: 'FILE_ACCESS', message: expect.stringMatching(/cannot read 'missing\.npy': it does not exist/) } });
    const config = await runCli(['config', 'model.onnx', '-o', '-'], dir);
    expect(config.code).toBe(0);
    expect(JSON.parse(config.stdout).version).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(['inputs.npy', 'model.onnx']);
    const auto = await runCli(['auto', 'model.onnx', '--data', 'inputs.npy', '--max-drop', '0.5'], dir);
    expect(auto.code, auto.stderr).toBe(0);
    expect(auto.stderr).toMatch(/^auto: no --save given: the result is reported here, but no model or report file is written$/m);
    expect(auto.stdout).toMatch(/^  quantized layer0 \(MatMul\)/m);
    const quiet = await runCli(['quantize', 'model.onnx', '--data', 'inputs.npy', '--save', 'out/m', '--quiet'], dir);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(readFileSync(join(dir, 'out/m_report.html'), 'utf8')).toMatch(/<table id="layers">/);
  });
});

describe('autoquant CLI: logging', () => {
  const { bytes } = outlierModel(3, 1);
  it('--verbose prints debug lines, --log-file saves every message with its level, and two level options conflict', async () => {
    const dir = tempDir({ 'model.onnx': bytes, 'inputs.npy': outlierNpy(1, 32, 11) });
    const v = await runCli(['quantize', 'model.onnx', '--data', 'inputs.npy', '--save', 'out/m', '--verbose', '--log-file', 'run.log'], dir);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/^layer layer0 \(MatMul\): quantized, per-channel weights$/m);
    const saved = readFileSync(join(dir, 'run.log'), 'utf8');
    expect(saved).toMatch(/^\S+Z INFO  calibration: batch 1\/1$/m);
    expect(saved).toMatch(/^\S+Z DEBUG layer layer0 \(MatMul\)/m);
    expect(existsSync(join(dir, 'out/m_autoquant.log'))).toBe(false);
    const plain = await runCli(['quantize', 'model.onnx', '--data', 'inputs.npy', '--save', 'out/n'], dir);
    expect(plain.stderr).not.toMatch(/^layer /m);
    expect(readFileSync(join(dir, 'out/n_autoquant.log'), 'utf8')).toMatch(/DEBUG layer layer0/);
    const both = await runCli(['quantize', 'model.onnx', '--data', 'inputs.npy', '--save', 'out/o', '--quiet', '--verbose'], dir);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/give at most one of --quiet, --verbose and --log-level/);
  });
});

describe('autoquant CLI: errors name their file', () => {
  it('a file that is not an ONNX model is named in the message', async () => {
    const dir = tempDir({ 'bad.onnx': 'garbage' });
    const r = await runCli(['config', 'bad.onnx', '-o', 'c.json'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^autoquant: bad\.onnx: not a valid ONNX protobuf/m);
  });
});
