/**
 * The CLI's logging, after AMCT's set_logging_level(print_level, save_level): one level for what is
 * printed on stderr and one for what is saved to a log file (everything, by default, when there is a
 * file: `--log-file`, or `{prefix}_autoquant.log` beside the outputs of a command run with `--save`).
 */
import { writeFileAtomic } from '../runtime/io.js';
import { Options, UsageError } from './args.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const rank = (l: LogLevel) => LOG_LEVELS.indexOf(l);

export class Logger {
  private readonly saved: string[] = [];
  private file: string | undefined;

  constructor(
    private readonly err: { write(s: string): unknown },
    private readonly print: LogLevel,
    private readonly save: LogLevel,
    file?: string,
  ) {
    this.file = file;
  }

  /** Reads --quiet (print errors only), --verbose (print debug), --log-level and --log-file. */
  static fromOptions(o: Options, err: { write(s: string): unknown }): Logger {
    const quiet = o.flag('quiet');
    const verbose = o.flag('verbose');
    const level = o.choice<LogLevel>('log-level', LOG_LEVELS);
    if ([quiet, verbose, level !== undefined].filter(Boolean).length > 1) throw new UsageError('give at most one of --quiet, --verbose and --log-level');
    const print: LogLevel = level ?? (quiet ? 'error' : verbose ? 'debug' : 'info');
    return new Logger(err, print, 'debug', o.string('log-file'));
  }

  /** The file to save to when none was named: `{prefix}_autoquant.log` beside a command's outputs. */
  defaultFile(path: string): void {
    this.file ??= path;
  }

  get logFile(): string | undefined {
    return this.file;
  }

  log(level: LogLevel, message: string): void {
    if (rank(level) <= rank(this.print)) {
      this.clearStatus();
      this.err.write(`${message}\n`);
    }
    if (rank(level) <= rank(this.save)) this.saved.push(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`);
  }

  private status?: { key: string; start: number };
  private statusShown = false;

  /**
   * Progress through `total` steps of `key` (e.g. calibration batches). On a terminal at the info
   * level it is one line redrawn in place, with a bar, the count and the time left at the pace so
   * far; elsewhere (a pipe, a file, CI) a plain info line, as any other message.
   */
  progress(key: string, message: string, done: number, total: number): void {
    const tty = (this.err as { isTTY?: boolean }).isTTY === true && this.print === 'info';
    if (!tty) {
      this.log('info', message);
      return;
    }
    if (rank('info') <= rank(this.save)) this.saved.push(`${new Date().toISOString()} INFO  ${message}`);
    const now = Date.now();
    if (this.status?.key !== key || done <= 1) this.status = { key, start: now };
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const width = 20;
    const filled = Math.round(fraction * width);
    const elapsed = (now - this.status.start) / 1000;
    const eta = done > 0 && done < total ? ` ETA ${Math.ceil((elapsed / done) * (total - done))} s` : '';
    this.err.write(`\r\x1b[K${key} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}${eta}`);
    this.statusShown = true;
    if (done >= total) this.clearStatus(true);
  }

  private clearStatus(keep = false): void {
    if (!this.statusShown) return;
    this.err.write(keep ? '\n' : '\r\x1b[K');
    this.statusShown = false;
  }

  /** Writes the saved lines to the log file, if there is one; returns its path. */
  async flush(): Promise<string | undefined> {
    this.clearStatus();
    if (!this.file || this.saved.length === 0) return undefined;
    await writeFileAtomic(this.file, this.saved.join('\n') + '\n');
    return this.file;
  }
}
