/**
 * The package's log, after AMCT's set_logging_level(print_level, save_level): `setLogLevel` says
 * which messages are printed (console.error: stderr in Node and Deno, the console in a browser) and
 * which are saved to `{prefix}_autoquant.log` beside the files of a run with `savePrefix`. Both are
 * off by default: a library stays quiet unless asked. The messages are the runs' progress events.
 */
import { OptionsError, ProgressCallbackError } from '../errors.js';
import { describeError } from '../text.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = Object.freeze(['error', 'warn', 'info', 'debug']);

type Threshold = LogLevel | 'off';
let printLevel: Threshold = 'off';
let saveLevel: Threshold = 'off';

const passes = (level: LogLevel, threshold: Threshold) => threshold !== 'off' && LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(threshold);

/** Which messages are printed and which are saved with a run's outputs ('off' for none). */
export function setLogLevel(print: Threshold, save: Threshold = saveLevel): void {
  for (const [what, v] of [['print', print], ['save', save]] as const) {
    if (v !== 'off' && !LOG_LEVELS.includes(v)) throw new OptionsError(`setLogLevel: ${what} must be one of off, ${LOG_LEVELS.join(', ')}`, 'LOG_LEVEL');
  }
  printLevel = print;
  saveLevel = save;
}

/** One run's log: prints what passes the print level now, keeps what passes the save level for its log file. */
export class RunLog {
  readonly lines: string[] = [];

  log(level: LogLevel, message: string): void {
    if (passes(level, printLevel)) console.error(`autoquant: ${message}`);
    if (passes(level, saveLevel)) this.lines.push(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`);
  }

  /** The log file's text, or undefined when nothing is to be saved. */
  text(): string | undefined {
    return this.lines.length ? this.lines.join('\n') + '\n' : undefined;
  }
}

/**
 * Logs an event's message (or `logged`) and hands the event to the caller's `onProgress`; a throw there becomes a
 * typed error naming `what` the event was about, not a raw error from inside a run.
 */
export function emitProgress<E extends { message: string }>(
  log: RunLog,
  onProgress: ((event: E) => void) | undefined,
  event: E,
  what: string,
  logged = event.message,
): void {
  log.log('info', logged);
  try {
    onProgress?.(event);
  } catch (cause) {
    throw new ProgressCallbackError(`options.onProgress threw on ${what}: ${describeError(cause)}`, { cause });
  }
}
