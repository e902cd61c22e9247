/**
 * `autoquant demo`: the data it ships is what scripts/make-demo.mjs makes from the `mnist` package,
 * its model is the test fixture, and the command runs the whole flow to a report.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runCli, tempDir } from '../helpers/cli-runner.js';

it('the shipped demo files are the fixture model and the digits scripts/make-demo.mjs makes', async () => {
  const { demoDigits } = await import('../../scripts/make-demo.mjs');
  expect(Buffer.compare(readFileSync('demo/digits.npz'), Buffer.from(demoDigits()))).toBe(0);
  expect(Buffer.compare(readFileSync('demo/mnist_cnn.onnx'), readFileSync('test/fixtures/mnist_cnn.onnx'))).toBe(0);
});

it('autoquant demo runs the search on the shipped data and writes the report it names', async () => {
  const dir = tempDir({});
  const r = await runCli(['demo'], dir);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^passed: /m);
  expect(r.stderr).toMatch(/^ranking: /m);
  const report = /^open the report: (.+)$/m.exec(r.stdout)![1]!;
  expect(report).toBe('autoquant-demo/mnist_report.html');
  expect(readFileSync(join(dir, report), 'utf8')).toMatch(/<svg id="history-chart"/);
  expect(existsSync(join(dir, 'autoquant-demo/mnist_deploy_model.onnx'))).toBe(true);
});
