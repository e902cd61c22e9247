/**
 * The package as a user's `import` sees it: the built dist/ resolved through package.json's "exports" by
 * Node itself (a child process importing 'autoquant' from the package's own directory), the root list
 * kept to the user's API, every export documented, and one copy of the engine state behind the subpaths.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtCli, ROOT } from '../helpers/cli-runner.js';

const SUBPATHS = ['onnx', 'kernels', 'npy', 'config', 'auto', 'runtime'] as const;

/** Runs an ES module in a child Node inside the package, so 'autoquant' resolves by self-reference. */
function inPackage(code: string): Promise<unknown> {
  builtCli();
  return new Promise((done, fail) => {
    execFile(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) return fail(new Error(`${err.message}\n${stderr}`));
      done(JSON.parse(stdout));
    });
  });
}

const exportsOf = (specifiers: readonly string[]) =>
  inPackage(
    `const out = {}; for (const s of ${JSON.stringify(specifiers)}) out[s] = Object.keys(await import(s)).sort();` +
      ' console.log(JSON.stringify(out));',
  ) as Promise<Record<string, string[]>>;

describe('the package exports', () => {
  it('keep the root to the user API and document every root and subpath export in docs/api.md', async () => {
    const all = await exportsOf(['autoquant', ...SUBPATHS.map((s) => `autoquant/${s}`)]);
    const root = all['autoquant']!;
    for (const name of ['createQuantConfig', 'quantizeModel', 'saveModel', 'accuracyBasedAutoCalibration', 'FidelityEvaluator', 'loadModel', 'useOrt', 'env', 'VERSION', 'AutoquantError']) {
      expect(root).toContain(name);
    }
    // Building blocks are under subpaths, not at the root.
    for (const name of ['decodeModel', 'getKernels', 'parseNpy', 'QUANTIZABLE_TYPES', 'sensitivityFunction', 'nodePlacement']) {
      expect(root).not.toContain(name);
    }
    expect(root.length).toBeLessThanOrEqual(40);
    const api = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
    const undocumented = Object.entries(all).flatMap(([s, names]) => names.filter((n) => !api.includes(`\`${n}`)).map((n) => `${s}: ${n}`));
    expect(undocumented).toEqual([]);
  });

  it('share one engine state between the root and the subpaths', async () => {
    const same = await inPackage(
      `const root = await import('autoquant'); const runtime = await import('autoquant/runtime');
       const web = await import('onnxruntime-web');
       const other = { ...web, marker: 1 };
       root.useOrt(other);
       console.log(JSON.stringify({ getOrt: root.getOrt === runtime.getOrt, swapped: runtime.getOrt().marker === 1 }));`,
    );
    expect(same).toEqual({ getOrt: true, swapped: true });
  });

  it('give CommonJS the same root names and point autoquant/wasm at the plain wasm build', async () => {
    const esm = (await exportsOf(['autoquant']))['autoquant'];
    const cjs = await inPackage(
      `import { createRequire } from 'node:module'; const require = createRequire(process.cwd() + '/');` +
        ` console.log(JSON.stringify(Object.keys(require('autoquant')).sort()));`,
    );
    expect(cjs).toEqual(esm);
    const wasm = readFileSync(join(ROOT, 'dist/wasm.js'), 'utf8');
    expect(wasm).toMatch(/from "onnxruntime-web\/wasm"/);
    expect(wasm).not.toMatch(/from "onnxruntime-web"/);
    expect((await exportsOf(['autoquant/wasm']))['autoquant/wasm']).toEqual(esm);
  });
});
