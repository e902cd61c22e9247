/**
 * Deploy models that ONNX Runtime turns into integer kernels: where the Q/DQ pairs go (outputs.ts),
 * checked against onnxruntime-node's optimized graph, and the promise that exact placements change no
 * value while calibrated ones are mirrored in the fake-quant model.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ortNode from 'onnxruntime-node';
import { afterAll, describe, expect, test } from 'vitest';
import {
  createQuantConfig,
  createSession,
  QuantConfigError,
  quantizeModel,
  Tensor,
  type Feeds,
  type QuantConfig,
} from '../../src/index.js';
import { DataType, decodeModel, type GraphProto } from '../../src/subpaths/onnx.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { trainBatch } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

const tmp = mkdtempSync(join(tmpdir(), 'autoquant-outputs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The graph onnxruntime-node runs after its 'all' optimizations. */
async function optimizedGraph(model: Uint8Array): Promise<GraphProto> {
  const path = join(tmp, `opt-${Math.random().toString(36).slice(2)}.onnx`);
  const s = await ortNode.InferenceSession.create(model, { graphOptimizationLevel: 'all', optimizedModelFilePath: path, intraOpNumThreads: 1 });
  await s.release();
  return decodeModel(new Uint8Array(readFileSync(path))).graph!;
}

const optimizedOps = async (model: Uint8Array) => (await optimizedGraph(model)).node!.map((n) => n.opType!);

