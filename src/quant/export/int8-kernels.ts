/**
 * Which weight type the CPU target's integer kernels compute exactly with, asked of the runtime
 * itself. onnxruntime's x86 kernels for uint8 activations × int8 weights use VPMADDUBSW on AVX2 and
 * AVX-512 without VNNI, which saturates each pair of products at 32767 (255 · 127 · 2 = 64770 does
 * not fit), so a deploy model there computes something else than its fake-quant model. With uint8
 * weights (the same codes + 128, zero point 128: the same values) they take a kernel that widens to
 * 16 bits first and is exact. VNNI, ARM and WebAssembly compute uint8 × int8 exactly, and faster,
 * so int8 stays wherever it is exact. One tiny session per engine answers, once per process.
 */
import { encodeModel } from '../../onnx/model.js';
import { DataType, makeTensor } from '../../onnx/tensor.js';
import type { ModelProto } from '../../onnx/types.js';
import { createSession, defaultEngine, Tensor, type CreateSessionOptions } from '../../runtime/ort.js';

export type Int8WeightType = 'int8' | 'uint8';

/** Terms of the probe's dot product: 32 pairs, every one of which saturates where pairs do. */
const K = 64;

/** y = DQ(Q(x)) · DQ(W): uint8 activations at scale 1, int8 weights all 127, the form onnxruntime fuses to an integer MatMul. */
function probeModel(): Uint8Array {
  const scalar = (name: string, type: number, v: number) => makeTensor(name, type, [], type === DataType.FLOAT ? new Float32Array([v]) : type === DataType.UINT8 ? new Uint8Array([v]) : new Int8Array([v]));
  const value = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  const model = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'int8-saturation-probe',
      initializer: [
        scalar('s', DataType.FLOAT, 1),
        scalar('xz', DataType.UINT8, 0),
        scalar('wz', DataType.INT8, 0),
        makeTensor('wq', DataType.INT8, [K, 1], new Int8Array(K).fill(127)),
      ],
      node: [
        { opType: 'QuantizeLinear', name: 'q', input: ['x', 's', 'xz'], output: ['xq'] },
        { opType: 'DequantizeLinear', name: 'dqx', input: ['xq', 's', 'xz'], output: ['xd'] },
        { opType: 'DequantizeLinear', name: 'dqw', input: ['wq', 's', 'wz'], output: ['wd'] },
        { opType: 'MatMul', name: 'mm', input: ['xd', 'wd'], output: ['y'] },
      ],
      input: [value('x', [1, K])],
      output: [value('y', [1, 1])],
    },
  } as unknown as ModelProto;
  return encodeModel(model);
}

const answers = new Map<string, Promise<Int8WeightType>>();

/**
 * 'uint8' where the engine's integer MatMul saturates uint8 × int8 products (then the deploy model
 * stores those weights as uint8), else 'int8'. A probe that cannot run says 'int8' (the form every
 * onnxruntime fuses), leaving the parity check to judge the model.
 */
export async function int8WeightType(options: CreateSessionOptions = {}): Promise<Int8WeightType> {
  const key = `${options.engine ?? (await defaultEngine())}|${JSON.stringify(options.executionProviders ?? null)}`;
  let answer = answers.get(key);
  if (!answer) {
    answer = (async () => {
      const session = await createSession(probeModel(), { engine: options.engine, executionProviders: options.executionProviders });
      try {
        const out = await session.run({ x: new Tensor('float32', new Float32Array(K).fill(255), [1, K]) });
        const y = (out[session.outputNames[0]!]!.data as Float32Array)[0]!;
        return Math.abs(y - 255 * 127 * K) < 0.5 ? 'int8' : 'uint8';
      } finally {
        await session.release();
      }
    })().catch(() => 'int8' as const);
    answers.set(key, answer);
  }
  return answer;
}
