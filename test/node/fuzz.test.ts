/**
 * Seeded, bounded fuzzing of every input surface (issue 10): mutated model bytes, hostile config and
 * record JSON, mutated npy/npz files, random CLI argument vectors. The assertion is always the same:
 * the call resolves, or rejects with an AutoquantError subclass whose message is bounded; the CLI
 * exits 0, 1 or 2 and never prints a stack. Seeds are fixed, so a failure reproduces; set
 * FUZZ_SEED to explore others.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AutoquantError, createQuantConfig, loadQuantConfig, quantizeModel, Tensor, type QuantConfig } from '../../src/index.js';
import { decodeModel } from '../../src/subpaths/onnx.js';
import { encodeNpy, encodeNpz, parseNpy, parseNpz } from '../../src/subpaths/npy.js';
import { main } from '../../src/cli/main.js';
import { outlierInputs, outlierModel, WIDTH } from '../helpers/outlier-model.js';
import { Random } from '../helpers/random.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const MESSAGE_LIMIT = 1200;

/** Runs `fn`; a throw must be an AutoquantError with a bounded message. Returns what went wrong, if anything. */
async function contract(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof AutoquantError)) return `not an AutoquantError: ${(e as Error)?.name}: ${String((e as Error)?.message ?? e).slice(0, 300)}`;
    if (e.message.length > MESSAGE_LIMIT) return `message of ${e.message.length} characters`;
    return undefined;
  }
}

function mutateBytes(rng: Random, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  const kind = rng.int(0, 4);
  if (kind === 0) {
    for (let i = rng.int(1, 8); i > 0; i--) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
    return out;
  }
  if (kind === 1) return out.subarray(0, rng.int(0, out.length - 1));
  if (kind === 2) {
    const at = rng.int(0, out.length - 1);
    const insert = Uint8Array.from({ length: rng.int(1, 16) }, () => rng.int(0, 255));
    const grown = new Uint8Array(out.length + insert.length);
    grown.set(out.subarray(0, at));
    grown.set(insert, at);
    grown.set(out.subarray(at), at + insert.length);
    return grown;
  }
  if (kind === 3) {
    // Overwrite a length-like field with an extreme value.
    const at = rng.int(0, Math.max(0, out.length - 4));
    new DataView(out.buffer).setUint32(at, rng.pick([0, 0xffffffff, 0x7fffffff, 0x10000, out.length * 2]), true);
    return out;
  }
  const at = rng.int(0, out.length - 1);
  out[at] = out[at]! ^ (1 << rng.int(0, 7));
  return out;
}

const HOSTILE: (() => unknown)[] = [
  () => -1, () => 0, () => 1e308, () => -1e-320, () => NaN, () => Infinity, () => 2 ** 53 + 1, () => 10n,
  () => '', () => 'x'.repeat(100_000), () => '__proto__', () => null, () => undefined, () => true,
  () => [], () => [1, 2, 3], () => ({}), () => ({ __proto__: { polluted: 1 } }),
  () => { let d: unknown = 1; for (let i = 0; i < 3000; i++) d = [d]; return d; },
  () => { const o: Record<string, unknown> = {}; o.self = o; return o; },
];

/** A copy of `value` with one field somewhere replaced by a hostile value (or deleted, or one added). */
function mutateJson(rng: Random, value: unknown): unknown {
  const copy = structuredClone(value) as Record<string, unknown>;
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...path, Array.isArray(v) ? Number(k) : k]);
  };
  walk(copy, []);
  const path = rng.pick(paths.filter((p) => p.length > 0));
  let parent: Record<string | number, unknown> = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  const op = rng.int(0, 5);
  if (op === 0) delete parent[key];
  else if (op === 1) parent[`${String(key)}_extra`] = rng.pick(HOSTILE)();
  else parent[key] = rng.pick(HOSTILE)();
  return copy;
}