async function runNode(model: Uint8Array, feeds: Feeds): Promise<Float32Array> {
  const s = await ortNode.InferenceSession.create(model, { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  try {
    const native = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ortNode.Tensor('float32', t.data as Float32Array, t.dims)]));
    const out = await s.run(native);
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const integerKernels = (ops: string[]) => ops.filter((op) => /^(QLinear|QGemm)/.test(op)).length;

async function runWeb(model: Uint8Array, feeds: Feeds): Promise<Float32Array> {
  const s = await createSession(model, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await s.run(feeds);
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const ops = (bytes: Uint8Array) => decodeModel(bytes).graph!.node!;

describe('deploy models in onnxruntime-node', () => {
  test('the MNIST CNN: integer kernels where they are faster, float kernels with our own weights where they are not, and the deploy model equals the fake-quant model', async () => {
    const model = new Uint8Array(readFileSync(new URL('../fixtures/mnist_cnn.onnx', import.meta.url)));
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    expect(config.quantize_outputs).toBe(true);
    const result = await quantizeModel(model, config, [0, 1].map((b) => ({ input: new Tensor('float32', trainBatch(b * 8, 8), [8, 1, 28, 28]) })));
    const quantized = result.layers.filter((l) => l.quantized).length;
    expect(quantized).toBe(6);
    const optimized = await optimizedGraph(result.deployModel);
    const count = (op: string) => optimized.node!.filter((n) => n.opType === op).length;
    const all = optimized.node!.map((n) => n.opType).join(' ');
    // conv2 and the two Gemms (whose weights carry the zero points QGemm's fusion needs) run as
    // integer kernels. conv1 (one input channel) and the depthwise dw are several times slower as
    // QLinearConv, so they keep float kernels although a Q follows each: their input
    // DequantizeLinear repeats its scale along an axis, which onnxruntime fuses with nothing and
    // which stops it from re-quantizing their weights per tensor itself. The AveragePool gets no Q
    // after it: QLinearAveragePool is far slower than float pooling.
    expect(count('QLinearConv'), all).toBe(1);
    expect(count('Conv'), all).toBe(2);
    expect(count('QGemm'), all).toBe(2);
    expect(count('QLinearAveragePool'), all).toBe(0);
    const ortMade = optimized.initializer!.map((t) => t.name!).filter((n) => /_weight_(scale|zp)$|_bias_int32$/.test(n));
    expect(ortMade).toEqual([]);
    // Exact placements live only in the deploy model and change no value.
    const fakeDivs = ops(result.fakeQuantModel).filter((n) => n.opType === 'Div').length;
    const deployQs = ops(result.deployModel).filter((n) => n.opType === 'QuantizeLinear').length;
    expect(deployQs).toBeGreaterThan(fakeDivs);
    const x = { input: new Tensor('float32', trainBatch(500, 16), [16, 1, 28, 28]) };
    const fake = await runWeb(result.fakeQuantModel, x);
    expect(maxAbsDiff(await runWeb(result.deployModel, x), fake)).toBeLessThanOrEqual(1e-5);
    // The optimized graph too, up to rounding ties that integer and float accumulation break apart.
    const native = await runNode(result.deployModel, x);
    expect(maxAbsDiff(native, fake)).toBeLessThanOrEqual(1e-2 * Math.max(...fake.map(Math.abs)));
  });
});

/** x → Conv a → Sigmoid → Conv b → y: a's output feeds a float op, b's is the graph output. */
function convSigmoidConv(rng: Random) {
  return buildModel(
    new GraphBuilder()
      .input('x', DataType.FLOAT, [2, 3, 8, 8])
      .initializer('Wa', [8, 3, 3, 3], rng.normals(216, 0.3))
      .initializer('Ba', [8], rng.normals(8, 0.1))
      .node('Conv', ['x', 'Wa', 'Ba'], ['a'], { pads: [1, 1, 1, 1] }, { name: 'a' })
      .node('Sigmoid', ['a'], ['s'])
      .initializer('Wb', [4, 8, 1, 1], rng.normals(32, 0.3))
      .node('Conv', ['s', 'Wb'], ['y'], {}, { name: 'b' })
      .output('y', DataType.FLOAT),
    { opset: 13 },
  );
}

describe('quantize_outputs', () => {
  const rng = new Random(911);
  const model = convSigmoidConv(rng);
  const data = [0, 1].map(() => ({ x: new Tensor('float32', rng.normals(2 * 3 * 64), [2, 3, 8, 8]) }));

  test('off: the Conv before a float op keeps a float output, as in AMCT', async () => {
    const result = await quantizeModel(model, await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2, quantizeOutputs: false }), data);
    expect(result.record.layers.a!.scale_o).toBeUndefined();
    expect(ops(result.deployModel).some((n) => n.opType === 'QuantizeLinear' && n.input![0] === 'a')).toBe(false);
    expect(integerKernels(await optimizedOps(result.deployModel))).toBe(0);
  });

  test('on (the default, also when a saved config lacks the key): the output feeding a float op is calibrated, quantized in both models alike, and the Conv fuses', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    expect(config.quantize_outputs).toBe(true);
    delete config.quantize_outputs;
    const result = await quantizeModel(model, config, data);
    const a = result.record.layers.a!;
    expect(a.scale_o).toBeGreaterThan(0);
    expect(a.clip_min_o).toBeLessThan(0); // the Conv's raw output, before the Sigmoid
    expect(a.output_quant).toBe(true);
    expect(result.record.layers.b!.scale_o).toBeUndefined(); // graph outputs stay float
    expect(ops(result.deployModel).filter((n) => n.opType === 'QuantizeLinear' && n.input![0] === 'a')).toHaveLength(1);
    expect(ops(result.fakeQuantModel).filter((n) => n.opType === 'Div' && n.input![0] === 'a')).toHaveLength(1);
    const x = { x: new Tensor('float32', rng.normals(2 * 3 * 64), [2, 3, 8, 8]) };
    expect(maxAbsDiff(await runWeb(result.deployModel, x), await runWeb(result.fakeQuantModel, x))).toBeLessThanOrEqual(1e-5);
    expect(integerKernels(await optimizedOps(result.deployModel))).toBeGreaterThanOrEqual(1);
  });

  test('an output whose quantization costs too much fidelity on the calibration batch stays float', async () => {
    // A Conv whose output spans ±1e4 in one channel and ±1e-3 in the others, rescaled per channel
    // by a float Mul: one 8-bit scale for the Conv's output would erase all but one channel.
    const w = new Float32Array(8 * 3 * 9).map(() => rng.normal() * 1e-3);
    for (let i = 0; i < 27; i++) w[i] = rng.normal() * 1e4;
    const gain = Float32Array.from({ length: 8 }, (_, c) => (c === 0 ? 1e-7 : 1));
    const m = buildModel(
      new GraphBuilder()
        .input('x', DataType.FLOAT, [2, 3, 8, 8])
        .initializer('Wa', [8, 3, 3, 3], w)
        .node('Conv', ['x', 'Wa'], ['a'], { pads: [1, 1, 1, 1] }, { name: 'a' })
        .initializer('gain', [1, 8, 1, 1], gain)
        .node('Mul', ['a', 'gain'], ['y'])
        .output('y', DataType.FLOAT),
      { opset: 13 },
    );
    // Without fusion, which would fold the constant Mul into the Conv.
    const result = await quantizeModel(m, await createQuantConfig(m, { skipSlowLayers: false, batchNum: 2, quantizeOutputs: true, doFusion: false }), data);
    expect(result.record.layers.a!.output_quant).toBe(false);
    expect(ops(result.fakeQuantModel).find((n) => n.opType === 'Mul' && n.input![1] === 'gain')!.input![0]).toBe('a');
    expect(ops(result.deployModel).find((n) => n.opType === 'Mul' && n.input![1] === 'gain')!.input![0]).toBe('a');
  });

  test('a config or record with a malformed output field is rejected, naming it', async () => {
    const config = await createQuantConfig(model, { skipSlowLayers: false, batchNum: 2 });
    const bad = { ...config, quantize_outputs: 'yes' } as unknown as QuantConfig;
    await expect(quantizeModel(model, bad, data)).rejects.toThrow(/quantize_outputs must be a boolean/);
    const ok = await quantizeModel(model, { ...config, quantize_outputs: true }, data);
    const record = structuredClone(ok.record);
    record.layers.a!.offset_o = 300;
    await expect(quantizeModel(model, config, data, { record })).rejects.toThrow(QuantConfigError);
    await expect(quantizeModel(model, config, data, { record })).rejects.toThrow(/layer 'a'\.offset_o must be an integer in \[-128, 127\]/);
  });
});
