/**
 * The inputs a model declares (name, element type, dims) and the check of feeds against them, so
 * that a wrong feed fails with the input's name and both shapes before any session runs, instead
 * of as a runtime's message from deep inside calibration.
 */
import { ValidationError } from '../errors.js';
import { describeValue, quoteName } from '../text.js';
import { int64ToNumber } from './int64.js';
import type { ModelProto } from './types.js';

/** ONNX element type codes as onnxruntime's JavaScript tensors name them. */
const ORT_TYPES: Readonly<Record<number, string>> = Object.freeze({
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 21: 'uint4', 22: 'int4',
});

/** A graph input: its tensor type as onnxruntime names it, and dims (a name or undefined where free). */
export interface DeclaredInput {
  name: string;
  /** 'float32', 'int64', …; undefined where the graph does not say. */
  type?: string;
  /** undefined where the graph gives no shape at all (any rank). */
  dims?: (number | string | undefined)[];
}

/** The graph inputs a caller feeds (initializers listed as inputs are not among them). */
export function declaredInputs(model: ModelProto): DeclaredInput[] {
  const inits = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  return (model.graph?.input ?? [])
    .filter((v) => v.name && !inits.has(v.name))
    .map((v) => {
      const t = v.type?.tensorType;
      const type = t?.elemType ? ORT_TYPES[t.elemType] : undefined;
      const dims = t?.shape ? (t.shape.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null ? int64ToNumber(d.dimValue) : d.dimParam || undefined)) : undefined;
      return { name: v.name!, ...(type ? { type } : {}), ...(dims ? { dims } : {}) };
    });
}

/** "float32 [N, 3, 224, 224]"; a 0-d input reads "int64 [] (a scalar)". */
export function describeDeclared(input: DeclaredInput): string {
  const dims = input.dims ? `[${input.dims.map((d) => (typeof d === 'number' && d > 0 ? String(d) : d ?? '?')).join(', ')}]${input.dims.length === 0 ? ' (a scalar)' : ''}` : '(any shape)';
  return `${input.type ?? 'any type'} ${dims}`;
}

interface TensorLike {
  type: string;
  dims: readonly number[];
  data: { length: number };
}

function isTensorLike(v: unknown): v is TensorLike {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Partial<TensorLike>;
  return typeof t.type === 'string' && Array.isArray(t.dims) && typeof t.data === 'object' && t.data !== null;
}

/**
 * Checks one batch of feeds against the declared inputs: every input present, nothing else, each a
 * tensor of the declared type, rank and fixed dims. `where` names the batch ("calibration batch 2").
 * @throws ValidationError naming the input, what the model declares and what was given.
 */
export function checkFeeds(feeds: unknown, inputs: readonly DeclaredInput[], where: string): void {
  const names = inputs.map((i) => i.name);
  const list = names.map(quoteName).join(', ') || 'none';
  if (typeof feeds !== 'object' || feeds === null || Array.isArray(feeds)) {
    throw new ValidationError(`${where}: feeds must be an object mapping input names to Tensors (model inputs: ${list}), got ${describeValue(feeds)}`);
  }
  const given = Object.keys(feeds);
  const unknown = given.filter((n) => !names.includes(n));
  if (unknown.length) {
    throw new ValidationError(`${where}: ${quoteName(unknown[0]!)} is not an input of the model (model inputs: ${list})`, { input: unknown[0]! });
  }
  for (const input of inputs) {
    const value = (feeds as Record<string, unknown>)[input.name];
    const expected = describeDeclared(input);
    if (value === undefined) {
      throw new ValidationError(`${where}: input ${quoteName(input.name)} is missing; the model declares ${expected} (given: ${given.map(quoteName).join(', ') || 'nothing'})`, { input: input.name, expected });
    }
    if (!isTensorLike(value)) {
      throw new ValidationError(`${where}: input ${quoteName(input.name)} must be a Tensor (the model declares ${expected}), got ${describeValue(value)}`, { input: input.name, expected });
    }
    const shown = `${value.type} [${value.dims.join(', ')}]`;
    const mismatch = (why: string) =>
      new ValidationError(`${where}: input ${quoteName(input.name)} is ${shown}, but the model declares ${expected}: ${why}`, { input: input.name, expected, given: shown });
    if (input.type && value.type !== input.type) throw mismatch(`the element type must be ${input.type}`);
    if (!input.dims) continue;
    if (value.dims.length !== input.dims.length) throw mismatch(`the rank must be ${input.dims.length}`);
    input.dims.forEach((d, axis) => {
      if (typeof d === 'number' && d > 0 && value.dims[axis] !== d) throw mismatch(`axis ${axis} must be ${d}`);
    });
  }
}
