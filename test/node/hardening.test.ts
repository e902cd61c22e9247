/**
 * Hostile and careless inputs (issue 10): each gets a typed AutoquantError that names the problem,
 * bounded in size, and nothing half-written.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  AutoquantError,
  AbortedError,
  CalibrationError,
  EvaluationError,
  createQuantConfig,
  FidelityEvaluator,
  FileAccessError,
  loadModel,
  loadQuantConfig,
  quantizeModel,
  QuantConfigError,
  saveModel,
  Tensor,
} from '../../src/index.js';
import { DataType, encodeModel, makeTensor } from '../../src/subpaths/onnx.js';
import { parseNpy } from '../../src/subpaths/npy.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { outlierInputs, outlierModel, WIDTH } from '../helpers/outlier-model.js';
import { Random } from '../helpers/random.js';

const ROWS = 32;
const feedsOf = (xs: Float32Array[]) => xs.map((x) => ({ x: new Tensor('float32', x, [x.length / WIDTH, WIDTH]) }));
const tmp = () => mkdtempSync(join(tmpdir(), 'aq-hard-'));

/** The promise rejects with an AutoquantError subclass `type` whose message matches and is bounded. */
async function rejectsTyped(p: Promise<unknown>, type: new (...a: never[]) => AutoquantError, pattern: RegExp): Promise<AutoquantError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err, 'expected a rejection').toBeInstanceOf(type);
  const e = err as AutoquantError;
  expect(e.message).toMatch(pattern);
  expect(e.message.length).toBeLessThan(1200);
  return e;
}

function tinyModel(names: string[]): Uint8Array {
  const rng = new Random(3);
  const g = new GraphBuilder().input('x', DataType.FLOAT, ['N', 4]);
  let prev = 'x';
  names.forEach((name, i) => {
    g.initializer(`w${i}`, [4, 4], rng.normals(16)).node('MatMul', [prev, `w${i}`], [`h${i}`], {}, { name });
    prev = `h${i}`;
  });
  return encodeModel(buildModel(g.output(prev, DataType.FLOAT), { opset: 13 }));
}

describe('layer names that collide with the config object', () => {
  it('nodes named __proto__, version, batch_num, constructor and toString are all listed and quantized', async () => {
    const names = ['__proto__', 'version', 'batch_num', 'constructor', 'toString'];
    const model = tinyModel(names);
    const config = await createQuantConfig(model);
    expect(Object.getPrototypeOf(config)).toBe(Object.prototype);
    expect(config.version).toBe(1);
    const layers = Object.keys(config).filter((k) => typeof config[k] === 'object' && config[k] !== null && !Array.isArray(config[k]));
    expect(layers.sort()).toEqual(['__proto___node', 'batch_num_node', 'constructor', 'toString', 'version_node'].sort());
    const rng = new Random(4);
    const r = await quantizeModel(model, config, [{ x: new Tensor('float32', rng.normals(32), [8, 4]) }]);
    expect(r.layers.filter((l) => l.quantized).map((l) => l.name).sort()).toEqual(layers.sort());
    expect(JSON.parse(JSON.stringify(r.config))).toEqual(r.config);
  });
});

