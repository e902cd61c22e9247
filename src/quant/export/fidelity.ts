/**
 * How close the quantized model's outputs stay to float, on the calibration batches quantizeModel
 * already ran (see KeptBatch): per model output, the cosine and the SQNR over all kept batches
 * together. Cosine alone is blind to scale (and is 1 for any positive one-value output), so SQNR,
 * which is finite whenever the numbers differ, stands beside it. One session on the fake-quant
 * model, one run per kept batch.
 */
import { createSession, runtimeName, type CreateSessionOptions, type OrtTensor } from '../../runtime/ort.js';
import { CalibrationError } from '../../errors.js';
import { describeError, quoteName } from '../../text.js';
import type { KeptBatch } from '../calibrate/calibrate.js';
import type { QuantWarning } from '../prepare/coverage.js';

export interface OutputFidelity {
  output: string;
  /** Cosine of the quantized output to float, over every element of every kept batch. */
  cosine: number;
  /** 10·log10(Σ float² / Σ (float − quantized)²) in dB; Infinity when equal. */
  sqnrDb: number;
  /** Calibration batches compared. */
  batches: number;
}

/** Below this output cosine a result warns (LOW_FIDELITY) and suggests the accuracy-driven search. */
export const FIDELITY_WARNING_COSINE = 0.99;

/**
 * Σab, Σa², Σb², Σ(a−b)² of a float output against its quantized twin, in float64, over as many
 * batches as are added: what cosine, SQNR and relative error over a whole data set need (model
 * outputs are small next to activations; a JS loop is enough).
 */
export class OutputComparison {
  private ab = 0;
  private aa = 0;
  private bb = 0;
  private ee = 0;

  add(a: Float32Array, b: Float32Array): void {
    let ab = 0, aa = 0, bb = 0, ee = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!, y = b[i]!;
      ab += x * y;
      aa += x * x;
      bb += y * y;
      ee += (x - y) * (x - y);
    }
    this.ab += ab;
    this.aa += aa;
    this.bb += bb;
    this.ee += ee;
  }

  /** As the ranking scores it: two all-zero vectors agree; one all-zero against another does not. */
  cosine(): number {
    if (this.aa === 0 && this.bb === 0) return 1;
    if (this.aa === 0 || this.bb === 0) return 0;
    return Math.max(-1, Math.min(1, this.ab / Math.sqrt(this.aa * this.bb)));
  }

  /** 10·log10(Σa² / Σ(a−b)²) in dB; Infinity when equal. */
  sqnrDb(): number {
    if (this.ee === 0) return Infinity;
    if (this.aa === 0) return -Infinity;
    return 10 * Math.log10(this.aa / this.ee);
  }

  /** 1 − ‖a − b‖ / ‖a‖: 1 only when equal, whatever the scale. */
  relative(): number {
    if (this.aa === 0) return this.ee === 0 ? 1 : 0;
    return 1 - Math.sqrt(this.ee / this.aa);
  }
}

/** Runs `model` (a fake-quant or deploy model) on the kept batches and compares each float32 output. */
export async function measureFidelity(model: Uint8Array, kept: readonly KeptBatch[], options: CreateSessionOptions = {}): Promise<OutputFidelity[]> {
  if (kept.length === 0) return [];
  const names = Object.keys(kept[0]!.outputs);
  const sums = new Map(names.map((n) => [n, new OutputComparison()]));
  const session = await createSession(model, options);
  try {
    for (const [i, batch] of kept.entries()) {
      let out: Record<string, OrtTensor>;
      try {
        out = (await session.run(batch.feeds)) as Record<string, OrtTensor>;
      } catch (cause) {
        throw new CalibrationError(`${runtimeName(session)} could not run the quantized model on calibration batch ${i + 1} to measure its outputs: ${describeError(cause)}`, { cause });
      }
      for (const n of names) {
        const a = batch.outputs[n];
        const t = out[n];
        if (a && t?.type === 'float32' && (t.data as Float32Array).length === a.length) sums.get(n)!.add(a, t.data as Float32Array);
      }
    }
  } finally {
    await session.release();
  }
  return names.map((output) => ({ output, cosine: sums.get(output)!.cosine(), sqnrDb: sums.get(output)!.sqnrDb(), batches: kept.length }));
}

/** A LOW_FIDELITY warning for each output below FIDELITY_WARNING_COSINE. */
export function fidelityWarnings(fidelity: readonly OutputFidelity[]): QuantWarning[] {
  return fidelity
    .filter((f) => f.cosine < FIDELITY_WARNING_COSINE)
    .map((f) => ({
      code: 'LOW_FIDELITY' as const,
      output: f.output,
      message:
        `output ${quoteName(f.output)} of the quantized model has cosine ${f.cosine.toFixed(4)} (SQNR ${f.sqnrDb.toFixed(1)} dB) to float on ${f.batches} calibration batch${f.batches === 1 ? '' : 'es'}, below ${FIDELITY_WARNING_COSINE}: ` +
        'run the accuracy-driven search (`autoquant auto`, accuracyBasedAutoCalibration) to find the layers that cause it and keep them in float or at 16 bits',
    }));
}
