/**
 * The only module that touches onnxruntime. Callers get sessions through `createSession`, so the
 * engine (onnxruntime-web's wasm/WebGPU builds, or native onnxruntime-node in Node and Deno), its
 * settings and its thread count live here. Users who load a specific web build (e.g.
 * `onnxruntime-web/webgpu` in Deno) hand it over with `useOrt`; `useEngine` picks the engine.
 */
import * as defaultOrt from 'onnxruntime-web';
import { EngineError, SessionCreationError } from '../errors.js';
import { encodeModel, encodeModelExternal } from '../onnx/model.js';
import type { ModelProto } from '../onnx/types.js';
import { describeError, describeValue } from '../text.js';
import { cpuCount, env } from './env.js';

export type Ort = typeof defaultOrt;
export type InferenceSession = defaultOrt.InferenceSession;
export type SessionOptions = defaultOrt.InferenceSession.SessionOptions;
export type OrtTensor = defaultOrt.Tensor;
export const Tensor = defaultOrt.Tensor;

/**
 * 'web': onnxruntime-web (wasm by default; any build given to `useOrt`). 'node': onnxruntime-node,
 * the native runtime, in Node and Deno when it is installed (an optional peer dependency).
 */
export type Engine = 'web' | 'node';
export const ENGINES: readonly Engine[] = Object.freeze(['web', 'node']);

/** What the engines share: onnxruntime-common's session API. */
interface Runtime {
  InferenceSession: Pick<Ort['InferenceSession'], 'create'>;
}

let ort: Ort = defaultOrt;
let chosen: Engine | undefined;
let nodeRuntime: Promise<Runtime | undefined> | undefined;
let threadsSet = false;

/** Use another onnxruntime-web build (same API), e.g. `await import('onnxruntime-web/webgpu')`. */
export function useOrt(module: Ort): void {
  ort = module;
}

/** The onnxruntime-web build in use. */
export function getOrt(): Ort {
  return ort;
}

/** onnxruntime-node when this host can load it, else undefined (the import is tried once). */
function loadNode(): Promise<Runtime | undefined> {
  if (env.runtime !== 'node' && env.runtime !== 'deno') return Promise.resolve(undefined);
  // A computed specifier, so bundlers for the browser neither resolve nor bundle it.
  const specifier = ['onnxruntime', 'node'].join('-');
  nodeRuntime ??= import(/* @vite-ignore */ specifier).then(
    (m: Runtime & { default?: Runtime }) => (m.InferenceSession ? m : m.default),
    () => undefined,
  );
  return nodeRuntime;
}

/**
 * Sets the engine for sessions whose options name none. Without a call, the first session picks
 * 'node' in Node when onnxruntime-node can be loaded, else 'web'. Deno gets 'node' only on request:
 * the native addon loaded into Deno 2.9 crashed the process at exit in one of several test runs.
 * @throws EngineError for an unknown name, or 'node' where onnxruntime-node cannot be loaded.
 */
export async function useEngine(engine: Engine): Promise<void> {
  await engineRuntime(engine);
  chosen = engine;
}

/** The engine sessions get when their options name none (detecting it on first use). */
export async function defaultEngine(): Promise<Engine> {
  chosen ??= env.runtime === 'node' && (await loadNode()) ? 'node' : 'web';
  return chosen;
}

async function engineRuntime(engine: Engine): Promise<Runtime> {
  if (engine === 'web') return ort;
  if (engine !== 'node') throw new EngineError(`unknown engine '${String(engine)}': use one of ${ENGINES.join(', ')}`);
  const node = await loadNode();
  if (!node) {
    throw new EngineError(
      env.runtime === 'node' || env.runtime === 'deno'
        ? "engine 'node' needs the onnxruntime-node package: npm install onnxruntime-node"
        : `engine 'node' runs only in Node and Deno, not in ${env.runtime}`,
    );
  }
  return node;
}

/**
 * onnxruntime-web sizes its wasm thread pool from navigator.hardwareConcurrency, which Node 20 does
 * not define (so one thread); in Node set it from the real core count unless the user set it.
 * Elsewhere its own choice stands: Deno cannot start its workers (they load from blob: URLs), and
 * browsers report their cores.
 */
