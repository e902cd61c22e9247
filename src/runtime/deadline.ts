/**
 * Cancellation and time limits around work the package does not control (the user's evaluator and
 * calibration callback): `signal` as in `fetch`, and a per-call limit in seconds. Either ends the wait
 * with an AbortedError; the abandoned call may still finish in the background, and its result is
 * ignored.
 */
import { AbortedError } from '../errors.js';

/** Throws an AbortedError when `signal` has fired, naming what was about to run. */
export function checkSignal(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new AbortedError(`aborted before ${what}${reasonOf(signal)}`, { cause: signal.reason });
}

function reasonOf(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error && r.name !== 'AbortError' ? ` (${r.message.slice(0, 200)})` : '';
}

/**
 * Runs `work`, rejecting with an AbortedError when `signal` fires or `seconds` pass first; an error
 * `work` throws becomes `wrap(error)`.
 */
export async function withDeadline<T>(
  work: () => Promise<T> | T,
  wrap: (cause: unknown) => Error,
  options: { signal?: AbortSignal; seconds?: number; what: string },
): Promise<T> {
  const { signal, seconds, what } = options;
  checkSignal(signal, what);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    if (seconds !== undefined && Number.isFinite(seconds)) {
      timer = setTimeout(() => reject(new AbortedError(`${what} did not finish within ${seconds} s`)), seconds * 1000);
    }
    if (signal) {
      onAbort = () => reject(new AbortedError(`aborted during ${what}${reasonOf(signal)}`, { cause: signal.reason }));
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    const running = (async () => {
      try {
        return await work();
      } catch (cause) {
        throw wrap(cause);
      }
    })();
    // An abandoned call that fails later must not surface as an unhandled rejection.
    running.catch(() => {});
    return await Promise.race([running, stop]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort) signal!.removeEventListener('abort', onAbort);
  }
}
