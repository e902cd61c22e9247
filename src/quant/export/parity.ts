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
import { env } from '../../runtime/env.js';
import { createSession, defaultEngine, runtimeName, type CreateSessionOptions, type InferenceSession, type OrtTensor, type SessionModel } from '../../runtime/ort.js';
import type { DeployTarget } from '../config/config.js';
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

const providerNames = (options: CreateSessionOptions) => (options.executionProviders ?? []).map((ep) => (typeof ep === 'string' ? ep : ep.name));

/**
 * The deploy model's session: on the target's own backend where this runtime has it (the 'webgpu'
 * target on onnxruntime-web's WebGPU build, where an adapter exists; the 'wasm' target on
 * onnxruntime-web's wasm backend, which every runtime here can load), else where calibration ran.
 */
async function deploySession(deploy: Uint8Array, options: CreateSessionOptions, target: DeployTarget): Promise<{ session: InferenceSession; providers: string[] }> {
  const all = { ...options, graphOptimizationLevel: 'all' as const };
  const engine = options.engine ?? (await defaultEngine());
  const names = providerNames(options);
  if (target === 'wasm' && !(engine === 'web' && names.length > 0 && names.every((ep) => ep === 'wasm'))) {
    return { session: await createSession(deploy, { ...all, engine: 'web', executionProviders: ['wasm'] }), providers: ['wasm'] };
  }
  if (target === 'webgpu' && !names.includes('webgpu') && env.hasWebGpuApi && engine === 'web') {
    try {
      return { session: await createSession(deploy, { ...all, executionProviders: ['webgpu'] }), providers: ['webgpu'] };
    } catch {
      // This build of onnxruntime-web has no WebGPU backend, or no adapter answered: measure where calibration ran.
    }
  }
  return { session: await createSession(deploy, all), providers: names };
}

/**
 * Deploy against fake-quant on `kept` (see the module comment); undefined when nothing was kept.
 * For the 'webgpu' target the deploy model runs on WebGPU where it can (see deploySession), the
 * fake-quant model where calibration ran; `backend` names both then.
 */
export async function measureParity(fakeQuant: SessionModel, deploy: Uint8Array, kept: readonly KeptBatch[], options: CreateSessionOptions = {}, target: DeployTarget = 'cpu'): Promise<Parity | undefined> {
  if (kept.length === 0) return undefined;
  const fake = await createSession(fakeQuant, options);
  const names = [...fake.outputNames];
  const sums = new Map(names.map((n) => [n, { c: new OutputComparison(), maxAbs: 0 }]));
  const providers = providerNames(options);
  const described = (eps: string[]) => (eps.length ? eps.join(', ') : 'default provider');
  let backend = `${runtimeName(fake)} ${described(providers)}`;
  let deployed: InferenceSession | undefined;
  try {
    const d = await deploySession(deploy, options, target);
    deployed = d.session;
    if (runtimeName(deployed) !== runtimeName(fake)) backend = `${runtimeName(deployed)} ${described(d.providers)} (the fake-quant model on ${backend})`;
    else if (described(d.providers) !== described(providers)) backend = `${runtimeName(deployed)} ${described(d.providers)} (the fake-quant model on ${described(providers)})`;
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
