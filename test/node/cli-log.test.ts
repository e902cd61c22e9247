/** The CLI logger: levels, the saved log, and the progress line on a terminal versus a pipe. */
import { describe, expect, it } from 'vitest';
import { Logger } from '../../src/cli/log.js';

describe('CLI progress', () => {
  it('on a terminal, one line redrawn with a bar, the count and an ETA, ended when done', () => {
    let out = '';
    const err = { isTTY: true, write: (s: string) => (out += s) };
    const log = new Logger(err, 'info', 'debug');
    for (let i = 1; i <= 4; i++) log.progress('calibration', `calibration: batch ${i}/4`, i, 4);
    log.log('info', 'done');
    expect(out).toMatch(/^\r\x1b\[Kcalibration \[#####---------------\] 1\/4 ETA \d+ s/);
    expect(out).toMatch(/\r\x1b\[Kcalibration \[####################\] 4\/4\n/);
    expect(out.endsWith('done\n')).toBe(true);
  });

  it('in a pipe, plain lines; --quiet prints nothing; everything is saved', async () => {
    let out = '';
    const pipe = { write: (s: string) => (out += s) };
    const log = new Logger(pipe, 'info', 'debug');
    log.progress('calibration', 'calibration: batch 1/2', 1, 2);
    log.log('debug', 'detail');
    expect(out).toBe('calibration: batch 1/2\n');
    let quietOut = '';
    const quiet = new Logger({ write: (s: string) => (quietOut += s) }, 'error', 'debug');
    quiet.progress('calibration', 'calibration: batch 1/2', 1, 2);
    quiet.log('warn', 'careful');
    expect(quietOut).toBe('');
  });
});
