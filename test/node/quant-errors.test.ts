/**
 * How quantizeModel / saveModel fail, and what they must leave untouched: bad calibration input,
 * bad configs, the caller's model, record reuse, and the files saveModel writes.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  AutoquantError,
  CalibrationError,
  createQuantConfig,
  createSession,
  loadModel,
  QuantConfigError,
  quantizeModel,
  saveModel,
  Tensor,
  ValidationError,
  type Feeds,
  type QuantConfig,
} from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

/** x[2,3,6,6] → Conv(conv1) → Relu → Conv(conv2) → GlobalAveragePool → Flatten → Gemm(fc) → y[2,4]. */
function smallNet(seed = 1) {
  const rng = new Random(seed);
  const g = new GraphBuilder('small')
    .input('x', DataType.FLOAT, [2, 3, 6, 6])
    .initializer('W1', [4, 3, 3, 3], rng.normals(108, 0.4))
    .initializer('B1', [4], rng.normals(4, 0.1))
    .node('Conv', ['x', 'W1', 'B1'], ['c1'], { pads: [1, 1, 1, 1] }, { name: 'conv1' })
    .node('Relu', ['c1'], ['r1'])
    .initializer('W2', [5, 4, 3, 3], rng.normals(180, 0.3))
    .node('Conv', ['r1', 'W2'], ['c2'], {}, { name: 'conv2' })
    .node('GlobalAveragePool', ['c2'], ['p'])
    .node('Flatten', ['p'], ['f'])
    .initializer('W3', [5, 4], rng.normals(20, 0.5))
    .initializer('B3', [4], rng.normals(4, 0.1))
    .node('Gemm', ['f', 'W3', 'B3'], ['y'], {}, { name: 'fc' })
    .output('y', DataType.FLOAT, [2, 4]);
  return buildModel(g, { opset: 13 });
}

const LAYERS = ['conv1', 'conv2', 'fc'];
const modelBytes = encodeModel(smallNet());

function feeds(seed: number, n: number, shape = [2, 3, 6, 6]): Feeds[] {
  const rng = new Random(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', rng.normals(shape.reduce((a, b) => a * b, 1)), shape) }));
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'autoquant-errors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const d = join(dir, name);
  await rm(d, { recursive: true, force: true });
  return d;
}

async function listOrEmpty(d: string): Promise<string[]> {
  try {
    return await readdir(d);
  } catch {
    return [];
  }
}

describe('calibration errors', () => {
  test('a callback that never calls run fails with CalibrationError ("no batch") before anything is saved', async () => {
    const out = await freshDir('no-batch');
    const config = await createQuantConfig(modelBytes);
    let called = 0;
    const err = await caught(
      (async () => {
        const result = await quantizeModel(modelBytes, config, async (session) => {
          called++;
          expect(session.inputNames).toEqual(['x']);
        });
        await saveModel(result, join(out, 'model'));
      })(),
    );
    expect(called).toBe(1);
    expect(err).toBeInstanceOf(CalibrationError);
    expect(err).toBeInstanceOf(AutoquantError);
    expect((err as CalibrationError).code).toBe('CALIBRATION');
    expect((err as Error).message).toMatch(/no batch/);
    expect(await listOrEmpty(out)).toEqual([]);
  });

  test('feeds with a wrong input name fail with CalibrationError naming the bad name and the model inputs', async () => {
    const config = await createQuantConfig(modelBytes);
    const bad = { input_0: feeds(2, 1)[0]!.x! };
    for (const source of [[bad], async (s: { run(f: Feeds): Promise<unknown> }) => void (await s.run(bad))]) {
      const err = await caught(quantizeModel(modelBytes, config, source));
      expect(err).toBeInstanceOf(CalibrationError);
      const message = (err as Error).message;
      expect(message).toContain("'input_0'");
      expect(message).toMatch(/model inputs: 'x'/);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).input).toBe('input_0');
    }
  });

  test('feeds with a wrong shape fail with CalibrationError', async () => {
    const config = await createQuantConfig(modelBytes);
    const err = await caught(quantizeModel(modelBytes, config, feeds(3, 1, [2, 3, 5, 6])));
    expect(err).toBeInstanceOf(CalibrationError);
    expect(err).toBeInstanceOf(ValidationError);
    // The input, what the model declares and what was given, before any session ran.
    expect((err as Error).message).toMatch(/^calibration batch 1: input 'x' is float32 \[2, 3, 5, 6\], but the model declares float32 \[.*\]: axis 2 must be 6$/);
  });

  test('feeds with a wrong element type fail with CalibrationError', async () => {
    const config = await createQuantConfig(modelBytes);
    const x = new Tensor('int32', new Int32Array(216), [2, 3, 6, 6]);
    const err = await caught(quantizeModel(modelBytes, config, [{ x }]));
    expect(err).toBeInstanceOf(CalibrationError);
  });

  test('an empty feeds array (or empty generator) fails with CalibrationError', async () => {
    const config = await createQuantConfig(modelBytes);
    for (const source of [[], (function* () {})(), (async function* () {})()]) {
      const err = await caught(quantizeModel(modelBytes, config, source as Iterable<Feeds>));
      expect(err).toBeInstanceOf(CalibrationError);
      expect((err as Error).message).toMatch(/empty|no batch/);
    }
  });

  test('an exception thrown by the calibration callback becomes a CalibrationError with the cause attached', async () => {
    const config = await createQuantConfig(modelBytes);
    const boom = new Error('dataset unavailable');
    const err = await caught(
      quantizeModel(modelBytes, config, async () => {
        throw boom;
      }),
    );
    expect(err).toBeInstanceOf(CalibrationError);
    expect((err as Error).message).toContain('dataset unavailable');
    expect((err as Error).cause).toBe(boom);
  });

  test('the calibration session returns only the model outputs, not the tapped activations', async () => {
    const config = await createQuantConfig(modelBytes);
    const [batch] = feeds(4, 1);
    await quantizeModel(modelBytes, config, async (session) => {
      expect(session.outputNames).toEqual(['y']);
      const out = await session.run(batch!);
      expect(Object.keys(out)).toEqual(['y']);
      expect(out.y!.dims).toEqual([2, 4]);
    });
  });
});

