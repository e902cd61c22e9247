/**
 * docs/benchmarks.md is generated from the benches' JSON (bench/out) and its template: the committed
 * page must be exactly what they render to, so no figure in it is edited by hand or left stale.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/cli-runner.js';

it('docs/benchmarks.md is what bench/out/*.json and the template render to, every table present', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/bench-docs.mjs'), '--check'], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});
