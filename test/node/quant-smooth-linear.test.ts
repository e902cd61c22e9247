/**
 * Activation equalization of the linear layers behind a normalization (SmoothQuant's migration):
 * which tensors it takes, that it leaves the float model bit for bit, that it restores a ViT whose
 * LayerNorms carry outlier channels, and that it declines where the estimate sees no gain.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createQuantConfig, createSession, quantizeModel, Tensor, type ModelProto } from '../../src/index.js';
import { DataType, decodeModel } from '../../src/subpaths/onnx.js';
import { getKernels } from '../../src/subpaths/kernels.js';
import { PreparedQuantization } from '../../src/quant/quantize.js';
import { scanLayers } from '../../src/quant/prepare/registry.js';
import { findSmoothingSites, migrationFactors, siteProfile } from '../../src/quant/decide/smooth-linear.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { trainBatch } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

const fixture = (f: string) => new Uint8Array(readFileSync(`test/fixtures/transformers/${f}`));
const sitesOf = (m: ModelProto, perChannel: (name: string) => boolean = () => true) =>
  findSmoothingSites(m.graph!, scanLayers(m.graph!).layers, perChannel).map((s) => `${s.readers.map((r) => r.layer.name).join('+')}<-${s.absorber.kind}[${s.steps.length}]`);

const rng = new Random(5);
/** LayerNormalization (opset 17) over 8 channels → MatMul a (8 → 4) and the reader `other` adds. */
function normThenLinear(other?: (g: GraphBuilder) => void): ModelProto {
  const g = new GraphBuilder('ln')
    .input('x', DataType.FLOAT, [2, 3, 8])
    .initializer('gamma', [8], rng.normals(8))
    .initializer('beta', [8], rng.normals(8))
    .node('LayerNormalization', ['x', 'gamma', 'beta'], ['h'], { axis: -1 }, { name: 'ln' })
    .initializer('wa', [8, 4], rng.normals(32))
    .node('MatMul', ['h', 'wa'], ['ya'], {}, { name: 'a' })
    .output('ya', DataType.FLOAT);
  other?.(g);
  return buildModel(g, { opset: 17 });
}

describe('the tensors smoothing takes', () => {
  it("a decomposed LayerNorm's scale Mul (before its bias Add) feeding Q, K and V as one site, the MLP's first layer another; LayerNormalization at opset 17", () => {
    const decomposed = sitesOf(decodeModel(fixture('vit_tiny.onnx')));
    expect(decomposed).toContain('/blocks.0/q/MatMul+/blocks.0/k/MatMul+/blocks.0/v/MatMul<-mul[1]');
    expect(decomposed).toContain('/blocks.1/fc1/MatMul<-mul[1]');
    // Only behind normalizations: not GELU's last Mul by ½ before the MLP's second layer.
    expect(decomposed.filter((s) => s.includes('fc2'))).toEqual([]);
    expect(decomposed).toHaveLength(4);
    expect(sitesOf(decodeModel(fixture('vit_tiny_ln17.onnx')))).toContain('/blocks.0/q/MatMul+/blocks.0/k/MatMul+/blocks.0/v/MatMul<-layernorm[0]');
    expect(sitesOf(normThenLinear())).toEqual(['a<-layernorm[0]']);
  });

  it('not when another reader sees the values, nor when a reader quantizes its weights per tensor, nor behind a constant Mul that is no normalization', () => {
    const scaled = new GraphBuilder('scaled')
      .input('x', DataType.FLOAT, [2, 8])
      .initializer('s', [8], rng.normals(8))
      .node('Mul', ['x', 's'], ['h'], {}, { name: 'scale' })
      .initializer('wa', [8, 4], rng.normals(32))
      .node('MatMul', ['h', 'wa'], ['ya'], {}, { name: 'a' })
      .output('ya', DataType.FLOAT);
    expect(sitesOf(buildModel(scaled, { opset: 13 }))).toEqual([]);
    expect(sitesOf(normThenLinear((g) => g.node('Relu', ['h'], ['r'], {}, { name: 'relu' }).output('r', DataType.FLOAT)))).toEqual([]);
    // A Shape reader sees no values.
    expect(sitesOf(normThenLinear((g) => g.node('Shape', ['h'], ['s'], {}, { name: 'shape' }).output('s', DataType.INT64)))).toEqual(['a<-layernorm[0]']);
    expect(sitesOf(normThenLinear(), () => false)).toEqual([]);
  });

  it("SmoothQuant's factors as powers of two: α 0.5 balances √(max|x| / max|w|)", () => {
    const m = normThenLinear();
    const site = findSmoothingSites(m.graph!, scanLayers(m.graph!).layers, () => true)[0]!;
    const profile = siteProfile(m.graph!, site);
    const wMax = Array.from({ length: 8 }, (_, c) => Math.max(...Array.from({ length: 4 }, (_, o) => profile.maxAbs[o * 8 + c]!)));
    const x = [64, 1, 1, 1, 1, 1, 1, 1];
    const f = migrationFactors({ lo: x.map((v) => -v), hi: x, meanSquare: x }, profile, 0.5);
    for (let c = 0; c < 8; c++) expect(f[c]).toBe(2 ** Math.round(Math.log2(Math.sqrt(wMax[c]! / x[c]!))));
  });
});

