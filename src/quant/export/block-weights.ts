/**
 * Block quantization of weights for the 'webgpu' target (see prepare/target.ts): each weight vector
 * along the reduction axis (a MatMul's column of B, an embedding's row) is cut into blocks of
 * `blockSize` values, each with its own scale and, where they help, its own zero point, stored as
 * unsigned 4- or 8-bit codes: the layout of onnxruntime's MatMulNBits and GatherBlockQuantized, whose
 * dequantization is (q − zero point) · scale.
 *
 * Each block's range is searched, not just taken from its min and max (RTN): a clip ratio from a
 * small grid shrinks the range, and the ratio with the least squared error of the block's values
 * wins (a data-free, per-block form of the clipping search HQQ and ONNX Runtime's quantizers make; an
 * outlier no longer stretches the step of the 31 others). Measured on Gaussian weights: 0.94 of
 * RTN's squared error at 4 bits, 0.99 at 8 (test/node/quant-webgpu.test.ts); more where a block
 * holds an outlier.
 *
 * Zero points cost one code per block (1/32 more bytes at the default block size). Per layer, the
 * symmetric form (no zero-point tensor: the runtime's default, the middle code) is kept unless the
 * asymmetric one cuts the squared error by more than ZERO_POINT_GAIN, and where the runtime can read them
 * (see matMulZeroPointsReadable).
 */
export interface BlockQuantizedWeight {
  bits: 4 | 8;
  blockSize: number;
  /** Vectors quantized (MatMul: N, the columns of B; embedding: the table's rows). */
  vectors: number;
  /** Length of each vector (MatMul: K; embedding: the row width). */
  length: number;
  /** Blocks per vector: ceil(length / blockSize). */
  blocks: number;
  /** Codes in [0, 2^bits), [vectors][blocks · blockSize], the tail of the last block padded with its zero point. */
  q: Uint8Array;
  /** [vectors][blocks]. */
  scale: Float32Array;
  /** [vectors][blocks], or undefined for the symmetric form (every zero point 2^(bits−1)). */
  zeroPoint?: Uint8Array;
  /** The dequantized values, in the layout the weight had (what the fake-quant model computes with). */
  fq: Float32Array;
  /** Σ (value − dequantized)² of the chosen form, each position weighed by `importance` where given (see quantizeBlocks). */
  error: number;
}

/** The clip ratios searched per block. */
const CLIP_RATIOS = [1, 0.97, 0.94, 0.91, 0.88, 0.85, 0.82, 0.79, 0.76, 0.73, 0.7];
/** Zero points are kept where they cut the layer's squared error by more than this share. */
export const ZERO_POINT_GAIN = 0.1;

interface Pick {
  scale: number;
  zeroPoint: number;
  error: number;
}

