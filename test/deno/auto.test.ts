// Deno: accuracy-based automatic calibration end to end on the built package, with real
// onnxruntime-web sessions: the planted-outlier fixture must end with exactly layer3 in float
// (AMCT's search, and after the refinement too), or with layer3 at 16-bit activations (the default repairs);
// adaptive rounding and channel splitting records rebuild the same models without data.
import assert from 'node:assert/strict';
import { accuracyBasedAutoCalibration, createQuantConfig, FidelityEvaluator, quantizeModel, Tensor, ValidationError } from '../../dist/index.js';
import { rng } from './random.ts';

function batches(n: number, rows: number, seed: number) {
  const next = rng(seed);
  return Array.from({ length: n }, () => ({ x: new Tensor('float32', Float32Array.from({ length: rows * 16 }, () => next() * 2 - 1), [rows, 16]) }));
}

Deno.test('auto-calibration falls back exactly the planted outlier layer (binary search)', async () => {
  const model = await Deno.readFile(new URL('../fixtures/outlier_mlp.onnx', import.meta.url));
  const evaluator = new FidelityEvaluator(batches(2, 64, 11), { calibrationInputs: batches(2, 64, 3), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
  const dir = await Deno.makeTempDir();
  const r = await accuracyBasedAutoCalibration(model, evaluator, { savePrefix: `${dir}/m`, repairs: [] });
  assert.equal(r.passed, true, r.message);
  assert.deepEqual(r.fallbackLayers, ['layer3']);
  assert.ok(r.evaluations <= 1 + 1 + 3 + 1, `${r.evaluations} evaluations`);
  const files = [];
  for await (const e of Deno.readDir(dir)) files.push(e.name);
  assert.deepEqual(files.sort(), ['m_auto_calibration.json', 'm_deploy_model.onnx', 'm_fake_quant_model.onnx', 'm_quant_config.json', 'm_record.json', 'm_report.html']);
  await Deno.remove(dir, { recursive: true });
});

Deno.test('auto-calibration repairs the planted outlier layer with 16-bit activations instead of float', async () => {
  const model = await Deno.readFile(new URL('../fixtures/outlier_mlp.onnx', import.meta.url));
  const evaluator = new FidelityEvaluator(batches(2, 64, 11), { calibrationInputs: batches(2, 64, 3), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
  const r = await accuracyBasedAutoCalibration(model, evaluator);
  assert.equal(r.passed, true, r.message);
  assert.deepEqual(r.fallbackLayers, []);
  assert.deepEqual(r.repairedLayers.map((x) => [x.layer, x.repair]), [['layer3', 'int16']]);
});

Deno.test('adaptive weight rounding records its choice and a reused record rebuilds the same deploy model', async () => {
  const model = await Deno.readFile(new URL('../fixtures/outlier_mlp.onnx', import.meta.url));
  const config = await createQuantConfig(model, { batchNum: 2, weightRounding: 'adaptive' });
  const r = await quantizeModel(model, config, batches(2, 64, 3));
  assert.ok(r.adaptiveRounding, 'adaptiveRounding is reported');
  assert.ok(r.adaptiveRounding.errorAfter <= r.adaptiveRounding.errorBefore);
  for (const l of r.layers.filter((x) => x.weights)) assert.equal(typeof r.record.layers[l.name]!.round_w, 'string', l.name);
  const again = await quantizeModel(model, config, [], { record: r.record });
  assert.deepEqual(again.deployModel, r.deployModel);
});

Deno.test('refine tries the layer left in float back in int8; the returned config and record rebuild the deploy model without data', async () => {
  const model = await Deno.readFile(new URL('../fixtures/outlier_mlp.onnx', import.meta.url));
  const evaluator = new FidelityEvaluator(batches(2, 64, 11), { calibrationInputs: batches(2, 64, 3), batchNum: 2, mode: 'cosine', maxDrop: 0.002 });
  const r = await accuracyBasedAutoCalibration(model, evaluator, { repairs: [], refine: true });
  assert.equal(r.passed, true, r.message);
  assert.deepEqual(r.fallbackLayers, ['layer3']);
  assert.deepEqual(r.refinedLayers, []);
  assert.deepEqual(r.history.at(-1)!.fallbackLayers, []);
  assert.equal(r.history.at(-1)!.ok, false);
  const again = await quantizeModel(model, r.config, [], { record: r.record });
  assert.deepEqual(again.deployModel, r.deployModel);
});

Deno.test('channel splitting splits the planted outlier channel, and a reused record rebuilds the same deploy model', async () => {
  const model = await Deno.readFile(new URL('../fixtures/outlier_mlp.onnx', import.meta.url));
  const config = await createQuantConfig(model, { batchNum: 2, channelSplitting: 0.25 });
  const r = await quantizeModel(model, config, batches(2, 64, 3));
  assert.deepEqual(r.channelSplits.map((s) => s.layer), ['layer3']);
  assert.ok(r.record.layers.layer3!.split_d![0]! > 1);
  const again = await quantizeModel(model, config, [], { record: r.record });
  assert.deepEqual(again.deployModel, r.deployModel);
});

Deno.test('quantizeModel warns that the planted outlier layer wrecks the all-int8 output, and a feed of the wrong rank is a ValidationError', async () => {
  const model = await Deno.readFile(new URL('../fixtures/outlier_mlp.onnx', import.meta.url));
  const r = await quantizeModel(model, await createQuantConfig(model, { batchNum: 2 }), batches(2, 64, 3));
  assert.equal(r.outputFidelity.length, 1);
  assert.equal(r.outputFidelity[0].batches, 2);
  assert.ok(r.outputFidelity[0].cosine < 0.99, JSON.stringify(r.outputFidelity));
  assert.deepEqual(r.warnings.map((w) => [w.code, w.output]), [['LOW_FIDELITY', r.outputFidelity[0].output]]);
  assert.match(r.warnings[0].message, /run the accuracy-driven search/);
  await assert.rejects(
    quantizeModel(model, await createQuantConfig(model), [{ x: new Tensor('float32', new Float32Array(16), [16]) }]),
    (e: unknown) => e instanceof ValidationError && e.input === 'x' && /the rank must be 2/.test(e.message),
  );
});
