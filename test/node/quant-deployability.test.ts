import { describe, expect, it } from 'vitest';
import { createQuantConfig, OnnxFormatError, quantizeModel, Tensor } from '../../src/index.js';
import { DataType, encodeModel } from '../../src/subpaths/onnx.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { Random } from '../helpers/random.js';

/** An opset-9 Conv followed by Upsample, which cannot be raised to opset 13 (per-channel Q/DQ). */
function convThenUpsample(): Uint8Array {
  const rng = new Random(3);
  const g = new GraphBuilder().input('x', DataType.FLOAT, [1, 2, 4, 4]).output('y', DataType.FLOAT);
  g.initializer('w', [3, 2, 1, 1], Float32Array.from({ length: 6 }, () => rng.uniform(-1, 1)));
  g.initializer('scales', [4], Float32Array.of(1, 1, 2, 2));
  g.node('Conv', ['x', 'w'], ['c'], {}, { name: 'conv' });
  g.node('Upsample', ['c', 'scales'], ['y'], { mode: 'nearest' }, { name: 'up' });
  return encodeModel(buildModel(g, { opset: 9 }));
}

describe('deployability is checked before calibration', () => {
  it('fails before running any batch when the deploy model needs an opset the model cannot reach', async () => {
    const model = convThenUpsample();
    const config = await createQuantConfig(model, { skipSlowLayers: false });
    let batches = 0;
    const err = await quantizeModel(model, config, async (s) => {
      batches++;
      await s.run({ x: new Tensor('float32', new Float32Array(32), [1, 2, 4, 4]) });
    }).catch((e) => e);
    expect(err).toBeInstanceOf(OnnxFormatError);
    expect(err.message).toMatch(/up \(Upsample\)/);
    expect(batches).toBe(0);
  });

  it('per-tensor weights need only opset 10, which the same model reaches', async () => {
    const model = convThenUpsample();
    const config = await createQuantConfig(model, { skipSlowLayers: false, channelWise: false });
    const err = await quantizeModel(model, config, [{ x: new Tensor('float32', new Float32Array(32).fill(0.5), [1, 2, 4, 4]) }]).catch((e) => e);
    // Upsample changed at opset 10 too, so this still cannot deploy; the message says why.
    expect(err).toBeInstanceOf(OnnxFormatError);
    expect(err.message).toMatch(/cannot raise the model from opset 9 to 10/);
  });
});