describe('config errors', () => {
  test('an unknown layer name and wrongly typed fields are all listed in one QuantConfigError', async () => {
    const config = (await createQuantConfig(modelBytes)) as Record<string, unknown>;
    const conv1 = config.conv1 as Record<string, unknown>;
    const fc = config.fc as Record<string, unknown>;
    config.batch_num = 0; // 1
    config.activation_offset = 'yes'; // 2
    config.no_such_layer = structuredClone(conv1); // 3
    conv1.quant_enable = 'true'; // 4
    (conv1.activation_quant_params as Record<string, unknown>).act_algo = 'kl'; // 5
    (conv1.weight_quant_params as Record<string, unknown>).num_bits = 4; // 6
    (fc.activation_quant_params as Record<string, unknown>).num_bits = 7; // 7
    const err = await caught(quantizeModel(modelBytes, config as QuantConfig, feeds(5, 1)));
    expect(err).toBeInstanceOf(QuantConfigError);
    const problems = (err as QuantConfigError).problems;
    expect(problems.length).toBe(7);
    const all = problems.join('\n');
    for (const part of ['batch_num', 'activation_offset', 'no_such_layer', 'quant_enable', 'act_algo', 'num_bits must be 8,', 'num_bits must be 8 or 16']) {
      expect(all).toContain(part);
    }
    for (const p of problems) expect((err as Error).message).toContain(p);
  });

  test('a config that is not an object, or lacks globals, is rejected with QuantConfigError', async () => {
    for (const bad of [null, 42, [], {}]) {
      const err = await caught(quantizeModel(modelBytes, bad as unknown as QuantConfig, feeds(6, 1)));
      expect(err).toBeInstanceOf(QuantConfigError);
      expect((err as QuantConfigError).problems.length).toBeGreaterThan(0);
    }
  });

  test('createQuantConfig rejects unknown names in skipLayers / byName / byType, all at once', async () => {
    const err = await caught(
      createQuantConfig(modelBytes, {
        skipLayers: ['nope'],
        byName: { ghost: { quant_enable: false } },
        byType: { Relu: { quant_enable: false } } as never,
      }),
    );
    expect(err).toBeInstanceOf(QuantConfigError);
    expect((err as QuantConfigError).problems.length).toBe(3);
  });
});

describe('what quantizeModel leaves alone', () => {
  test("the caller's model bytes and ModelProto are unchanged after quantizeModel", async () => {
    const bytes = encodeModel(smallNet());
    const copy = bytes.slice();
    const arrayBuffer = bytes.slice().buffer;
    const abCopy = new Uint8Array(arrayBuffer.slice(0));
    const proto = smallNet();
    // An unnamed node gets a stable name in the private copy only.
    proto.graph!.node![1]!.name = '';
    const protoBytes = encodeModel(proto);
    const config = await createQuantConfig(bytes);
    for (const source of [bytes, arrayBuffer]) await quantizeModel(source, config, feeds(7, 1));
    await quantizeModel(proto, await createQuantConfig(proto), feeds(7, 1));
    expect(bytes).toEqual(copy);
    expect(new Uint8Array(arrayBuffer)).toEqual(abCopy);
    expect(encodeModel(proto)).toEqual(protoBytes);
  });

  test('the caller’s config object is not modified', async () => {
    const config = await createQuantConfig(modelBytes);
    const before = structuredClone(config);
    const result = await quantizeModel(modelBytes, config, feeds(8, 1));
    expect(config).toEqual(before);
    expect(result.config).not.toBe(config);
  });
});

