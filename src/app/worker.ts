/**
 * The app's Web Worker: the whole automatic calibration runs here, so the page stays responsive and
 * a run that exhausts memory takes down this worker, not the tab. One job at a time; the page cancels
 * a run by ending the worker (see page.ts).
 */
import type { AutoProgressEvent } from '../auto/types.js';
import { AutoquantError } from '../errors.js';
import { getOrt } from '../runtime/ort.js';
import { describeError } from '../text.js';
import { inspectModel, runJob } from './job.js';
import type { FromWorker, Job, ToWorker } from './protocol.js';

interface WorkerScope {
  location: { href: string };
  navigator: { gpu?: { requestAdapter(): Promise<unknown> } };
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (e: MessageEvent<ToWorker>) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

// onnxruntime-web is served beside the app (ort/); its wasm is fetched from there, never from a CDN.
getOrt().env.wasm.wasmPaths = new URL('./ort/', scope.location.href).href;

let running = false;

/** WebGPU for the WebGPU target when the browser grants an adapter; wasm otherwise (where the other targets' models run). */
async function backendFor(job: Job): Promise<{ executionProviders: string[]; backend: string }> {
  if (job.target !== 'webgpu') return { executionProviders: ['wasm'], backend: 'wasm' };
  const adapter = await scope.navigator.gpu?.requestAdapter().catch(() => null);
  return adapter ? { executionProviders: ['webgpu', 'wasm'], backend: 'WebGPU' } : { executionProviders: ['wasm'], backend: 'wasm (this browser grants no WebGPU adapter)' };
}

/** Overall progress from the phases' own counts: monotone, and honest about the search's unknown length. */
function progressMeter(): (e: AutoProgressEvent) => number {
  let evaluations = 0;
  let last = 0;
  const span = (from: number, to: number, e: AutoProgressEvent) => from + (to - from) * (e.done !== undefined && e.total ? e.done / e.total : 0);
  return (e) => {
    if (e.evaluation) evaluations++;
    const f = e.phase === 'float-evaluation' ? 0.03
      : e.phase === 'calibration' ? span(0.05, 0.25, e)
      : e.phase === 'quantized-evaluation' ? 0.28
      : e.phase === 'ranking' ? span(0.3, 0.6, e)
      : e.phase === 'saving' ? 0.97
      // The search's length is not known ahead: each evaluation closes part of what is left.
      : 0.6 + 0.35 * (1 - 1 / (1 + evaluations / 4));
    last = Math.max(last, f);
    return last;
  };
}

/** An error in words for the page, with a code it can branch on. */
function describeFailure(e: unknown): { code: string; message: string } {
  if (e instanceof AutoquantError) return { code: e.code, message: e.message };
  const text = describeError(e);
  if (/out of memory|allocation failed|bad_alloc|Cannot enlarge memory/i.test(text)) {
    return { code: 'OUT_OF_MEMORY', message: `out of memory: this tab could not get the memory the model needs (${text}). Close other tabs, or try a smaller model or fewer calibration rows` };
  }
  return { code: 'INTERNAL', message: text };
}

async function run(job: Job): Promise<void> {
  running = true;
  const meter = progressMeter();
  try {
    const backend = await backendFor(job);
    scope.postMessage({ type: 'progress', phase: 'starting', message: `running on ${backend.backend}`, fraction: 0 });
    const { summary, files, result } = await runJob(job, {
      ...backend,
      onProgress: (e) => {
        scope.postMessage({ type: 'progress', phase: e.phase, message: e.message, fraction: meter(e) });
        if (e.phase === 'ranking' && e.layer !== undefined && e.score !== undefined) {
          scope.postMessage({ type: 'score', layer: e.layer, score: e.score, done: e.done ?? 0, total: e.total ?? 0 });
        }
      },
    });
    if (result.ranking.length) scope.postMessage({ type: 'ranking', scores: result.ranking.map((s) => ({ layer: s.layer, score: s.score })) });
    scope.postMessage({ type: 'done', summary, files }, files.flatMap((f) => (typeof f.data === 'string' ? [] : [f.data])));
  } catch (e) {
    scope.postMessage({ type: 'error', during: 'run', ...describeFailure(e) });
  } finally {
    running = false;
  }
}

scope.addEventListener('message', (event) => {
  const m = event.data;
  if (m.type === 'run') {
    if (running) scope.postMessage({ type: 'error', during: 'run', code: 'BUSY', message: 'a run is already in progress: cancel it first' });
    else void run(m.job);
  } else if (m.type === 'inspect') {
    inspectModel(m.model, m.target, m.allLayers).then(
      (summary) => scope.postMessage({ type: 'inspected', summary }),
      (e: unknown) => scope.postMessage({ type: 'error', during: 'inspect', ...describeFailure(e) }),
    );
  }
});
