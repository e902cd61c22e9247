/**
 * How messages quote what they are about: values and names from untrusted inputs, made safe to print
 * (never throwing, bounded in size).
 */
/** Longest value text an error message echoes: hostile inputs must not make messages huge. */
export const ECHO_LIMIT = 80;

/**
 * A value as error messages show it: JSON-like, never throwing (BigInt, cycles, getters, symbols),
 * never recursing deeper than a few levels, cut to ECHO_LIMIT characters.
 */
export function describeValue(value: unknown, limit = ECHO_LIMIT): string {
  let out = '';
  const seen = new Set<unknown>();
  const write = (v: unknown, depth: number): void => {
    if (out.length > limit) return;
    if (v === undefined) out += 'undefined';
    else if (v === null || typeof v === 'boolean') out += String(v);
    else if (typeof v === 'number') out += Number.isNaN(v) ? 'NaN' : String(v);
    else if (typeof v === 'bigint') out += `${v}n`;
    else if (typeof v === 'string') out += JSON.stringify(v.length > limit ? v.slice(0, limit) : v);
    else if (typeof v === 'symbol' || typeof v === 'function') out += typeof v;
    else if (seen.has(v)) out += '[circular]';
    else if (depth >= 3) out += Array.isArray(v) ? '[…]' : '{…}';
    else {
      seen.add(v);
      try {
        if (Array.isArray(v)) {
          out += '[';
          for (let i = 0; i < v.length && out.length <= limit; i++) {
            if (i) out += ', ';
            write(v[i], depth + 1);
          }
          out += ']';
        } else if (ArrayBuffer.isView(v)) {
          out += `${v.constructor.name}(${v.byteLength} bytes)`;
        } else {
          out += '{';
          let first = true;
          for (const k of Object.keys(v as object)) {
            if (out.length > limit) break;
            out += `${first ? '' : ', '}${JSON.stringify(k.length > limit ? k.slice(0, limit) : k)}: `;
            first = false;
            write((v as Record<string, unknown>)[k], depth + 1);
          }
          out += '}';
        }
      } catch {
        out += '[unreadable]';
      }
      seen.delete(v);
    }
  };
  write(value, 0);
  return out.length > limit ? `${out.slice(0, limit)}…` : out;
}

/** A name (layer, node, tensor, file) quoted for a message, cut to ECHO_LIMIT characters. */
export function quoteName(name: string): string {
  return `'${name.length > ECHO_LIMIT ? `${name.slice(0, ECHO_LIMIT)}…` : name}'`;
}

/** What went wrong, from anything thrown (an Error's message, else the value), bounded. */
export function describeError(thrown: unknown): string {
  if (thrown instanceof Error) {
    const m = thrown.message;
    return m.length > 300 ? `${m.slice(0, 300)}…` : m;
  }
  return describeValue(thrown);
}