describe('fuzz', () => {
  const { bytes: model } = outlierModel(3, 1);
  const calib = [{ x: new Tensor('float32', outlierInputs(1, 16, 5)[0]!, [16, WIDTH]) }];

  it('mutated model bytes: decodeModel and quantizeModel resolve or raise typed errors', async () => {
    const rng = new Random(SEED);
    const failures: string[] = [];
    const mnist = new Uint8Array((await import('node:fs')).readFileSync('test/fixtures/mnist_cnn.onnx'));
    for (let i = 0; i < 3000; i++) {
      const bytes = mutateBytes(rng, i % 3 === 0 ? mnist : model);
      const f = await contract(() => decodeModel(bytes));
      if (f) failures.push(`decode case ${i}: ${f}`);
    }
    for (let i = 0; i < 400; i++) {
      const bytes = mutateBytes(rng, model);
      const f = await contract(async () => {
        const config = await createQuantConfig(bytes);
        await quantizeModel(bytes, config, calib);
      });
      if (f) failures.push(`quantize case ${i}: ${f}`);
    }
    expect(failures.slice(0, 10)).toEqual([]);
  }, 120_000);

  it('hostile config and record JSON: loadQuantConfig and quantizeModel resolve or raise typed errors', async () => {
    const rng = new Random(SEED + 1);
    const config = await createQuantConfig(model);
    const record = (await quantizeModel(model, config, calib)).record;
    const dir = mkdtempSync(join(tmpdir(), 'aq-fuzz-'));
    const failures: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const bad = mutateJson(rng, config) as QuantConfig;
      let f = await contract(() => loadQuantConfig(bad, model));
      if (!f && i % 4 === 0) f = await contract(() => quantizeModel(model, bad, calib));
      if (!f && i % 8 === 0) {
        let text: string | undefined;
        try {
          text = JSON.stringify(bad);
        } catch {
          text = undefined; // BigInt or a cycle: not a file anyone can write
        }
        if (text !== undefined) {
          writeFileSync(join(dir, 'c.json'), text);
          f = await contract(() => loadQuantConfig(join(dir, 'c.json'), model));
        }
      }
      if (f) failures.push(`config case ${i}: ${f}`);
    }
    for (let i = 0; i < 500; i++) {
      const bad = mutateJson(rng, record);
      const f = await contract(() => quantizeModel(model, config, calib, { record: bad as never }));
      if (f) failures.push(`record case ${i}: ${f}`);
    }
    expect(failures.slice(0, 10)).toEqual([]);
  }, 120_000);

  it('mutated npy and npz files: parseNpy and parseNpz resolve or raise typed errors', async () => {
    const rng = new Random(SEED + 2);
    const npy = encodeNpy(Float32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
    const npz = encodeNpz({ a: { data: Float32Array.from({ length: 6 }, (_, i) => i), shape: [2, 3] }, b: { data: new Int32Array([1, 2, 3]), shape: [3] } });
    const failures: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const f1 = await contract(() => parseNpy(mutateBytes(rng, npy)));
      if (f1) failures.push(`npy case ${i}: ${f1}`);
      const f2 = await contract(() => parseNpz(mutateBytes(rng, npz)));
      if (f2) failures.push(`npz case ${i}: ${f2}`);
    }
    expect(failures.slice(0, 10)).toEqual([]);
  }, 120_000);

  it('random CLI argument vectors exit 0, 1 or 2 and never print a stack', async () => {
    const rng = new Random(SEED + 3);
    const dir = mkdtempSync(join(tmpdir(), 'aq-fuzz-cli-'));
    writeFileSync(join(dir, 'model.onnx'), model);
    writeFileSync(join(dir, 'bad.onnx'), new Uint8Array([1, 2, 3]));
    writeFileSync(join(dir, 'calib.npy'), encodeNpy(outlierInputs(1, 8, 1)[0]!, [8, WIDTH]));
    writeFileSync(join(dir, 'wrong.npy'), encodeNpy(new Float32Array(12), [3, 4]));
    writeFileSync(join(dir, 'config.json'), '{"version": 1');
    const words = [
      'config', 'quantize', 'auto', 'nope', 'model.onnx', 'bad.onnx', 'missing.onnx', dir, '--data', 'calib.npy', 'wrong.npy', 'missing.npy',
      '--save', 'out/m', 'model.onnx/x', '--config', 'config.json', '--max-drop', '0.5', '--max-drop=', '--max-drop=-1', '--max-relative-drop', 'x',
      '--batch-size', '0', '4', '--batch-num', '1e12', '--json', '--runtime', 'web', 'node', 'gpu', '--ep', 'wasm', 'nothing', '--repairs', 'none',
      'int8', '--fidelity', 'cosine', '--strategy', 'sequential', '--act-algo', 'kl', '-o', 'c.json', '--help', '--version', '--', '-', '--bogus',
    ];
    const failures: string[] = [];
    for (let i = 0; i < 400; i++) {
      // Mostly a command, a model and options each with a plausible or hostile value; some pure noise.
      const options: Record<string, string[]> = {
        '--data': ['calib.npy', 'calib.npy', 'wrong.npy', 'missing.npy', dir, 'model.onnx'],
        '--save': ['out/m', 'out/m', 'model.onnx/x', dir, ''],
        '--config': ['config.json', 'missing.json', 'calib.npy'],
        '--max-drop': ['0.5', '1', '-1', '', 'x', '1e400'],
        '--max-relative-drop': ['0.5', '-0', 'NaN'],
        '--batch-size': ['4', '8', '0', '3.5', '1e12'],
        '--batch-num': ['1', '2', '0', '1e12'],
        '--runtime': ['web', 'node', 'gpu'],
        '--repairs': ['none', 'weights,int16', 'int8', ','],
        '--fidelity': ['cosine', 'top1', 'kl'],
        '--act-algo': ['minmax', 'kl'],
        '--max-evaluations': ['2', '1', '3'],
        '-o': ['c.json', dir, 'model.onnx/x'],
      };
      const noise = Array.from({ length: rng.int(0, 2) }, () => rng.pick(words));
      const command = rng.pick(['config', 'quantize', 'auto'] as const);
      // What each command needs, usually given (each value may still be a hostile one).
      const needs = { config: ['-o'], quantize: ['--data', '--save'], auto: ['--data', '--max-drop'] }[command];
      const used = [...needs.filter(() => rng.next() < 0.85), ...Array.from({ length: rng.int(0, 3) }, () => rng.pick(Object.keys(options)))];
      const chosen = used.flatMap((k) => [k, rng.next() < 0.6 ? options[k]![0]! : rng.pick(options[k]!)]);
      const argv = i % 6 === 0 ? [...noise, ...chosen] : [command, rng.pick(['model.onnx', 'model.onnx', 'model.onnx', 'bad.onnx', 'missing.onnx', dir]), ...chosen, ...(i % 7 === 0 ? noise : [])];
      let out = '';
      let err = '';
      const prev = process.cwd();
      process.chdir(dir);
      let code: number;
      try {
        code = await main(argv, { write: (s: string) => (out += s) }, { write: (s: string) => (err += s) });
      } catch (e) {
        failures.push(`argv ${JSON.stringify(argv)}: main threw ${(e as Error).message}`);
        continue;
      } finally {
        process.chdir(prev);
      }
      if (![0, 1, 2].includes(code)) failures.push(`argv ${JSON.stringify(argv)}: exit ${code}`);
      if (/\n\s+at /.test(err) || /internal error/.test(err)) failures.push(`argv ${JSON.stringify(argv)}: ${err.slice(0, 300)}`);
      void out;
      if (process.env.FUZZ_LOG) console.log(code, JSON.stringify(argv), err.split("\n")[0]!.slice(0, 120));
    }
    expect(failures.slice(0, 10)).toEqual([]);
  }, 180_000);
});