/** `importance[k]` weighs the error of the value at offset k of its vector (see quantizeBlocks); `base` is where the vector starts. */
function quantizeBlock(v: Float32Array, from: number, to: number, qmax: number, symmetric: boolean, importance?: Float32Array, base = 0): Pick {
  let lo = 0;
  let hi = 0;
  for (let i = from; i < to; i++) {
    const x = v[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const mid = (qmax + 1) / 2;
  let best: Pick = { scale: 1, zeroPoint: symmetric ? mid : 0, error: Infinity };
  if (lo === 0 && hi === 0) return { ...best, error: 0 };
  for (const r of CLIP_RATIOS) {
    let scale: number;
    let zeroPoint: number;
    if (symmetric) {
      // Codes mid−2^(b−1) … mid+2^(b−1)−1: the larger magnitude side decides the step.
      scale = Math.fround((r * Math.max(-lo, hi)) / (mid - 1));
      zeroPoint = mid;
    } else {
      scale = Math.fround((r * (hi - lo)) / qmax);
      zeroPoint = Math.min(qmax, Math.max(0, Math.round((-r * lo) / scale)));
    }
    if (!(scale > 0)) continue;
    let error = 0;
    for (let i = from; i < to; i++) {
      const x = v[i]!;
      const q = Math.min(qmax, Math.max(0, Math.round(x / scale) + zeroPoint));
      const d = x - Math.fround((q - zeroPoint) * scale);
      error += importance ? importance[i - base]! * d * d : d * d;
    }
    if (error < best.error) best = { scale, zeroPoint, error };
  }
  return best;
}

function quantizeVectors(vectors: Float32Array, count: number, length: number, bits: 4 | 8, blockSize: number, symmetric: boolean, importance?: Float32Array) {
  const qmax = 2 ** bits - 1;
  const blocks = Math.ceil(length / blockSize);
  const q = new Uint8Array(count * blocks * blockSize);
  const scale = new Float32Array(count * blocks);
  const zeroPoint = new Uint8Array(count * blocks);
  const fq = new Float32Array(count * length);
  let error = 0;
  for (let n = 0; n < count; n++) {
    const base = n * length;
    for (let b = 0; b < blocks; b++) {
      const from = base + b * blockSize;
      const to = Math.min(base + length, from + blockSize);
      const p = quantizeBlock(vectors, from, to, qmax, symmetric, importance, base);
      error += p.error;
      scale[n * blocks + b] = p.scale;
      zeroPoint[n * blocks + b] = p.zeroPoint;
      const out = (n * blocks + b) * blockSize;
      for (let i = 0; i < blockSize; i++) {
        const at = from + i;
        if (at < to) {
          const code = Math.min(qmax, Math.max(0, Math.round(vectors[at]! / p.scale) + p.zeroPoint));
          q[out + i] = code;
          fq[at] = Math.fround((code - p.zeroPoint) * p.scale);
        } else {
          q[out + i] = p.zeroPoint;
        }
      }
    }
  }
  return { q, scale, zeroPoint, fq, error, blocks };
}

/**
 * Block-quantizes `count` vectors of `length` values held contiguously in `vectors` ([count][length]);
 * `fq` comes back in that layout too (callers transpose where the weight is stored otherwise).
 * `importance` (length `length`), where given, weighs each position's squared error: for a MatMul
 * column, E[x_k²] of the input channel k it multiplies, so that the search minimises the expected
 * squared error of the layer's output (exact for uncorrelated input channels; the diagonal of the
 * Hessian that GPTQ uses whole). Weight scaling predicts its output error this way
 * (decide/weight-scaling.ts); the blocks a model ships with are searched on the weight's own error,
 * which measured as well on the ViT fixtures (docs/experiments.md).
 */
export function quantizeBlocks(vectors: Float32Array, count: number, length: number, bits: 4 | 8, blockSize: number, zeroPoints = true, importance?: Float32Array): BlockQuantizedWeight {
  const sym = quantizeVectors(vectors, count, length, bits, blockSize, true, importance);
  const asym = zeroPoints ? quantizeVectors(vectors, count, length, bits, blockSize, false, importance) : undefined;
  const chosen = asym && asym.error < sym.error * (1 - ZERO_POINT_GAIN) ? asym : sym;
  return {
    bits, blockSize, vectors: count, length, blocks: chosen.blocks,
    q: chosen.q, scale: chosen.scale, fq: chosen.fq, error: chosen.error,
    ...(asym && chosen === asym ? { zeroPoint: asym.zeroPoint } : {}),
  };
}

/**
 * Whether onnxruntime-web's JSEP WebGPU kernel (the default bundle's, 1.30) can read MatMulNBits zero
 * points for `n` columns: it views their bytes as uint32 words, and fails the run ("cannot convert
 * shape") unless their count is a multiple of 4. The head Gemm of the tiny ViT (N = 10, one block) is such a
 * layer; it is made symmetric instead.
 */
export function matMulZeroPointsReadable(n: number, blocks: number, bits: 4 | 8): boolean {
  return (n * Math.ceil((blocks * bits) / 8)) % 4 === 0;
}

/** `m` ([rows][cols]) transposed to [cols][rows]. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/** Codes packed as MatMulNBits stores B and zero points: 4-bit values two per byte, the first in the low nibble. */
export function packCodes(codes: Uint8Array, bits: 4 | 8, perRow: number, rows: number): Uint8Array {
  if (bits === 8) return codes;
  const rowBytes = Math.ceil(perRow / 2);
  const out = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < perRow; i++) {
      const v = codes[r * perRow + i]! & 15;
      out[r * rowBytes + (i >> 1)] |= i & 1 ? v << 4 : v;
    }
  }
  return out;
}

/** Bytes of the deploy form: codes, scales (float32) and zero points. */
export function blockBytes(w: BlockQuantizedWeight): number {
  const codes = (w.vectors * w.blocks * w.blockSize * w.bits) / 8;
  const zeroPoints = w.zeroPoint ? w.vectors * Math.ceil((w.blocks * w.bits) / 8) : 0;
  return codes + w.scale.length * 4 + zeroPoints;
}
