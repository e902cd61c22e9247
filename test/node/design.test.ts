/**
 * Properties of the code base itself that the design relies on: no import cycles (type imports
 * included), every throw in src/ a named AutoquantError subclass, no source file over 600 lines, and
 * the API a JavaScript developer guesses (a plain object as an evaluator).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accuracyBasedAutoCalibration,
  EvaluationError,
  type CalibrationSession,
  type InferenceSession,
} from '../../src/index.js';
import { ROOT } from '../helpers/cli-runner.js';
import { outlierFeeds, outlierInputs, outlierModel } from '../helpers/outlier-model.js';

/** Every .ts file under src/, generated protobuf code aside. */
function sources(dir = join(ROOT, 'src')): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return f === 'generated' ? [] : sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

describe('the code base', () => {
  it('has no import cycle, type imports included', () => {
    const files = sources();
    const graph = new Map(
      files.map((f) => {
        const text = readFileSync(f, 'utf8');
        const deps = [...text.matchAll(/(?:import|export)[^'"]*?from\s+['"](\.[^'"]+)['"]/g)].map((m) => resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts')));
        return [f, deps.filter((d) => files.includes(d))];
      }),
    );
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f)!) {
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => relative(ROOT, x)).join(' → '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('throws only named AutoquantError subclasses (never a bare AutoquantError or a built-in Error)', () => {
    const bare = sources().flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .map((line, i) => [line, i + 1] as const)
        .filter(([line]) => /new (AutoquantError|Error|TypeError|RangeError|SyntaxError)\(/.test(line) && !/^\s*(\/\/|\*)/.test(line))
        .map(([, n]) => `${relative(ROOT, f)}:${n}`),
    );
    expect(bare).toEqual([]);
  });
});

describe('an evaluator may be a plain object', () => {
  it('{ calibration, evaluate, maxDrop } runs the search like an AutoCalibrationEvaluator subclass', async () => {
    const { bytes, fragile } = outlierModel();
    const calib = outlierFeeds(outlierInputs(2, 64, 3));
    const held = outlierFeeds(outlierInputs(2, 64, 11));
    let reference: Float32Array[] | undefined;
    const evaluator = {
      maxDrop: 0.002,
      async calibration(session: CalibrationSession) {
        for (const f of calib) await session.run(f);
      },
      async evaluate(session: InferenceSession) {
        const outs: Float32Array[] = [];
        for (const f of held) outs.push((await session.run(f))[session.outputNames[0]!]!.data as Float32Array);
        reference ??= outs;
        let ab = 0, aa = 0, bb = 0;
        outs.forEach((o, i) => o.forEach((y, j) => ((ab += reference![i]![j]! * y), (aa += reference![i]![j]! ** 2), (bb += y * y))));
        return aa && bb ? ab / Math.sqrt(aa * bb) : 0;
      },
    };
    const config = (await import('../../src/index.js')).createQuantConfig(bytes, { batchNum: 2 });
    const r = await accuracyBasedAutoCalibration(bytes, evaluator, { config: await config, repairs: [] });
    expect(r.passed).toBe(true);
    expect(r.fallbackLayers).toEqual([fragile]);
    expect(r.limit).toEqual({ maxDrop: 0.002 });
  });

  it('an object without evaluate is refused, saying what an evaluator needs', async () => {
    const { bytes } = outlierModel();
    await expect(accuracyBasedAutoCalibration(bytes, { calibration: async () => {} } as never)).rejects.toThrow(EvaluationError);
    await expect(accuracyBasedAutoCalibration(bytes, { calibration: async () => {} } as never)).rejects.toThrow(/must have calibration\(session\) and evaluate\(session\) methods/);
  });
});

describe('progress is data', () => {
  it('calibration and ranking events carry stage, done and total; evaluations carry the metric; no message repeats its phase', async () => {
    const { bytes } = outlierModel();
    const { outlierEvaluator } = await import('../helpers/outlier-model.js');
    const events: import('../../src/index.js').AutoProgressEvent[] = [];
    await accuracyBasedAutoCalibration(bytes, outlierEvaluator(), { repairs: [], onProgress: (e) => events.push(e) });
    const calib = events.filter((e) => e.stage === 'calibration');
    expect(calib.length).toBeGreaterThan(0);
    expect(calib.every((e) => Number.isInteger(e.done) && e.done! >= 1 && e.done! <= e.total!)).toBe(true);
    const ranked = events.filter((e) => e.stage === 'ranking');
    expect(ranked.map((e) => e.done)).toEqual(ranked.map((_, i) => i + 1));
    expect(ranked.every((e) => e.total === ranked.length)).toBe(true);
    for (const e of events.filter((x) => x.evaluation)) expect(e.metric).toBe(e.evaluation!.metric);
    for (const e of events) expect(e.message.startsWith(`${e.phase}:`)).toBe(false);
  });
});