describe('on the tiny ViT', () => {
  const calib = [0, 1, 2, 3].map((b) => ({ input: new Tensor('float32', trainBatch(b * 32, 32), [32, 1, 28, 28]) }));
  const held = { input: new Tensor('float32', trainBatch(4000, 64), [64, 1, 28, 28]) };
  const run = async (b: Uint8Array) => {
    const s = await createSession(b, { graphOptimizationLevel: 'disabled' });
    const out = (await s.run(held))[s.outputNames[0]!]!.data as Float32Array;
    await s.release();
    return out;
  };

  it('with outlier channels behind its LayerNorms: bit for bit the float model, and the int8 model back near float', async () => {
    const bytes = fixture('vit_tiny_outliers.onnx');
    const k = await getKernels();
    const reference = await run(bytes);
    const floats: Float32Array[] = [];
    const cosines: number[] = [];
    for (const activationEqualization of [false, true]) {
      const p = await PreparedQuantization.create(bytes, await createQuantConfig(bytes, { batchNum: 4, activationEqualization }));
      await p.calibrate(calib);
      floats.push(await run(p.fakeQuantModel([]).model));
      cosines.push(k.cosine(reference, await run(p.fakeQuantModel(p.plan()).model)));
    }
    console.log(`ViT with outlier channels, cosine to float: ${cosines[0]!.toFixed(5)} without smoothing, ${cosines[1]!.toFixed(5)} with`);
    expect(Buffer.compare(Buffer.from(floats[1]!.buffer), Buffer.from(floats[0]!.buffer))).toBe(0);
    expect(cosines[0]).toBeLessThan(0.995);
    expect(cosines[1]).toBeGreaterThan(0.999);
  }, 60_000);

  it('reports the smoothed layers, keeps one set of factors per input in the record, and the record reproduces the model without data', async () => {
    const bytes = fixture('vit_tiny_outliers.onnx');
    const config = await createQuantConfig(bytes, { batchNum: 4 });
    const first = await quantizeModel(bytes, config, calib);
    const smoothed = first.activationEqualized.map((e) => e.layer);
    expect(smoothed).toEqual(expect.arrayContaining(['/blocks.0/q/MatMul', '/blocks.0/k/MatMul', '/blocks.0/v/MatMul', '/blocks.0/fc1/MatMul', '/blocks.1/fc1/MatMul']));
    const q = first.record.layers['/blocks.0/q/MatMul']!.equalize_d!;
    expect(first.record.layers['/blocks.0/v/MatMul']!.equalize_d).toEqual(q);
    // The planted channels 5 and 17 are the ones narrowed most.
    const least = Math.min(...q);
    expect(q[5]).toBe(least);
    expect(q[17]).toBe(least);
    const again = await quantizeModel(bytes, config, [], { record: first.record });
    expect(Buffer.compare(Buffer.from(again.deployModel), Buffer.from(first.deployModel))).toBe(0);
    const split = structuredClone(first.record);
    split.layers['/blocks.0/k/MatMul']!.equalize_d = q.map((f, i) => (i === 0 ? f * 2 : f));
    await expect(quantizeModel(bytes, config, [], { record: split })).rejects.toThrow(/read one input, so their equalize_d must be the same factors/);
  }, 60_000);

  it('without outliers: no site is taken, the model is the one without smoothing', async () => {
    const bytes = fixture('vit_tiny.onnx');
    const on = await quantizeModel(bytes, await createQuantConfig(bytes, { batchNum: 4 }), calib);
    const off = await quantizeModel(bytes, await createQuantConfig(bytes, { batchNum: 4, activationEqualization: false }), calib);
    expect(on.activationEqualized).toEqual([]);
    expect(Buffer.compare(Buffer.from(on.deployModel), Buffer.from(off.deployModel))).toBe(0);
  }, 60_000);
});
