import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxFormatError } from '../../src/errors.js';
import {
  DataType,
  decodeModel,
  encodeModel,
  getConstant,
  loadModel,
  onnx,
  readTensor,
  type ModelProto,
  type TensorProto,
} from '../../src/onnx/index.js';
import { GraphBuilder, buildModel } from '../helpers/graph-builder.js';

function externalTensor(name: string, dataType: number, dims: number[], entries: Record<string, string>): TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType,
    dims,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: Object.entries(entries).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
  });
}

const weights = new Float32Array([0.5, -1, 2, 8]);
const shape = new BigInt64Array([3n, -1n]);
const table = new Float32Array([7, 8, 9]);

/** weights.bin: w at offset 0, shape at offset 4096 (page aligned, as exporters write);
 * data/table.bin: the Constant's value, read to the end of the file (no length given). */
function weightsFile(): Uint8Array {
  const file = new Uint8Array(4096 + 16);
  file.set(new Uint8Array(weights.buffer), 0);
  file.set(new Uint8Array(shape.buffer), 4096);
  return file;
}

function externalModel(wLocation = 'weights.bin'): ModelProto {
  const g = new GraphBuilder('ext')
    .input('x', DataType.FLOAT, [4])
    .tensor(externalTensor('w', DataType.FLOAT, [4], { location: wLocation, offset: '0', length: '16' }))
    .tensor(externalTensor('shape', DataType.INT64, [2], { location: 'weights.bin', offset: '4096', length: '16' }))
    .constant('table', externalTensor('table', DataType.FLOAT, [3], { location: 'data/table.bin' }))
    .node('Mul', ['x', 'w'], ['y'])
    .output('y', DataType.FLOAT, [4]);
  return buildModel(g);
}

let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'autoquant-ext-'));
  modelPath = join(dir, 'model.onnx');
  await mkdir(join(dir, 'data'));
  await writeFile(modelPath, encodeModel(externalModel()));
  await writeFile(join(dir, 'weights.bin'), weightsFile());
  await writeFile(join(dir, 'data', 'table.bin'), new Uint8Array(table.buffer));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function expectValues(model: ModelProto): void {
  const graph = model.graph!;
  expect(Array.from(readTensor(graph.initializer![0]!) as Float32Array)).toEqual(Array.from(weights));
  expect(Array.from(readTensor(graph.initializer![1]!) as BigInt64Array)).toEqual(Array.from(shape));
  expect(Array.from(readTensor(getConstant(graph, 'table')!) as Float32Array)).toEqual(Array.from(table));
}

describe('external data', () => {
  it('reads external tensors relative to the model file', async () => {
    expectValues(await loadModel(modelPath));
    expectValues(await loadModel(pathToFileURL(modelPath)));
  });

  it('inlines the data so the loaded model is self-contained', async () => {
    const model = await loadModel(modelPath);
    const w = model.graph!.initializer![0]!;
    expect(w.dataLocation).not.toBe(onnx.TensorProto.DataLocation.EXTERNAL);
    expect(w.externalData).toEqual([]);
    // Re-encoded and decoded without any files around.
    expectValues(decodeModel(encodeModel(model)));
  });

  it('takes external data from a map or a function when the model is given as bytes', async () => {
    const bytes = await readFile(modelPath);
    const files: Record<string, Uint8Array> = {
      'weights.bin': weightsFile(),
      'data/table.bin': new Uint8Array(table.buffer.slice(0)),
    };
    expectValues(await loadModel(bytes, { externalData: files }));
    const asked: string[] = [];
    expectValues(
      await loadModel(bytes, {
        externalData: async (location) => {
          asked.push(location);
          return files[location]!;
        },
      }),
    );
    expect(asked).toEqual(['weights.bin', 'data/table.bin']); // one fetch per file
  });

  it('reads relative to options.baseDir for models given as bytes', async () => {
    expectValues(await loadModel(await readFile(modelPath), { baseDir: dir }));
  });

  it('asks for externalData when bytes come without a directory', async () => {
    const bytes = await readFile(modelPath);
    await expect(loadModel(bytes)).rejects.toThrow(/tensor 'w'.*'weights\.bin'.*options\.externalData/);
  });

  it('names the missing file and the tensor that needs it', async () => {
    const other = join(dir, 'missing.onnx');
    await writeFile(other, encodeModel(externalModel('gone.bin')));
    const err = await loadModel(other).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OnnxFormatError);
    expect((err as Error).message).toMatch(/tensor 'w' \(FLOAT, dims \[4\]\) keeps its data in external file 'gone\.bin'/);
    expect((err as Error).message).toContain(join(dir, 'gone.bin'));
    expect((err as Error).message).toMatch(/does not exist/);
  });

  it('refuses locations outside the model directory', async () => {
    const other = join(dir, 'escape.onnx');
    await writeFile(other, encodeModel(externalModel('../etc/passwd')));
    await expect(loadModel(other)).rejects.toThrow(/outside the model's directory/);
  });

  it('reports ranges past the end of the external file', async () => {
    const short = { 'weights.bin': new Uint8Array(100), 'data/table.bin': new Uint8Array(12) };
    await expect(loadModel(await readFile(modelPath), { externalData: short })).rejects.toThrow(
      /tensor 'shape'.*bytes 4096\.\.4112 of external file 'weights\.bin', which has only 100 bytes/,
    );
  });

  it('checks inlined data against dims', async () => {
    const wrong = { 'weights.bin': weightsFile(), 'data/table.bin': new Uint8Array(8) };
    await expect(loadModel(await readFile(modelPath), { externalData: wrong })).rejects.toThrow(
      "tensor 'table' (FLOAT, dims [3]) has 8 bytes of raw_data, expected 12 bytes for 3 elements",
    );
  });

  it('decodes a model with external tensors but refuses to read them before they are loaded', async () => {
    const model = decodeModel(await readFile(modelPath));
    expect(() => readTensor(model.graph!.initializer![0]!)).toThrow(/external file 'weights\.bin', which was not loaded/);
  });
});
