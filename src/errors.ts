/** Longest message an error carries. */
const MESSAGE_LIMIT = 1000;
/** Problems a QuantConfigError's message lists (all are in `problems`). */
const LISTED_PROBLEMS = 10;

import { describeValue } from './text.js';

function boundMessage(message: string): string {
  if (message.length <= MESSAGE_LIMIT) return message;
  const keep = MESSAGE_LIMIT - 40;
  const head = Math.ceil(keep * 0.6);
  const tail = keep - head;
  return `${message.slice(0, head)}… (${message.length - keep} characters left out) …${message.slice(message.length - tail)}`;
}

/**
 * Every error the package raises on bad input is one of these, so callers can branch on `instanceof`
 * or on `code` (the latter survives structured cloning across workers).
 */
export class AutoquantError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    // Messages quote inputs (names, values, a runtime's text): a hostile one must not make them huge.
    // The middle goes: the start says what failed, the end what to do about it.
    super(boundMessage(message), options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A command line, or the data a user hands over (NumPy arrays, images, labels), does not fit what was asked. */
export class UsageError extends AutoquantError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** The bytes are not a usable ONNX model, or a tensor inside it is inconsistent. */
export class OnnxFormatError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ONNX_FORMAT', message, options);
  }
}

/** A kernel was called with arguments that cannot describe a valid computation. */
export class KernelArgumentError extends AutoquantError {
  constructor(message: string) {
    super('KERNEL_ARGUMENT', message);
  }
}

/** The current runtime cannot do what was asked (e.g. read a file path in a browser). */
export class UnsupportedEnvironmentError extends AutoquantError {
  constructor(message: string) {
    super('UNSUPPORTED_ENVIRONMENT', message);
  }
}

/** An engine that does not exist or cannot be loaded here (see `useEngine`). */
export class EngineError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENGINE', message, options);
  }
}

/** onnxruntime refused the model or the requested execution providers. */
export class SessionCreationError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SESSION_CREATION', message, options);
  }
}

/** A quantization config (built in code or loaded from a file) has one or more problems, all listed. */
export class QuantConfigError extends AutoquantError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], source?: string) {
    const where = source ? ` in ${describeValue(source, 200).replace(/^"|"$/g, '')}` : '';
    // Whole problems only, as many as fit: a problem cut short would lose the layer name it is about.
    const head = `invalid quantization config${where}:`;
    const listed: string[] = [];
    let length = head.length + 60;
    for (const p of problems.slice(0, LISTED_PROBLEMS)) {
      if (listed.length && length + p.length + 5 > MESSAGE_LIMIT) break;
      listed.push(p);
      length += p.length + 5;
    }
    const more = problems.length > listed.length ? `\n  … and ${problems.length - listed.length} more (all in error.problems)` : '';
    super('QUANT_CONFIG', `${head}\n  - ${listed.join('\n  - ')}${more}`);
    this.problems = problems;
  }
}

/** Calibration could not collect statistics (no batch ran, wrong feeds, a callback failed). */
export class CalibrationError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }, code = 'CALIBRATION') {
    super(code, message, options);
  }
}

/** The user's evaluator failed or reported something unusable; the message says which step. */
export class EvaluationError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EVALUATION', message, options);
  }
}

/** A run was cancelled through `signal`, or a step ran past its time limit. */
export class AbortedError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ABORTED', message, options);
  }
}

/** A file could not be read or written; the message names it and says why in plain words. */
export class FileAccessError extends AutoquantError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('FILE_ACCESS', message, options);
    this.path = path;
  }
}


/**
 * Calibration data that does not fit the model (none at all, or a feed with the wrong name, type or
 * shape), found before it runs; `input` names the model input, `expected` what the model declares,
 * `given` what came. A CalibrationError, so code catching those keeps working.
 */
export class ValidationError extends CalibrationError {
  readonly input?: string;
  readonly expected?: string;
  readonly given?: string;
  constructor(message: string, detail: { input?: string; expected?: string; given?: string } = {}) {
    super(message, undefined, 'VALIDATION');
    if (detail.input !== undefined) this.input = detail.input;
    if (detail.expected !== undefined) this.expected = detail.expected;
    if (detail.given !== undefined) this.given = detail.given;
  }
}

/**
 * An options object is unusable: not an object, an unknown key, or a value out of range. `code` says
 * whose options ('OPTIONS', 'AUTO_OPTIONS' for the automatic calibration, 'EVALUATOR_OPTIONS',
 * 'SAVE_ARGUMENTS' for saveModel, 'LOG_LEVEL' for setLogLevel).
 */
export class OptionsError extends AutoquantError {
  constructor(message: string, code = 'OPTIONS') {
    super(code, message);
  }
}

/** The caller's `onProgress` threw; the run stops with this, naming the event. */
export class ProgressCallbackError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROGRESS_CALLBACK', message, options);
  }
}

/** The kernels' WebAssembly memory could not grow to hold the tensors asked for. */
export class KernelMemoryError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KERNEL_MEMORY', message, options);
  }
}

/**
 * The deploy model computes something else on its runtime than the fake-quant model it was measured
 * as (see QuantizeResult.parity); saving it needs `{ force: true }`. `parity` holds the figures.
 */
export class ParityError extends AutoquantError {
  readonly parity: { backend: string; output: string; cosine: number; maxAbs: number; batches: number };
  constructor(message: string, parity: ParityError['parity']) {
    super('PARITY', message);
    this.parity = parity;
  }
}
