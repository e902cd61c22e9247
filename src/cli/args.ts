/** A small argument parser: positionals, `--flag`, `--key value`, `--key=value`, `-o value`. */
import { UsageError } from '../errors.js';
import { editDistance } from '../text.js';

export { UsageError };

export interface ParsedArgs {
  positionals: string[];
  options: Map<string, string | true>;
}

const ALIASES: Record<string, string> = { o: 'output', h: 'help', v: 'version' };

/**
 * `flags` take no value, `valued` take one; any other option is a typo and is reported at once
 * (rather than swallowing the next argument as its value).
 */
export function parseArgs(argv: readonly string[], flags: ReadonlySet<string>, valued: ReadonlySet<string>): ParsedArgs {
  const positionals: string[] = [];
  const options = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    const m = /^--?([^=]+)(?:=(.*))?$/.exec(a);
    if (!m || a === '-') {
      positionals.push(a);
      continue;
    }
    const key = ALIASES[m[1]!] ?? m[1]!;
    if (!flags.has(key) && !valued.has(key)) {
      const guess = closest(key, [...flags, ...valued]);
      throw new UsageError(`unknown option ${a.split('=')[0]}${guess ? ` (did you mean --${guess}?)` : ''} (see 'autoquant --help')`);
    }
    if (m[2] !== undefined) options.set(key, m[2]);
    else if (flags.has(key)) options.set(key, true);
    else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`option --${key} needs a value`);
      options.set(key, v);
      i++;
    }
  }
  return { positionals, options };
}

export class Options {
  private readonly used = new Set<string>();
  constructor(private readonly parsed: ParsedArgs, private readonly command: string) {}

  string(name: string): string | undefined {
    this.used.add(name);
    const v = this.parsed.options.get(name);
    if (v === true) throw new UsageError(`option --${name} needs a value`);
    return v;
  }

  required(name: string, why: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`${this.command}: --${name} is required (${why})`);
    return v;
  }

  number(name: string, check: (n: number) => boolean, expected: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (v.trim() === '') throw new UsageError(`--${name} needs a value (${expected})`);
    const n = Number(v);
    if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} must be ${expected}, got '${v}'`);
    return n;
  }

  flag(name: string): boolean {
    this.used.add(name);
    return this.parsed.options.get(name) === true;
  }

  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.string(name);
    if (v !== undefined && !choices.includes(v as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${v}'`);
    return v as T | undefined;
  }

  /** Rejects options the command does not know, so typos do not pass silently. */
  finish(): void {
    const unknown = [...this.parsed.options.keys()].filter((k) => !this.used.has(k));
    if (unknown.length) {
      const hints = unknown.map((k) => {
        const guess = closest(k, [...this.used]);
        return guess ? `--${k} (did you mean --${guess}?)` : `--${k}`;
      });
      throw new UsageError(`${this.command}: unknown option(s) ${hints.join(', ')} (see 'autoquant --help')`);
    }
  }
}

/** The known name nearest to `name` by edit distance, when it is close enough to be a typo. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(1, Math.ceil(name.length / 3)) ? best : undefined;
}
