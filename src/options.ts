/**
 * Option objects from JavaScript callers, checked by key: a misspelt key (`{ deploytarget: 'webgpu' }`,
 * `{ batchnum: 2 }`) would otherwise be ignored in silence and the call would do something else than
 * asked. Each entry point lists its keys with `optionKeys`, which TypeScript checks against the
 * options interface, so the list cannot drift from the type.
 */
import { OptionsError } from './errors.js';
import { describeValue, didYouMean, quoteName } from './text.js';

/** The keys of T, as a runtime list; the compiler rejects a missing or an extra key. */
export function optionKeys<T>(keys: { readonly [K in keyof Required<T>]: true }): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * Rejects anything but an object (or undefined) and any key `known` lacks, naming the nearest known
 * key. `code` is the error code the entry point already uses for its option problems.
 */
export function checkOptionKeys(options: unknown, known: readonly string[], what: string, code = 'OPTIONS'): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new OptionsError(`${what} options must be an object, got ${describeValue(options)}`, code);
  }
  for (const k of Object.keys(options)) {
    if (known.includes(k)) continue;
    const hint = didYouMean(k, known);
    throw new OptionsError(`${what}: unknown option ${quoteName(k)}${hint || ` (options: ${known.join(', ')})`}`, code);
  }
}
