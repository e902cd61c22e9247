/** Longest message an error carries. */
const MESSAGE_LIMIT = 1000;
/** Problems a QuantConfigError's message lists (all are in `problems`). */
const LISTED_PROBLEMS = 10;

import { describeValue } from './text.js';

/**
 * Every error the package raises on bad input is one of these, so callers can branch on `instanceof`
 * or on `code` (the latter survives structured cloning across workers).
 */
export class AutoquantError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    // Messages quote inputs (names, values, a runtime's text): a hostile one must not make them huge.
    super(message.length > MESSAGE_LIMIT ? `${message.slice(0, MESSAGE_LIMIT)}… (${message.length - MESSAGE_LIMIT} more characters)` : message, options);
    this.name = new.target.name;
    this.code = code;
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
    const listed = problems.slice(0, LISTED_PROBLEMS).map((p) => (p.length > 200 ? `${p.slice(0, 200)}…` : p));
    const more = problems.length > LISTED_PROBLEMS ? `\n  … and ${problems.length - LISTED_PROBLEMS} more (all in error.problems)` : '';
    super('QUANT_CONFIG', `invalid quantization config${where}:\n  - ${listed.join('\n  - ')}${more}`);
    this.problems = problems;
  }
}

/** Calibration could not collect statistics (no batch ran, wrong feeds, a callback failed). */
export class CalibrationError extends AutoquantError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CALIBRATION', message, options);
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

