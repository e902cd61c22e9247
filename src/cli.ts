/**
 * Command-line entry. Parses arguments and delegates; all behaviour lives in the library so the CLI
 * and `import` users get the same results.
 */
import { AutoquantError } from './errors.js';
import { VERSION } from './version.js';

const HELP = `autoquant ${VERSION} — accuracy-driven automatic int8 quantization of ONNX models

Usage:
  autoquant --help          Show this help
  autoquant --version       Print the version

Commands for configuration, quantization and automatic calibration arrive with later releases.

Exit status: 0 success, 1 error, 2 no acceptable model.`;

export class UsageError extends AutoquantError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export async function main(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  try {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      out.write(HELP + '\n');
      return 0;
    }
    if (argv.includes('--version') || argv.includes('-v')) {
      out.write(VERSION + '\n');
      return 0;
    }
    throw new UsageError(`unknown command or option '${argv[0]}' (run 'autoquant --help')`);
  } catch (e) {
    const msg = e instanceof AutoquantError ? e.message : (e as Error)?.stack ?? String(e);
    err.write(`autoquant: ${msg}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
