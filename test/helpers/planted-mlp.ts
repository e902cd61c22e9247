/**
 * A small classifier with planted outlier channels, the kind that folding or training leaves behind:
 * four dense layers with Relu between them; the output channels `PLANTED` of `fc2` are 1000× larger
 * than the rest (its weight columns and bias scaled up) and `fc3` reads them through weight rows
 * 1000× smaller, so the float function is that of the unplanted network. Per-tensor weights lose
 * fc2's small columns; a per-tensor activation scale for fc3's input and fc3's tiny rows lose the
 * planted channels' signal whatever the weight granularity. Cross-layer equalization undoes the
 * planting exactly.
 *
 * The task: inputs are noisy copies of ten random prototypes, the label is the prototype; the
 * hidden layers are near-identity maps and fc4 scores each prototype by (negated) distance.
 */
import { encodeModel } from '../../src/subpaths/onnx.js';
import { buildModel, GraphBuilder } from './graph-builder.js';
import { Random } from './random.js';

export const MLP_WIDTH = 32;
export const CLASSES = 10;
export const PLANTED = [3, 11, 20, 29];
const FACTOR = 1000;

function prototypes(seed: number): Float32Array[] {
  const rng = new Random(seed);
  return Array.from({ length: CLASSES }, () => Float32Array.from({ length: MLP_WIDTH }, () => rng.uniform(0, 1)));
}

/** The planted model (or, with `plant` false, the same function without the outliers). */
export function plantedMlp(options: { plant?: boolean; seed?: number } = {}): Uint8Array {
  const rng = new Random(options.seed ?? 5);
  const n = MLP_WIDTH;
  const nearIdentity = () => Float32Array.from({ length: n * n }, (_, i) => (Math.floor(i / n) === i % n ? 1 : 0) + 0.05 * rng.normal());
  const w1 = nearIdentity(); // Gemm transB=1: [out, in]
  const b1 = Float32Array.from({ length: n }, () => 0.05 * rng.normal());
  const w2 = nearIdentity(); // Gemm: [in, out]
  const b2 = Float32Array.from({ length: n }, () => 0.05 * rng.normal());
  const w3 = nearIdentity(); // MatMul: [in, out]
  // Nearest prototype: argmin |x − p|² = argmax x·p − |p|²/2.
  const w4 = new Float32Array(CLASSES * n); // Gemm transB=1: [class, in]
  const b4 = new Float32Array(CLASSES);
  prototypes(options.seed ?? 5).forEach((p, k) => {
    w4.set(p, k * n);
    b4[k] = -0.5 * p.reduce((s, v) => s + v * v, 0);
  });
  if (options.plant !== false) {
    for (const c of PLANTED) {
      for (let r = 0; r < n; r++) w2[r * n + c] *= FACTOR;
      b2[c] *= FACTOR;
      for (let k = 0; k < n; k++) w3[c * n + k] /= FACTOR;
    }
  }
  const g = new GraphBuilder('planted_mlp')
    .input('x', 1, ['N', n])
    .initializer('w1', [n, n], w1).initializer('b1', [n], b1)
    .node('Gemm', ['x', 'w1', 'b1'], ['h1'], { transB: 1 }, { name: 'fc1' })
    .node('Relu', ['h1'], ['a1'], {}, { name: 'relu1' })
    .initializer('w2', [n, n], w2).initializer('b2', [n], b2)
    .node('Gemm', ['a1', 'w2', 'b2'], ['h2'], {}, { name: 'fc2' })
    .node('Relu', ['h2'], ['a2'], {}, { name: 'relu2' })
    .initializer('w3', [n, n], w3)
    .node('MatMul', ['a2', 'w3'], ['h3'], {}, { name: 'fc3' })
    .node('Relu', ['h3'], ['a3'], {}, { name: 'relu3' })
    .initializer('w4', [CLASSES, n], w4).initializer('b4', [CLASSES], b4)
    .node('Gemm', ['a3', 'w4', 'b4'], ['logits'], { transB: 1 }, { name: 'fc4' })
    .output('logits', 1);
  return encodeModel(buildModel(g, { opset: 13 }));
}

/** `count` labelled inputs: a prototype plus noise, in [0, ∞). */
export function plantedMlpData(count: number, seed: number, modelSeed = 5): { x: Float32Array; labels: number[] } {
  const protos = prototypes(modelSeed);
  const rng = new Random(seed);
  const x = new Float32Array(count * MLP_WIDTH);
  const labels: number[] = [];
  for (let i = 0; i < count; i++) {
    const k = rng.int(0, CLASSES - 1);
    labels.push(k);
    for (let j = 0; j < MLP_WIDTH; j++) x[i * MLP_WIDTH + j] = Math.max(0, protos[k]![j]! + 0.25 * rng.normal());
  }
  return { x, labels };
}
