/**
 * The two engines: onnxruntime-web (wasm) and native onnxruntime-node (a devDependency here, an
 * optional peer dependency for users). The same quantized models must give the same metrics on
 * both, and the search must reach the same answer.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  ClassificationEvaluator,
  createQuantConfig,
  createSession,
  EngineError,
  FidelityEvaluator,
  getOrt,
  quantizeModel,
  Tensor,
  useEngine,
  type Engine,
} from '../../src/index.js';
import { defaultEngine } from '../../src/subpaths/runtime.js';
import { heldOutBatch, trainBatch } from '../helpers/mnist.js';
import { outlierInputs, outlierModel, WIDTH } from '../helpers/outlier-model.js';

const mnist = new Uint8Array(readFileSync(new URL('../fixtures/mnist_cnn.onnx', import.meta.url)));
const feedsOf = (xs: Float32Array[]) => xs.map((x) => ({ x: new Tensor('float32', x, [x.length / WIDTH, WIDTH]) }));

describe('engines', () => {
  it('onnxruntime-web sizes its wasm thread pool from the real core count (Node 20 reports none)', async () => {
    expect(getOrt().env.wasm.numThreads).toBeUndefined();
    const s = await createSession(mnist, { engine: 'web' });
    await s.release();
    expect(getOrt().env.wasm.numThreads).toBe(availableParallelism());
  });

  it("picks 'node' by default where onnxruntime-node is installed; 'wasm' means its CPU provider there", async () => {
    expect(await defaultEngine()).toBe('node');
    const s = await createSession(mnist, { engine: 'node', executionProviders: ['wasm'] });
    const out = await s.run({ input: new Tensor('float32', new Float32Array(2 * 784), [2, 1, 28, 28]) });
    expect(out.logits!.dims).toEqual([2, 10]);
    await s.release();
  });

  it('an unknown engine is an EngineError naming the choices', async () => {
    await expect(useEngine('python' as Engine)).rejects.toThrow(EngineError);
    await expect(createSession(mnist, { engine: 'gpu' as Engine })).rejects.toThrow(/unknown engine 'gpu': use one of web, node/);
  });

  it('the MNIST CNN fixture: the same fake-quant and deploy accuracy on 1000 held-out digits with either engine', async () => {
    const calib = [0, 1].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
    const r = await quantizeModel(mnist, await createQuantConfig(mnist, { batchNum: 2 }), calib, { engine: 'web' });
    const { x, labels } = heldOutBatch(0, 1000);
    const accuracy = async (bytes: Uint8Array, engine: Engine) => {
      const s = await createSession(bytes, { engine });
      const logits = (await s.run({ input: new Tensor('float32', x, [1000, 1, 28, 28]) })).logits!.data as Float32Array;
      await s.release();
      let ok = 0;
      for (let i = 0; i < labels.length; i++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (logits[i * 10 + c]! > logits[i * 10 + best]!) best = c;
        if (best === labels[i]) ok++;
      }
      return ok / labels.length;
    };
    const fakeWeb = await accuracy(r.fakeQuantModel, 'web');
    const fakeNode = await accuracy(r.fakeQuantModel, 'node');
    const deployNode = await accuracy(r.deployModel, 'node');
    console.log(`MNIST fixture top-1: fake-quant web ${fakeWeb}, node ${fakeNode}; deploy node ${deployNode}`);
    expect(fakeNode).toBe(fakeWeb);
    expect(Math.abs(deployNode - fakeWeb)).toBeLessThanOrEqual(0.002);
  });

  it('automatic calibration of the outlier MLP reaches the same answer with the same metrics on either engine', async () => {
    const { bytes, fragile } = outlierModel();
    const results = [];
    for (const engine of ['web', 'node'] as const) {
      const evaluator = new FidelityEvaluator(feedsOf(outlierInputs(2, 64, 11)), {
        calibrationInputs: feedsOf(outlierInputs(2, 64, 3)),
        batchNum: 2,
        mode: 'cosine',
        maxDrop: 0.002,
      });
      results.push(await accuracyBasedAutoCalibration(bytes, evaluator, { engine, config: await createQuantConfig(bytes, { batchNum: 2 }), repairs: [] }));
    }
    const [web, node] = results;
    expect(web!.fallbackLayers).toEqual([fragile]);
    expect(node!.fallbackLayers).toEqual(web!.fallbackLayers);
    // Each engine also runs the calibration, whose float activations may differ in the last bits.
    expect(Object.keys(node!.record.layers).sort()).toEqual(Object.keys(web!.record.layers).sort());
    for (const [name, l] of Object.entries(web!.record.layers)) {
      const n = node!.record.layers[name]!;
      expect(n.num_bits_d).toBe(l.num_bits_d);
      expect(Math.abs(n.scale_d / l.scale_d - 1), name).toBeLessThan(1e-4);
      expect(Math.abs(n.offset_d - l.offset_d), name).toBeLessThanOrEqual(1);
    }
    expect(node!.quantizedMetric).toBeCloseTo(web!.quantizedMetric, 4);
    expect(node!.evaluations).toBe(web!.evaluations);
  });

  it('a classification evaluator gives the same float metric on both engines', async () => {
    const data = [0, 1].map((b) => {
      const { x, labels } = heldOutBatch(b * 250, 250);
      return { feeds: { input: new Tensor('float32', x, [250, 1, 28, 28]) }, labels };
    });
    const metrics = [];
    for (const engine of ['web', 'node'] as const) {
      const ev = new ClassificationEvaluator(data, { maxDrop: 0.01 });
      const s = await createSession(mnist, { engine });
      metrics.push(await ev.evaluate(s));
      await s.release();
    }
    expect(metrics[1]).toBe(metrics[0]);
  });
});
