/**
 * Sessions made from a parsed model: onnxruntime-web gets the large initializers as in-memory
 * external data (the tensors' own bytes, never an encoding of them); onnxruntime-node gets the
 * encoding. Both must compute exactly what a session from the model's bytes computes.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createSession, SessionCreationError, Tensor, type Engine } from '../../src/index.js';
import { decodeModel, encodeModel, encodeModelExternal, EXTERNAL_TENSOR_MIN_BYTES } from '../../src/onnx/model.js';
import { onnx } from '../../src/onnx/types.js';
import { heldOutBatch } from '../helpers/mnist.js';

const bytes = new Uint8Array(readFileSync(new URL('../fixtures/mnist_cnn.onnx', import.meta.url)));
const digits = () => ({ input: new Tensor('float32', heldOutBatch(0, 16).x, [16, 1, 28, 28]) });

async function logits(model: Uint8Array | ReturnType<typeof decodeModel>, engine: Engine): Promise<Float32Array> {
  const session = await createSession(model, { engine });
  try {
    const out = await session.run(digits());
    return out[session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('sessions from a parsed model', () => {
  it('encodeModelExternal moves only tensors of at least 64 KiB out, as files holding their own bytes, and leaves the model as it was', () => {
    const model = decodeModel(bytes);
    const before = encodeModel(model);
    const fc1 = model.graph!.initializer!.find((t) => t.name === 'fc1.weight')!;
    const { bytes: encoded, files } = encodeModelExternal(model, { prefix: 'w' });
    expect(files.map((f) => f.path)).toEqual(['w0']);
    // The same memory, not a copy.
    expect(files[0]!.data.buffer).toBe(fc1.rawData!.buffer);
    expect(files[0]!.data.byteOffset).toBe(fc1.rawData!.byteOffset);
    expect(fc1.rawData!.length).toBeGreaterThanOrEqual(EXTERNAL_TENSOR_MIN_BYTES);
    expect(encoded.length).toBeLessThan(bytes.length - fc1.rawData!.length + 1024);
    const written = decodeModel(encoded).graph!.initializer!.find((t) => t.name === 'fc1.weight')!;
    expect(written.dataLocation).toBe(onnx.TensorProto.DataLocation.EXTERNAL);
    expect(Object.fromEntries(written.externalData!.map((e) => [e.key, e.value]))).toEqual({ location: 'w0', offset: '0', length: String(fc1.rawData!.length) });
    expect(written.rawData?.length ?? 0).toBe(0);
    expect(encodeModel(model)).toEqual(before);
    expect(encodeModelExternal(model, { minBytes: 1 }).files).toHaveLength(model.graph!.initializer!.length);
  });

  it.each(['web', 'node'] as const)('on %s, computes bit for bit what a session from the bytes computes', async (engine) => {
    const model = decodeModel(bytes);
    expect(await logits(model, engine)).toEqual(await logits(bytes, engine));
  });

  it("on web, sessions created at once each get their own tensors (onnxruntime-web unmounts every file when a creation ends)", async () => {
    const a = decodeModel(bytes);
    // A second model with other weights under the same tensor names.
    const b = decodeModel(bytes);
    const fc1 = b.graph!.initializer!.find((t) => t.name === 'fc1.weight')!;
    const w = new Float32Array(fc1.rawData!.slice().buffer).map((v) => -v);
    fc1.rawData = new Uint8Array(w.buffer);
    const [ra, rb, rbytes] = await Promise.all([logits(a, 'web'), logits(b, 'web'), logits(bytes, 'web')]);
    expect(ra).toEqual(rbytes);
    expect(rb).toEqual(await logits(encodeModel(b), 'web'));
    expect(rb).not.toEqual(ra);
  });

  it('says what it got when the model is neither bytes nor a parsed model', async () => {
    const err = await createSession({ nodes: [] } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionCreationError);
    expect((err as Error).message).toMatch(/as a Uint8Array or a ModelProto, got/);
  });
});
