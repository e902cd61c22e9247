/**
 * The `autoquant` command (see cli/main.ts). Exit status: 0 success, 1 error, 2 no acceptable model.
 */
import { main } from './cli/main.js';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
