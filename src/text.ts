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

/**
 * Longest name quoted whole. Real layer, input and output names are far shorter (long transformer
 * exports stay under 200 characters); only a hostile model reaches this, and then the middle goes.
 */
export const NAME_LIMIT = 512;

/** `text` with its middle replaced by '…' so that it fits `limit` characters, keeping both ends. */
function elideMiddle(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const head = Math.ceil((limit - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (limit - 1 - head))}`;
}

/** A layer, node, input or output name quoted for a message: whole (see NAME_LIMIT). */
export function quoteName(name: string): string {
  return `'${elideMiddle(name, NAME_LIMIT)}'`;
}

/** Longest directory part a quoted path keeps; the file name itself is always kept whole. */
export const PATH_DIR_LIMIT = 120;

/**
 * A file path quoted for a message. A deep checkout or home folder must not push the file name the
 * user typed out of the message, so only the directory part is shortened, in its middle.
 */
export function quotePath(file: string): string {
  const cut = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\'));
  const dir = file.slice(0, cut + 1);
  const base = file.slice(cut + 1);
  return `'${elideMiddle(dir, PATH_DIR_LIMIT)}${elideMiddle(base, NAME_LIMIT)}'`;
}

/** Edit distance (insertions, deletions, substitutions), for suggesting the name a user meant. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The candidates closest to `name` (case-insensitive edit distance, then shared substrings), at
 * most `n`, for "did you mean" hints; none when nothing is close.
 */
export function nearestNames(name: string, candidates: Iterable<string>, n = 3): string[] {
  const lower = name.toLowerCase();
  const scored: { c: string; d: number }[] = [];
  for (const c of candidates) {
    const cl = c.toLowerCase();
    const d = cl === lower ? 0 : cl.includes(lower) || lower.includes(cl) ? 1 : editDistance(lower, cl);
    // Far more edits than half the name is a different name, not a typo.
    if (d <= Math.max(2, Math.ceil(Math.min(lower.length, cl.length) / 2))) scored.push({ c, d });
  }
  return scored.sort((x, y) => x.d - y.d || x.c.localeCompare(y.c)).slice(0, n).map((s) => s.c);
}

/** " (did you mean 'a' or 'b'?)", or '' when nothing is close. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const near = nearestNames(name, candidates);
  if (!near.length) return '';
  const quoted = near.map(quoteName);
  return ` (did you mean ${quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}` : quoted[0]}?)`;
}

/** What went wrong, from anything thrown (an Error's message, else the value), bounded. */
export function describeError(thrown: unknown): string {
  if (thrown instanceof Error) {
    const m = thrown.message;
    return m.length > 300 ? `${m.slice(0, 300)}…` : m;
  }
  return describeValue(thrown);
}

/** Bytes as people read them: KiB below a MiB, MiB with two decimals above. */
export function formatBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
