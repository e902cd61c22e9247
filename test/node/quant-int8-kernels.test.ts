/**
 * The CPU target's integer-kernel weights follow what the runtime computes exactly: onnxruntime's x86
 * kernels without VNNI saturate uint8 × int8 pairs of products, so there the deploy model stores those
 * weights as uint8 with zero point 128 (the same values). The model here is made to saturate: positive
 * inputs near their maximum (uint8 codes near 255) times weights near their channel's maximum (127).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createQuantConfig, createSession, quantizeModel, Tensor, type QuantizeResult } from '../../src/index.js';
import { decodeModel, encodeModel } from '../../src/onnx/model.js';
import { DataType } from '../../src/onnx/tensor.js';
import { int8WeightType } from '../../src/quant/export/int8-kernels.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';

let s = 11;
const rnd = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
const model = encodeModel(
  buildModel(
    new GraphBuilder()
      .input('x', DataType.FLOAT, ['n', 64])
      .initializer('W', [64, 8], Float32Array.from({ length: 64 * 8 }, () => 0.9 + 0.1 * rnd()))
      .node('MatMul', ['x', 'W'], ['y'], {}, { name: 'fc' })
      .output('y', DataType.FLOAT),
    { opset: 13 },
  ),
);
const batches = [0, 1].map(() => ({ x: new Tensor('float32', Float32Array.from({ length: 16 * 64 }, () => 0.9 + 0.1 * rnd()), [16, 64]) }));

/** The int8 initializers DequantizeLinear reads (and their zero points) as uint8 codes + 128: the same values. */
function asUint8Weights(bytes: Uint8Array): { model: Uint8Array; changed: number } {
  const m = decodeModel(bytes);
  const g = m.graph!;
  const byName = new Map((g.initializer ?? []).map((t) => [t.name, t]));
  let changed = 0;
  for (const node of g.node ?? []) {
    if (node.opType !== 'DequantizeLinear') continue;
    const [q, , z] = [byName.get(node.input![0]!), byName.get(node.input![1]!), byName.get(node.input![2] ?? '')];
    if (q?.dataType !== DataType.INT8 || !z) continue;
    for (const t of [q, z]) {
      const raw = t.rawData!;
      t.rawData = Uint8Array.from(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength), (v) => v + 128);
      t.dataType = DataType.UINT8;
    }
    changed++;
  }
  return { model: encodeModel(m), changed };
}

/** Largest |deploy − fake-quant| over the largest |fake-quant| on the batches, on onnxruntime-node (cosine would miss a uniform shrink). */
async function errorToFakeQuant(r: QuantizeResult, deploy: Uint8Array): Promise<number> {
  const fake = await createSession(r.fakeQuantModel, { engine: 'node' });
  const dep = await createSession(deploy, { engine: 'node' });
  try {
    let diff = 0;
    let top = 0;
    for (const feeds of batches) {
      const a = (await fake.run(feeds))[fake.outputNames[0]!]!.data as Float32Array;
      const b = (await dep.run(feeds))[dep.outputNames[0]!]!.data as Float32Array;
      a.forEach((v, i) => {
        diff = Math.max(diff, Math.abs(v - b[i]!));
        top = Math.max(top, Math.abs(v));
      });
    }
    return diff / top;
  } finally {
    await fake.release();
    await dep.release();
  }
}

let web: QuantizeResult;
beforeAll(async () => {
  web = await quantizeModel(model, await createQuantConfig(model, { batchNum: 2, skipSlowLayers: false }), batches, { engine: 'web' });
});

describe('integer-kernel weights of the CPU deploy model', () => {
  it('onnxruntime-web (WebAssembly) computes uint8 × int8 exactly, so its deploy models keep int8 weights', async () => {
    expect(await int8WeightType({ engine: 'web' })).toBe('int8');
    expect(web.parity!.cosine).toBeGreaterThan(0.9999);
  });

  it("uint8 weights (+128, zero point 128) match the fake-quant model natively; int8 ones do only where the probe says int8", async () => {
    const { model: uint8, changed } = asUint8Weights(web.deployModel);
    expect(changed).toBe(1);
    const answer = await int8WeightType({ engine: 'node' });
    const withUint8 = await errorToFakeQuant(web, uint8);
    const withInt8 = await errorToFakeQuant(web, web.deployModel);
    expect(withUint8).toBeLessThan(1e-4);
    if (answer === 'int8') expect(withInt8).toBeLessThan(1e-4);
    else expect(withInt8).toBeGreaterThan(0.1);
  });

  it("a deploy model made on onnxruntime-node stores the weights as that runtime's probe says, and passes parity", async () => {
    const r = await quantizeModel(model, await createQuantConfig(model, { batchNum: 2, skipSlowLayers: false }), batches, { engine: 'node' });
    const answer = await int8WeightType({ engine: 'node' });
    const g = decodeModel(r.deployModel).graph!;
    const types = new Map((g.initializer ?? []).map((t) => [t.name, t.dataType]));
    const weightTypes = new Set((g.node ?? []).filter((n) => n.opType === 'DequantizeLinear' && /_quantized$/.test(n.input![0]!) && !/\.input/.test(n.input![0]!)).map((n) => types.get(n.input![0]!)));
    expect([...weightTypes]).toEqual([answer === 'uint8' ? DataType.UINT8 : DataType.INT8]);
    expect(r.parity!.cosine).toBeGreaterThanOrEqual(0.999);
  });
});
