/**
 * Every error the package raises on bad input is one of these, so callers can branch on `instanceof`
 * or on `code` (the latter survives structured cloning across workers).
 */
export class AutoquantError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
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
    const where = source ? ` in ${source}` : '';
    super('QUANT_CONFIG', `invalid quantization config${where}:\n  - ${problems.join('\n  - ')}`);
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