describe('hostile configs and records', () => {
  const { bytes } = outlierModel(2, 0);
  const calib = feedsOf(outlierInputs(1, ROWS, 1));

  it('a config value nested 5000 deep is a QuantConfigError, not a stack overflow', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = [deep];
    const config = { ...(await createQuantConfig(bytes)), version: deep } as unknown as Parameters<typeof quantizeModel>[1];
    await rejectsTyped(quantizeModel(bytes, config, calib), QuantConfigError, /version must be 1, got \[\[\[/);
    const dir = tmp();
    writeFileSync(join(dir, 'c.json'), `{"version": ${'['.repeat(5000)}1${']'.repeat(5000)}}`);
    await rejectsTyped(loadQuantConfig(join(dir, 'c.json'), bytes), QuantConfigError, /version must be 1/);
  });

  it('a record nested 6000 deep, with BigInt or a cycle, is a QuantConfigError', async () => {
    const config = await createQuantConfig(bytes);
    const good = (await quantizeModel(bytes, config, calib)).record;
    let deep: unknown = 1;
    for (let i = 0; i < 6000; i++) deep = { a: deep };
    const layer = Object.keys(good.layers)[0]!;
    for (const extra of [{ junk: deep }, { scale_d: 10n }, { self: null as unknown }]) {
      const bad = { version: 1, layers: { [layer]: { ...good.layers[layer]!, ...extra } } } as Record<string, unknown>;
      if ('self' in extra) ((bad.layers as Record<string, Record<string, unknown>>)[layer]!).self = bad;
      await rejectsTyped(quantizeModel(bytes, config, calib, { record: bad as never }), QuantConfigError, /layer '.*'\.(junk|scale_d|self)/);
    }
  });

  it('scales outside float32 and batch_num or IFMR candidate counts out of range are refused up front', async () => {
    const config = await createQuantConfig(bytes);
    const good = (await quantizeModel(bytes, config, calib)).record;
    const layer = Object.keys(good.layers)[0]!;
    for (const scale of [1e39, 1e-46]) {
      const bad = structuredClone(good);
      bad.layers[layer]!.scale_d = scale;
      await rejectsTyped(quantizeModel(bytes, config, calib, { record: bad }), QuantConfigError, /scale_d must be a number > 0 that float32 can hold/);
    }
    await rejectsTyped(quantizeModel(bytes, { ...config, batch_num: 1e12 }, calib), QuantConfigError, /batch_num must be an integer in \[1, 100000\]/);
    for (const edit of [{ search_step: 1e-300 }, { search_step: 1e-9 }, { search_range: [1, 1e300] }]) {
      const c = structuredClone(config);
      Object.assign((c[layer] as { activation_quant_params: object }).activation_quant_params, edit);
      await rejectsTyped(quantizeModel(bytes, c, calib), QuantConfigError, /candidates; at most 10000|search_step must be/);
    }
  });

  it('a 10 MB string in a config gives a bounded message', async () => {
    const config = { ...(await createQuantConfig(bytes)), version: 'x'.repeat(10_000_000) } as unknown as Parameters<typeof quantizeModel>[1];
    await rejectsTyped(quantizeModel(bytes, config, calib), QuantConfigError, /version must be 1, got "xxx/);
  });

  it('an npy header nested 7000 deep is an NpyFormatError', () => {
    const header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${'('.repeat(7000)}${')'.repeat(7000)}, }`;
    const magic = new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const text = new TextEncoder().encode(header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 10) + '\n');
    const bytes = new Uint8Array(10 + text.length);
    bytes.set(magic);
    new DataView(bytes.buffer).setUint16(8, text.length, true);
    bytes.set(text, 10);
    expect(() => parseNpy(bytes)).toThrow(/nested deeper than 8 levels/);
  });
});

describe('non-finite calibration data', () => {
  for (const algo of ['minmax', 'ifmr', 'hfmg', 'percentile'] as const) {
    it(`${algo}: one +Infinity fails calibration naming the activation and the batch`, async () => {
      const { bytes } = outlierModel(2, 0);
      const config = await createQuantConfig(bytes, { batchNum: 2, activationAlgo: algo });
      const data = outlierInputs(2, ROWS, 1);
      data[1]![5] = Infinity;
      await rejectsTyped(quantizeModel(bytes, config, feedsOf(data)), CalibrationError, /activation '[^']+' \(calibrated for layer 'layer0'\) holds non-finite values .* in calibration batch 2/);
    });
  }
});

describe('files', () => {
  const { bytes } = outlierModel(2, 0);
  it('missing files are FileAccessErrors naming them', async () => {
    await rejectsTyped(loadQuantConfig('missing.json', bytes), FileAccessError, /cannot read 'missing\.json': it does not exist/);
    const config = await createQuantConfig(bytes);
    await rejectsTyped(quantizeModel(bytes, config, feedsOf(outlierInputs(1, ROWS, 1)), { record: 'missing.json' }), FileAccessError, /missing\.json/);
    await rejectsTyped(loadModel(tmp()), FileAccessError, /it is a directory/);
  });

  it('an unwritable save target fails before the search, leaving nothing behind', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'file'), 'x');
    mkdirSync(join(dir, 'taken_record.json'));
    const evaluator = () => new FidelityEvaluator(feedsOf(outlierInputs(1, ROWS, 2)), { mode: 'cosine', maxDrop: 0.5 });
    let evaluated = false;
    const spy = evaluator();
    const original = spy.evaluate.bind(spy);
    spy.evaluate = async (s) => ((evaluated = true), original(s));
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, spy, { savePrefix: join(dir, 'file', 'm') }), FileAccessError, /is a file, not a directory/);
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, evaluator(), { savePrefix: join(dir, 'taken') }), FileAccessError, /taken_record\.json.*is a directory/);
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, evaluator(), { savePrefix: '' }), AutoquantError, /savePrefix must be a non-empty path/);
    expect(evaluated).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['file', 'taken_record.json']);
    const r = await quantizeModel(bytes, await createQuantConfig(bytes), feedsOf(outlierInputs(1, ROWS, 1)));
    await rejectsTyped(saveModel(r, ''), AutoquantError, /non-empty path prefix/);
    await rejectsTyped(saveModel(r, join(dir, 'taken')), FileAccessError, /is a directory/);
    expect(readdirSync(dir).sort()).toEqual(['file', 'taken_record.json']);
    // A missing directory is created when the files are written.
    await saveModel(r, join(dir, 'new', 'deeper', 'm'));
    expect(readdirSync(join(dir, 'new', 'deeper')).length).toBe(3);
  });

  it('external data reached through a symbolic link out of the model directory is refused', async () => {
    const outside = tmp();
    writeFileSync(join(outside, 'secret.bin'), new Uint8Array(16));
    const dir = tmp();
    symlinkSync(join(outside, 'secret.bin'), join(dir, 'w.bin'));
    const g = new GraphBuilder().input('x', DataType.FLOAT, [4]);
    const w = makeTensor('w', DataType.FLOAT, [4], new Float32Array(4));
    w.rawData = undefined as never;
    w.dataLocation = 1;
    w.externalData = [{ key: 'location', value: 'w.bin' }];
    g.tensor(w).node('Add', ['x', 'w'], ['y']).output('y', DataType.FLOAT);
    writeFileSync(join(dir, 'm.onnx'), encodeModel(buildModel(g, { opset: 13 })));
    await rejectsTyped(loadModel(join(dir, 'm.onnx')), AutoquantError, /outside the model's directory/);
    expect(existsSync(join(dir, 'w.bin'))).toBe(true);
    void chmodSync;
  });
});

describe('evaluators that misbehave', () => {
  const { bytes } = outlierModel(2, 0);
  const make = () => new FidelityEvaluator(feedsOf(outlierInputs(1, ROWS, 2)), { calibrationInputs: feedsOf(outlierInputs(1, ROWS, 3)), mode: 'cosine', maxDrop: 0.5 });

  it('a metricEval that returns undefined or throws, and evaluate results NaN, Infinity, BigInt or a cycle, are EvaluationErrors', async () => {
    const undef = make();
    undef.metricEval = () => undefined as never;
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, undef), EvaluationError, /metricEval returned undefined .* \[ok: boolean, loss: number\]/);
    const throws = make();
    throws.metricEval = () => {
      throw new Error('no ground truth');
    };
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, throws), EvaluationError, /metricEval failed on the float model: no ground truth/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const [value, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [10n, '10n'], [cyclic, 'circular']] as const) {
      const e = make();
      e.evaluate = async () => value as never;
      await rejectsTyped(accuracyBasedAutoCalibration(bytes, e), EvaluationError, new RegExp(`returned .*${shown}.*finite number`));
    }
  });

  it('an evaluator that releases its session is not blamed for the second release; a null evaluator is an EvaluationError', async () => {
    const e = make();
    const original = e.evaluate.bind(e);
    e.evaluate = async (s) => {
      const m = await original(s);
      await s.release();
      return m;
    };
    expect((await accuracyBasedAutoCalibration(bytes, e)).passed).toBe(true);
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, null as never), EvaluationError, /the evaluator must have calibration\(session\) and evaluate\(session\) methods/);
  });

  it('a throwing onProgress is named', async () => {
    await rejectsTyped(
      accuracyBasedAutoCalibration(bytes, make(), { onProgress: () => { throw new Error('ui gone'); } }),
      AutoquantError,
      /onProgress threw on a 'float-evaluation' event: ui gone/,
    );
  });
});

describe('no way to hang', () => {
  const { bytes } = outlierModel(2, 0);
  const make = () => new FidelityEvaluator(feedsOf(outlierInputs(1, ROWS, 2)), { calibrationInputs: feedsOf(outlierInputs(1, ROWS, 3)), mode: 'cosine', maxDrop: 0.5 });

  it('an evaluate that never resolves ends with an AbortedError after evaluationTimeoutSeconds, writing nothing', async () => {
    const e = make();
    let calls = 0;
    const original = e.evaluate.bind(e);
    e.evaluate = (s) => (calls++ === 0 ? original(s) : new Promise<number>(() => {}));
    const dir = tmp();
    const t0 = performance.now();
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, e, { evaluationTimeoutSeconds: 0.3, savePrefix: join(dir, 'out', 'm') }), AbortedError, /evaluator\.evaluate on the model with 0 layer\(s\) in float.* did not finish within 0\.3 s/);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('signal aborts a run in progress, and an aborted signal stops it before anything runs', async () => {
    const controller = new AbortController();
    const e = make();
    const original = e.evaluate.bind(e);
    e.evaluate = (s) => {
      setTimeout(() => controller.abort(), 10);
      return new Promise<number>((resolve) => setTimeout(() => resolve(original(s)), 10_000));
    };
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, e, { signal: controller.signal }), AbortedError, /aborted during evaluator\.evaluate on the float model/);
    await rejectsTyped(accuracyBasedAutoCalibration(bytes, make(), { signal: AbortSignal.abort() }), AbortedError, /aborted before/);
    const config = await createQuantConfig(bytes);
    await rejectsTyped(quantizeModel(bytes, config, () => new Promise<void>(() => {}), { signal: AbortSignal.timeout(200) }), AbortedError, /aborted during the calibration callback/);
  });
});

describe('arguments of the wrong type', () => {
  const { bytes } = outlierModel(2, 0);
  it('are typed errors naming the argument', async () => {
    await rejectsTyped(createQuantConfig(bytes, null as never), AutoquantError, /createQuantConfig options must be an object, got null/);
    const config = await createQuantConfig(bytes);
    await rejectsTyped(quantizeModel(bytes, config, 42 as never), CalibrationError, /calibration must be a callback .* got 42/);
    await rejectsTyped(quantizeModel(bytes, config, feedsOf(outlierInputs(1, ROWS, 1)), { executionProviders: 'wasm' as never }), AutoquantError, /executionProviders must be a list/);
    await rejectsTyped(saveModel(null as never, 'x'), AutoquantError, /saveModel needs quantizeModel's result/);
    const failing = {
      async *[Symbol.asyncIterator]() {
        yield* [];
        throw new Error('disk gone');
      },
    };
    await rejectsTyped(quantizeModel(bytes, config, failing as never), CalibrationError, /reading the calibration data failed: disk gone/);
    const make = () => new FidelityEvaluator(feedsOf(outlierInputs(1, ROWS, 2)), { mode: 'cosine' });
    for (const bad of [-1, NaN]) {
      await rejectsTyped(accuracyBasedAutoCalibration(bytes, make(), { memoryBudgetBytes: bad }), AutoquantError, /memoryBudgetBytes must be a number >= 0/);
    }
  });
});

describe('quantizeModel callbacks', () => {
  it('a throwing onProgress is a typed error naming the batch', async () => {
    const { bytes } = outlierModel(2, 0);
    const config = await createQuantConfig(bytes);
    await rejectsTyped(
      quantizeModel(bytes, config, feedsOf(outlierInputs(1, ROWS, 1)), { onProgress: () => { throw new Error('ui gone'); } }),
      AutoquantError,
      /onProgress threw on calibration batch 1: ui gone/,
    );
  });
});

describe('options and batch counts are checked, not silently adjusted', () => {
  const { bytes } = outlierModel(2, 0);
  it('an unknown option or a bad algorithm is named once', async () => {
    const e = await rejectsTyped(createQuantConfig(bytes, { activationAlgo: 'kl' } as never), QuantConfigError, /activationAlgo must be one of ifmr, hfmg, minmax, percentile, got "kl"/);
    expect((e as QuantConfigError).problems.length).toBe(1);
    await rejectsTyped(createQuantConfig(bytes, { batchnum: 2 } as never), QuantConfigError, /unknown option 'batchnum' \(did you mean 'batchNum'\?\)/);
  });

  it('fewer calibration batches than batch_num is a CalibrationError saying how many came', async () => {
    const config = await createQuantConfig(bytes, { batchNum: 3 });
    await rejectsTyped(quantizeModel(bytes, config, feedsOf(outlierInputs(2, ROWS, 1))), CalibrationError, /gave 2 batches but batch_num is 3/);
    const events: string[] = [];
    await quantizeModel(bytes, config, feedsOf(outlierInputs(3, ROWS, 1)), { onProgress: (e) => events.push(e.message) });
    // The phase is the event's own field, never repeated in the message (shown as `${phase}: ${message}`).
    expect(events).toEqual(['batch 1/3', 'batch 2/3', 'batch 3/3']);
  });
});

describe('setLogLevel', () => {
  it('prints nothing by default; prints and saves {prefix}_autoquant.log when asked', async () => {
    const { setLogLevel } = await import('../../src/index.js');
    const { bytes } = outlierModel(2, 0);
    const errors: string[] = [];
    const original = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    try {
      const make = () => new FidelityEvaluator(feedsOf(outlierInputs(1, ROWS, 2)), { calibrationInputs: feedsOf(outlierInputs(1, ROWS, 3)), mode: 'cosine', maxDrop: 0.5 });
      const quiet = tmp();
      await accuracyBasedAutoCalibration(bytes, make(), { savePrefix: join(quiet, 'm') });
      expect(errors).toEqual([]);
      expect(existsSync(join(quiet, 'm_autoquant.log'))).toBe(false);
      setLogLevel('info', 'debug');
      const dir = tmp();
      const r = await accuracyBasedAutoCalibration(bytes, make(), { savePrefix: join(dir, 'm') });
      expect(errors.some((e) => /^autoquant: float-evaluation: float model: metric 1/.test(e))).toBe(true);
      expect(r.files).toContain(join(dir, 'm_autoquant.log'));
      const saved = (await import('node:fs')).readFileSync(join(dir, 'm_autoquant.log'), 'utf8');
      expect(saved).toMatch(/^\S+Z INFO  quantized-evaluation: 0 layer\(s\) in float/m);
      expect(saved.trimEnd().endsWith(r.message)).toBe(true);
      expect(() => setLogLevel('loud' as never)).toThrow(/print must be one of off, error, warn, info, debug/);
    } finally {
      setLogLevel('off', 'off');
      console.error = original;
    }
  });
});
