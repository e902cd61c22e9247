/**
 * The only module that touches onnxruntime-web. Callers get sessions through `createSession`, so the
 * choice of ort build (wasm, webgpu) and its settings live here. Users who load a specific build
 * (e.g. `onnxruntime-web/webgpu` in Deno) hand it over with `useOrt`.
 */
import * as defaultOrt from 'onnxruntime-web';
import { SessionCreationError } from '../errors.js';

export type Ort = typeof defaultOrt;
export type InferenceSession = defaultOrt.InferenceSession;
export type SessionOptions = defaultOrt.InferenceSession.SessionOptions;
export type OrtTensor = defaultOrt.Tensor;
export const Tensor = defaultOrt.Tensor;

let ort: Ort = defaultOrt;

/** Use another onnxruntime-web build (same API), e.g. `await import('onnxruntime-web/webgpu')`. */
export function useOrt(module: Ort): void {
  ort = module;
}

export function getOrt(): Ort {
  return ort;
}

/** Execution providers this package knows how to ask for; anything else is passed through. */
export const KNOWN_EXECUTION_PROVIDERS = Object.freeze(['wasm', 'cpu', 'webgpu', 'webnn'] as const);

export interface CreateSessionOptions {
  executionProviders?: SessionOptions['executionProviders'];
  graphOptimizationLevel?: SessionOptions['graphOptimizationLevel'];
}

export async function createSession(
  model: Uint8Array,
  options: CreateSessionOptions = {},
): Promise<InferenceSession> {
  const executionProviders = options.executionProviders ?? ['wasm'];
  try {
    return await ort.InferenceSession.create(model, {
      executionProviders,
      graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
    });
  } catch (cause) {
    const eps = executionProviders.map((ep) => (typeof ep === 'string' ? ep : ep.name)).join(', ');
    throw new SessionCreationError(
      `onnxruntime-web could not create a session on [${eps}]: ${(cause as Error)?.message ?? cause}. ` +
        `Known execution providers: ${KNOWN_EXECUTION_PROVIDERS.join(', ')} (webgpu needs onnxruntime-web/webgpu via useOrt()).`,
      { cause },
    );
  }
}
