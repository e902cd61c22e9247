/**
 * What an automatic calibration writes: the snake_case summary, and the files of a run with savePrefix (models only on success).
 */
import { htmlReport } from '../report/html.js';
import { writeFileAtomic } from '../runtime/io.js';
import { parityRefused, type Parity } from '../quant/export/parity.js';
import { type AutoCalibrationOptions, type AutoCalibrationResult } from './types.js';
import { type LayerRepair } from './repairs.js';
import { type LayerScore } from './sensitivity.js';

/** `{prefix}_auto_calibration.json`: the result's fields in snake_case, models and config left out (they have their own files). */
export interface AutoCalibrationReport {
  passed: boolean;
  message: string;
  original_metric: number;
  quantized_metric: number;
  evaluations: number;
  calibration_calls: number;
  quantized_layers: string[];
  fallback_layers: string[];
  fallback_to: AutoCalibrationResult['fallbackTo'];
  repaired_layers: LayerRepair[];
  refined_layers: string[];
  /** Ascending: the most sensitive layer first. */
  ranking: LayerScore[];
  history: { fallback_layers: string[] | null; repaired?: LayerRepair[]; metric: number; loss: number; ok: boolean; seconds: number }[];
  timings: AutoCalibrationResult['timings'];
  float_model_rewrites: string[];
  warnings: { code: string; message: string; nodes?: string[] }[];
  parity?: Parity;
  /** Per block-quantized layer, its weights' bits; and the searched layers' weight bytes (the 'webgpu' target). */
  weight_bits?: Record<string, 4 | 8>;
  weight_bytes?: { quantized: number; float: number };
}
/** The report file: metrics, ranking ascending, and every evaluation. */
export function autoCalibrationReport(r: AutoCalibrationResult): AutoCalibrationReport {
  return {
    passed: r.passed,
    message: r.message,
    original_metric: r.originalMetric,
    quantized_metric: r.quantizedMetric,
    evaluations: r.evaluations,
    calibration_calls: r.calibrationCalls,
    quantized_layers: r.quantizedLayers,
    fallback_layers: r.fallbackLayers,
    fallback_to: r.fallbackTo,
    repaired_layers: r.repairedLayers,
    refined_layers: r.refinedLayers,
    ranking: r.ranking.map((x) => ({ layer: x.layer, score: x.score })),
    history: r.history.map((h) => ({
      fallback_layers: h.fallbackLayers,
      ...(h.repaired ? { repaired: h.repaired } : {}),
      metric: h.metric,
      loss: h.loss,
      ok: h.ok,
      seconds: h.seconds,
    })),
    timings: r.timings,
    float_model_rewrites: r.floatModelRewrites,
    warnings: r.warnings.map((w) => ({ code: w.code, message: w.message, ...(w.nodes ? { nodes: w.nodes } : {}) })),
    ...(r.parity ? { parity: r.parity } : {}),
    ...(r.layers.some((l) => l.weightBits) ? { weight_bits: Object.fromEntries(r.layers.filter((l) => l.weightBits).map((l) => [l.name, l.weightBits!])) } : {}),
    ...(r.weightBytes ? { weight_bytes: r.weightBytes } : {}),
  };
}
/** A deploy model that fails parity is not written, as saveModel would refuse it (its reports say why), unless forced. */
export function withholdsModels(r: AutoCalibrationResult, options: AutoCalibrationOptions): boolean {
  return r.passed && options.savePrefix !== undefined && parityRefused(r.parity, options.force === true);
}
/** Every file `options` asks for, the models included (written only on success). */
export function outputFiles(options: AutoCalibrationOptions): { models: string[]; reports: string[] } {
  const p = options.savePrefix;
  return {
    models: p ? [`${p}_fake_quant_model.onnx`, `${p}_deploy_model.onnx`] : [],
    reports: [...(p ? [`${p}_quant_config.json`, `${p}_record.json`, `${p}_auto_calibration.json`, `${p}_report.html`] : []), ...(options.recordFile ? [options.recordFile] : [])],
  };
}
/** One output file: its name and contents. */
export interface OutputFile {
  file: string;
  data: Uint8Array | string;
}
/**
 * The files a run with savePrefix `prefix` writes, in memory and in the order written: the models
 * (on success, unless withheld for parity), the config, the record, the JSON report and the HTML one.
 * The browser app offers these as downloads; saveOutputs writes them.
 */
export function autoCalibrationFiles(r: AutoCalibrationResult, prefix: string, options: { force?: boolean; floatModelBytes: number }): OutputFile[] {
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  const { models, reports } = outputFiles({ savePrefix: prefix });
  const data = [json(r.config), json(r.record), json(autoCalibrationReport(r)), htmlReport(r, { title: 'autoquant: accuracy-based automatic calibration', floatModelBytes: options.floatModelBytes })];
  const out: OutputFile[] = [];
  if (r.passed && !parityRefused(r.parity, options.force === true)) models.forEach((file, i) => out.push({ file, data: i === 0 ? r.fakeQuantModel! : r.deployModel! }));
  reports.forEach((file, i) => out.push({ file, data: data[i]! }));
  return out;
}
export async function saveOutputs(r: AutoCalibrationResult, options: AutoCalibrationOptions, floatModelBytes: number, log?: string): Promise<string[]> {
  const writes = options.savePrefix ? autoCalibrationFiles(r, options.savePrefix, { force: options.force, floatModelBytes }) : [];
  if (options.recordFile) writes.push({ file: options.recordFile, data: JSON.stringify(r.record, null, 2) + '\n' });
  // The saved log (see setLogLevel), beside the other files.
  if (options.savePrefix && log) writes.push({ file: `${options.savePrefix}_autoquant.log`, data: log });
  for (const { file, data } of writes) await writeFileAtomic(file, data);
  return writes.map((w) => w.file);
}