describe('record reuse', () => {
  test('options.record covering every layer skips calibration and gives identical models', async () => {
    const config = await createQuantConfig(modelBytes, { batchNum: 2 });
    const first = await quantizeModel(modelBytes, config, feeds(9, 2));
    expect(Object.keys(first.record.layers).sort()).toEqual([...LAYERS].sort());
    // Through JSON, as it would come back from a record file.
    const record = JSON.parse(JSON.stringify(first.record));
    let called = 0;
    const again = await quantizeModel(modelBytes, config, async () => {
      called++;
    }, { record });
    expect(called).toBe(0);
    expect(again.calibration).toBeUndefined();
    expect(again.record).toEqual(first.record);
    expect(again.fakeQuantModel).toEqual(first.fakeQuantModel);
    expect(again.deployModel).toEqual(first.deployModel);
  });

  test('a record that lacks a layer calibrates only that layer', async () => {
    const config = await createQuantConfig(modelBytes, { batchNum: 2 });
    const data = feeds(10, 2);
    const first = await quantizeModel(modelBytes, config, data);
    const partial = structuredClone(first.record);
    delete partial.layers.conv2;
    const again = await quantizeModel(modelBytes, config, data, { record: partial });
    expect(again.calibration?.batches).toBe(2);
    expect(again.record).toEqual(first.record);
    expect(again.fakeQuantModel).toEqual(first.fakeQuantModel);
  });

  test('a malformed record is rejected with QuantConfigError listing its problems', async () => {
    const config = await createQuantConfig(modelBytes);
    const record = { version: 1, layers: { conv1: { scale_d: -1, offset_d: 0.5, num_bits_d: 8, clip_min_d: 0, clip_max_d: 1 } } };
    const err = await caught(quantizeModel(modelBytes, config, feeds(11, 1), { record: record as never }));
    expect(err).toBeInstanceOf(QuantConfigError);
    expect((err as QuantConfigError).problems.length).toBe(2);
  });
});

describe('saveModel', () => {
  test('writes exactly the three files, and they load again', async () => {
    const out = await freshDir('save');
    const config = await createQuantConfig(modelBytes);
    const result = await quantizeModel(modelBytes, config, feeds(12, 1));
    const files = await saveModel(result, join(out, 'net'));
    expect((await readdir(out)).sort()).toEqual(['net_deploy_model.onnx', 'net_fake_quant_model.onnx', 'net_record.json']);
    expect(files.map((f) => f.slice(out.length + 1)).sort()).toEqual(['net_deploy_model.onnx', 'net_fake_quant_model.onnx', 'net_record.json']);

    expect(new Uint8Array(await readFile(join(out, 'net_fake_quant_model.onnx')))).toEqual(result.fakeQuantModel);
    expect(new Uint8Array(await readFile(join(out, 'net_deploy_model.onnx')))).toEqual(result.deployModel);
    expect(JSON.parse(await readFile(join(out, 'net_record.json'), 'utf8'))).toEqual(result.record);

    const [batch] = feeds(13, 1);
    for (const name of ['net_fake_quant_model.onnx', 'net_deploy_model.onnx']) {
      const model = await loadModel(join(out, name));
      expect(model.graph!.node!.length).toBeGreaterThan(0);
      const session = await createSession(encodeModel(model));
      const y = await session.run(batch!);
      expect(y.y!.dims).toEqual([2, 4]);
      await session.release();
    }
    // The saved record drives a second quantization without calibration.
    const again = await quantizeModel(modelBytes, config, () => {
      throw new Error('calibration must not run');
    }, { record: join(out, 'net_record.json') });
    expect(again.deployModel).toEqual(result.deployModel);
  });

  test('saving twice to the same prefix replaces the files and leaves no temporary files', async () => {
    const out = await freshDir('twice');
    const config = await createQuantConfig(modelBytes);
    const a = await quantizeModel(modelBytes, config, feeds(14, 1));
    const b = await quantizeModel(modelBytes, config, feeds(15, 1));
    await saveModel(a, join(out, 'm'));
    await saveModel(b, join(out, 'm'));
    expect((await readdir(out)).length).toBe(3);
    expect(JSON.parse(await readFile(join(out, 'm_record.json'), 'utf8'))).toEqual(b.record);
  });
});

describe('model input forms', () => {
  test('a file path is accepted and an unreadable path gives a typed error', async () => {
    const out = await freshDir('paths');
    await mkdir(out, { recursive: true });
    const path = join(out, 'small.onnx');
    await writeFile(path, modelBytes);
    const config = await createQuantConfig(path);
    expect(Object.keys(config)).toEqual(expect.arrayContaining(LAYERS));
    const result = await quantizeModel(path, config, feeds(16, 1));
    const fromBytes = await quantizeModel(modelBytes, config, feeds(16, 1));
    expect(result.deployModel).toEqual(fromBytes.deployModel);
    const err = await caught(createQuantConfig(join(out, 'missing.onnx')));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('missing.onnx');
  });

  test('bytes that are not an ONNX model fail with a typed error', async () => {
    const err = await caught(createQuantConfig(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    expect(err).toBeInstanceOf(AutoquantError);
  });
});