async function sizeWasmThreads(): Promise<void> {
  if (threadsSet || env.runtime !== 'node') return;
  threadsSet = true;
  const wasm = ort.env?.wasm;
  if (wasm && wasm.numThreads === undefined) wasm.numThreads = await cpuCount();
}

/** Execution providers this package knows how to ask for; anything else is passed through. */
export const KNOWN_EXECUTION_PROVIDERS = Object.freeze(['wasm', 'cpu', 'webgpu', 'webnn'] as const);

export interface CreateSessionOptions {
  executionProviders?: SessionOptions['executionProviders'];
  graphOptimizationLevel?: SessionOptions['graphOptimizationLevel'];
  /** Which onnxruntime runs the sessions (default: see `useEngine`). */
  engine?: Engine;
}

/** Which runtime made each session, so that messages about it name the one in use. */
const sessionEngines = new WeakMap<object, Engine>();

/** 'onnxruntime-node' or 'onnxruntime-web': the runtime that runs `session` (for messages). */
export function runtimeName(session?: object): string {
  return (session && sessionEngines.get(session)) === 'node' ? 'onnxruntime-node' : 'onnxruntime-web';
}

/** What a session is made from: a model's encoding, or the model (see createSession). */
export type SessionModel = Uint8Array | ModelProto;

/** onnxruntime-web's session creations, one at a time: each one ends by unmounting every external-data file. */
let webCreations: Promise<unknown> = Promise.resolve();

/**
 * A session for `model`: its encoding, or the model itself. A model handed over as a ModelProto
 * reaches onnxruntime-web with its large initializers as in-memory external data (see
 * encodeModelExternal), so no encoding holds a copy of the weights and the runtime's memory gets
 * one copy of them instead of the encoding's and the parsed model's; onnxruntime-node gets the encoding.
 */
export async function createSession(model: SessionModel, options: CreateSessionOptions = {}): Promise<InferenceSession> {
  if (!(model instanceof Uint8Array) && !(typeof model === 'object' && model !== null && typeof (model as ModelProto).graph === 'object')) {
    throw new SessionCreationError(`createSession needs the model as a Uint8Array or a ModelProto, got ${describeValue(model)}`);
  }
  const requested = options.executionProviders;
  if (requested !== undefined && !(Array.isArray(requested) && requested.every((ep) => typeof ep === 'string' || (typeof ep === 'object' && ep !== null && typeof ep.name === 'string')))) {
    throw new SessionCreationError(`executionProviders must be a list such as ['wasm'] or ['webgpu', 'wasm'], got ${describeValue(requested)}`);
  }
  const engine = options.engine ?? (await defaultEngine());
  const runtime = await engineRuntime(engine);
  // onnxruntime-node's CPU provider is 'cpu'; 'wasm' (the web default) means the same there.
  const executionProviders = engine === 'node'
    ? (options.executionProviders ?? ['cpu']).map((ep) => (ep === 'wasm' ? 'cpu' : ep))
    : options.executionProviders ?? ['wasm'];
  if (engine === 'web') await sizeWasmThreads();
  const { bytes, files } = model instanceof Uint8Array ? { bytes: model, files: [] } : engine === 'web' ? encodeModelExternal(model) : { bytes: encodeModel(model), files: [] };
  const create = () =>
    runtime.InferenceSession.create(bytes, {
      executionProviders,
      graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
      ...(files.length ? { externalData: files } : {}),
    }) as Promise<InferenceSession>;
  try {
    let session: InferenceSession;
    if (engine === 'web') {
      const turn = webCreations.then(create);
      webCreations = turn.catch(() => {});
      session = await turn;
    } else {
      session = await create();
    }
    sessionEngines.set(session, engine);
    return session;
  } catch (cause) {
    const eps = executionProviders.map((ep) => (typeof ep === 'string' ? ep : ep.name)).join(', ');
    const name = engine === 'node' ? 'onnxruntime-node' : 'onnxruntime-web';
    throw new SessionCreationError(
      `${name} could not create a session on [${eps}]: ${describeError(cause)}. ` +
        `Known execution providers: ${KNOWN_EXECUTION_PROVIDERS.join(', ')} (webgpu needs onnxruntime-web/webgpu via useOrt() and engine 'web').`,
      { cause },
    );
  }
}
