/**
 * The automatic search as an orchestrator: the user's calibration callback is asked for its
 * batches once (later passes replay copies within a budget), cheap argument checks run before the
 * model is read, and the record returned is built at the end without touching calibration's.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  createQuantConfig,
  FileAccessError,
  OptionsError,
  Tensor,
  type CalibrationSession,
  type Feeds,
} from '../../src/index.js';
import { replayedCallback } from '../../src/quant/calibrate/replay.js';
import { outlierEvaluator, outlierModel } from '../helpers/outlier-model.js';

/** A plain-object evaluator around the outlier model's, counting the calls to calibration. */
function countingEvaluator() {
  const inner = outlierEvaluator(32);
  const counts = { calibration: 0, evaluate: 0 };
  return {
    counts,
    evaluator: {
      maxDrop: 0.002,
      calibration: (s: CalibrationSession) => (counts.calibration++, inner.calibration(s)),
      evaluate: (s: Parameters<typeof inner.evaluate>[0]) => (counts.evaluate++, inner.evaluate(s)),
      reset: () => inner.reset(),
    },
  };
}

describe('the calibration callback', () => {
  it('is called once by a search that ranks, repairs and measures layer errors (every later pass replays its feeds)', async () => {
    const { bytes, fragile } = outlierModel();
    const config = await createQuantConfig(bytes, { batchNum: 2 });
    const { counts, evaluator } = countingEvaluator();
    const r = await accuracyBasedAutoCalibration(bytes, evaluator, { config, repairs: ['observer', 'int16'], layerErrors: true });
    expect(r.passed).toBe(true);
    expect(r.repairedLayers.map((x) => x.layer)).toContain(fragile);
    expect(r.layerErrors?.length).toBe(r.quantizedLayers.length);
    expect(counts.calibration).toBe(1);
    expect(r.calibrationCalls).toBe(1);
    expect(counts.evaluate).toBe(r.evaluations);
  });

  it('replays copies of the first call\'s feeds, so a callback that refills one buffer still replays every batch as it was', async () => {
    const buffer = new Float32Array(4);
    let calls = 0;
    const user = async (s: CalibrationSession) => {
      calls++;
      for (let b = 0; b < 3; b++) {
        buffer.fill(b + 1);
        await s.run({ x: new Tensor('float32', buffer, [1, 4]) });
      }
    };
    const replay = replayedCallback(user, 3);
    const seen: number[][] = [];
    const session = (): CalibrationSession => ({ inputNames: ['x'], outputNames: ['y'], run: async (f: Feeds) => (seen.push(Array.from(f.x!.data as Float32Array)), {}) });
    await replay.callback(session());
    buffer.fill(9);
    seen.length = 0;
    await replay.callback(session());
    await replay.callback(session());
    expect(calls).toBe(1);
    expect(seen).toEqual([[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]);
  });

  it('is called once per pass when its feeds pass the replay budget, or when a first call ran fewer batches than needed', async () => {
    let calls = 0;
    const user = async (s: CalibrationSession) => {
      calls++;
      await s.run({ x: new Tensor('float32', new Float32Array(1024), [1, 1024]) });
      await s.run({ x: new Tensor('float32', new Float32Array(1024), [1, 1024]) });
    };
    const session: CalibrationSession = { inputNames: ['x'], outputNames: ['y'], run: async () => ({}) };
    const small = replayedCallback(user, 2, 6000);
    for (let i = 0; i < 3; i++) await small.callback(session);
    expect(calls).toBe(3);
    expect(small.replaying).toBe(false);
    calls = 0;
    const short = replayedCallback(user, 3);
    for (let i = 0; i < 2; i++) await short.callback(session);
    expect(calls).toBe(2);
  });
});

describe('cheap checks first', () => {
  it('refuses a bad budget before reading the model', async () => {
    const { evaluator } = countingEvaluator();
    await expect(accuracyBasedAutoCalibration('/no/such/model.onnx', evaluator, { maxEvaluations: 1 })).rejects.toBeInstanceOf(OptionsError);
    await expect(accuracyBasedAutoCalibration('/no/such/model.onnx', evaluator, { maxSeconds: 0 })).rejects.toBeInstanceOf(OptionsError);
    await expect(accuracyBasedAutoCalibration('/no/such/model.onnx', evaluator, { savePrefix: '' })).rejects.toBeInstanceOf(OptionsError);
  });

  it('refuses an output path that cannot be written before reading the model', async () => {
    const { evaluator } = countingEvaluator();
    const file = join(mkdtempSync(join(tmpdir(), 'autoquant-')), 'a-file');
    writeFileSync(file, '');
    const err = await accuracyBasedAutoCalibration('/no/such/model.onnx', evaluator, { savePrefix: `${file}/out` }).catch((e) => e);
    expect(err).toBeInstanceOf(FileAccessError);
    expect(String(err.message)).toContain('is a file, not a directory');
  });
});
