/**
 * Parity: whether the deploy model computes on the runtime it ships to what the fake-quant model
 * computes, the model every accuracy figure was measured on. The two differ where the runtime fuses
 * Q/DQ pairs into integer kernels (it requantizes in its own rounding, or sums in another order) or
 * falls back to another kernel; a deploy model whose outputs drift from the fake-quant ones is the
 * failure users report most, and nothing else would catch it before the model ships. Both models run
 * on the kept calibration batches, in the same runtime and execution providers as calibration, the
 * deploy model with every graph optimization on (as it is deployed). Measured at the defaults
 * (scratch runs on the bench models' calibration batches, onnxruntime-node CPU): MNIST CNN and PP-OCR
 * cls cosine 1.000000, PP-OCRv4 det 0.99954, rec 0.99922; with optimizations off all four are 1.
 */
import { CalibrationError } from '../../errors.js';
import { createSession, runtimeName, type CreateSessionOptions, type InferenceSession, type OrtTensor } from '../../runtime/ort.js';
import { describeError, quoteName } from '../../text.js';
import type { KeptBatch } from '../calibrate/calibrate.js';
import type { QuantWarning } from '../prepare/coverage.js';
import { OutputComparison } from './fidelity.js';

export interface Parity {
  /** The runtime and execution providers both models ran on, in words ('onnxruntime-node cpu'). */
  backend: string;
  /** The model output that differs most (lowest cosine). */
  output: string;
  /** Cosine of the deploy output to the fake-quant output over every kept batch. */
  cosine: number;
  /** Largest |deploy − fake-quant| over those outputs. */
  maxAbs: number;
  batches: number;
}

/** Below this cosine a result warns (LOW_PARITY) and saveModel refuses without `force`. */
export const PARITY_MIN_COSINE = 0.999;

async function outputs(session: InferenceSession, batch: KeptBatch, what: string, i: number): Promise<Record<string, OrtTensor>> {
  try {
    return (await session.run(batch.feeds)) as Record<string, OrtTensor>;
  } catch (cause) {
    throw new CalibrationError(`${runtimeName(session)} could not run the ${what} on calibration batch ${i + 1} to check parity: ${describeError(cause)}`, { cause });
  }
}

/** Deploy against fake-quant on `kept` (see the module comment); undefined when nothing was kept. */
export async function measureParity(fakeQuant: Uint8Array, deploy: Uint8Array, kept: readonly KeptBatch[], options: CreateSessionOptions = {}): Promise<Parity | undefined> {
  if (kept.length === 0) return undefined;
  const fake = await createSession(fakeQuant, options);
  const names = [...fake.outputNames];
  const sums = new Map(names.map((n) => [n, { c: new OutputComparison(), maxAbs: 0 }]));
  const providers = (options.executionProviders ?? []).map((ep) => (typeof ep === 'string' ? ep : ep.name));
  const backend = `${runtimeName(fake)} ${providers.length ? providers.join(', ') : 'default provider'}`;
  let deployed: InferenceSession | undefined;
  try {
    deployed = await createSession(deploy, { ...options, graphOptimizationLevel: 'all' });
    for (const [i, batch] of kept.entries()) {
      const a = await outputs(fake, batch, 'fake-quant model', i);
      const b = await outputs(deployed, batch, 'deploy model', i);
      for (const n of names) {
        const x = a[n];
        const y = b[n];
        if (x?.type !== 'float32' || y?.type !== 'float32') continue;
        const xs = x.data as Float32Array;
        const ys = y.data as Float32Array;
        if (xs.length !== ys.length) continue;
        const s = sums.get(n)!;
        s.c.add(xs, ys);
        for (let j = 0; j < xs.length; j++) s.maxAbs = Math.max(s.maxAbs, Math.abs(xs[j]! - ys[j]!));
      }
    }
  } finally {
    await fake.release();
    await deployed?.release();
  }
  let worst = names[0]!;
  for (const n of names) if (sums.get(n)!.c.cosine() < sums.get(worst)!.c.cosine()) worst = n;
  const maxAbs = Math.max(...names.map((n) => sums.get(n)!.maxAbs));
  return { backend, output: worst, cosine: sums.get(worst)!.c.cosine(), maxAbs, batches: kept.length };
}

/** One line for the CLI and the HTML report. */
export function describeParity(p: Parity): string {
  return `deploy model against fake-quant on ${p.backend}, output ${p.output}: cosine ${p.cosine.toFixed(6)}, max |difference| ${p.maxAbs.toPrecision(3)} (${p.batches} calibration batch${p.batches === 1 ? '' : 'es'})`;
}

/** No parity measured (nothing quantized, no data ran) counts as acceptable: there is nothing to compare. */
/** Whether a deploy model with this parity is refused (saveModel) or withheld (automatic calibration): measured, below the limit, not forced. */
export function parityRefused(parity: Parity | undefined, force: boolean): parity is Parity {
  return !force && parity !== undefined && parity.cosine < PARITY_MIN_COSINE;
}

export function parityWarnings(parity: Parity | undefined): QuantWarning[] {
  if (!parityRefused(parity, false)) return [];
  return [{
    code: 'LOW_PARITY',
    output: parity.output,
    message: `the deploy model's output ${quoteName(parity.output)} has cosine ${parity.cosine.toFixed(5)} (max |difference| ${parity.maxAbs.toPrecision(3)}) to the fake-quant model's on ${parity.backend}, over ${parity.batches} calibration batch${parity.batches === 1 ? '' : 'es'}, below ${PARITY_MIN_COSINE}: `
      + 'the runtime computes something else than the model the accuracy was measured on; saveModel refuses it unless given { force: true }',
  }];
}
