/**
 * Post-training quantization: createQuantConfig, quantizeModel and saveModel (AMCT's create_quant_config / quantize_model / save_model), composed from the stages under src/quant (prepare, calibrate, decide, export; config for the files a user edits).
 */
import { OptionsError, ParityError } from '../errors.js';
import { checkOptionKeys, optionKeys } from '../options.js';
import { checkWritable, writeFileAtomic } from '../runtime/io.js';
import { RunLog } from '../runtime/log.js';
import { describeValue, quoteName } from '../text.js';
import { type CalibrationSource } from './calibrate/calibrate.js';
import { type CreateQuantConfigOptions, type QuantConfig } from './config/config.js';
import { fidelityWarnings, measureFidelity } from './export/fidelity.js';
import { measureParity, parityRefused, parityWarnings, PARITY_MIN_COSINE, type Parity } from './export/parity.js';
import { weightOnlyBytes } from './export/weight-only.js';
import { defaultQuantConfig } from './prepare/default-config.js';
import { prepare, privateCopy } from './prepare/prepare.js';
import { PreparedQuantization } from './prepared.js';
import { type ModelSource, type QuantizeModelOptions, type QuantizeResult } from './types.js';

export type * from './types.js';
export { PreparedQuantization } from './prepared.js';
export { loadQuantConfig, readJsonFile } from './config/io.js';

/** Options objects from JavaScript callers: an object or nothing (config.ts names unknown keys as config problems). */
export function checkOptions(options: unknown, what: string): void {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new OptionsError(`${what} options must be an object, got ${describeValue(options)}`);
  }
}
export const QUANTIZE_OPTION_KEYS = optionKeys<QuantizeModelOptions>({
  executionProviders: true, graphOptimizationLevel: true, engine: true, signal: true, record: true, onProgress: true, kernels: true, layerErrors: true,
});
export async function createQuantConfig(model: ModelSource, options: CreateQuantConfigOptions = {}): Promise<QuantConfig> {
  checkOptions(options, 'createQuantConfig');
  const config = defaultQuantConfig(prepare(await privateCopy(model)), options);
  if (options.configFile) await writeFileAtomic(options.configFile, JSON.stringify(config, null, 2) + '\n');
  return config;
}
/**
 * Calibrates (unless a record covers every enabled layer) and quantizes each enabled layer,
 * returning the fake-quant model, the deployable int8 model and the record.
 */
export async function quantizeModel(
  model: ModelSource,
  config: QuantConfig,
  calibration: CalibrationSource,
  options: QuantizeModelOptions = {},
): Promise<QuantizeResult> {
  checkOptionKeys(options, QUANTIZE_OPTION_KEYS, 'quantizeModel');
  const p = await PreparedQuantization.create(model, config, options);
  const stats = await p.calibrate(calibration, { ...options, keepOutputs: true });
  await p.chooseOutputs(options);
  const plan = p.plan();
  const fake = p.fakeQuantModel(plan);
  const q = p.session;
  const layerErrors = options.layerErrors ? await p.layerErrors(plan, options, p.weightOnlyPlan()) : undefined;
  const layers = p.layerReport(new Set([...p.enabled, ...p.searchedWeightOnly].map((l) => l.name)));
  // Nothing quantized means the models are the float model: there is nothing to measure.
  const quantized = (plan.length || p.weightOnly.length) > 0;
  const outputFidelity = quantized && q.kept ? await measureFidelity(fake.model, q.kept, options) : [];
  const deployModel = await p.deployModel(plan, undefined, options);
  const parity = quantized && q.kept ? await measureParity(fake.model, deployModel, q.kept, options, q.config.deploy_target) : undefined;
  const warnings = [...p.warnings(layers), ...fidelityWarnings(outputFidelity), ...parityWarnings(parity)];
  // Printed where setLogLevel asks for warnings; the result carries them either way.
  const log = new RunLog();
  for (const w of warnings) log.log('warn', `warning: ${w.message}`);
  return {
    outputFidelity,
    ...(parity ? { parity } : {}),
    passes: p.passesRun,
    ...(layerErrors ? { layerErrors } : {}),
    record: p.prunedRecord(),
    config: q.config,
    fakeQuantModel: fake.model,
    deployModel,
    layers,
    warnings,
    fusedBatchNorms: q.fused,
    fusedAffines: q.affines,
    fusedHardSwish: q.hardSwish,
    equalized: q.equalized,
    activationEqualized: q.activationEqualized ?? [],
    channelSplits: q.channelSplits ?? [],
    ...(p.rounding ? { adaptiveRounding: p.rounding } : {}),
    calibration: stats,
    gpuRewrites: fake.gpuRewrites,
    ...(p.searchedWeightOnly.length ? { weightBytes: weightOnlyBytes(p.weightOnlyPlan()) } : {}),
  };
}
/**
 * Writes `{prefix}_fake_quant_model.onnx`, `{prefix}_deploy_model.onnx` and `{prefix}_record.json`
 * (Node/Deno), each to a temporary name first and then renamed. A result whose deploy model fails
 * parity (see export/parity.ts) is refused, and nothing written, unless `force` is given.
 */
export async function saveModel(result: Pick<QuantizeResult, 'fakeQuantModel' | 'deployModel' | 'record'> & { parity?: Parity }, prefix: string, options: { force?: boolean } = {}): Promise<string[]> {
  if (typeof result !== 'object' || result === null || !(result.fakeQuantModel instanceof Uint8Array) || !(result.deployModel instanceof Uint8Array) || typeof result.record !== 'object') {
    throw new OptionsError(`saveModel needs quantizeModel's result ({ fakeQuantModel, deployModel, record }), got ${describeValue(result)}`, 'SAVE_ARGUMENTS');
  }
  if (typeof prefix !== 'string' || prefix === '') throw new OptionsError(`saveModel needs a non-empty path prefix, got ${describeValue(prefix)}`, 'SAVE_ARGUMENTS');
  checkOptions(options, 'saveModel');
  if (options.force !== undefined && typeof options.force !== 'boolean') throw new OptionsError(`saveModel's force must be a boolean, got ${describeValue(options.force)}`, 'SAVE_ARGUMENTS');
  checkParity(result.parity, options.force === true);
  const files = [`${prefix}_fake_quant_model.onnx`, `${prefix}_deploy_model.onnx`, `${prefix}_record.json`];
  await checkWritable(files);
  await writeFileAtomic(files[0]!, result.fakeQuantModel);
  await writeFileAtomic(files[1]!, result.deployModel);
  await writeFileAtomic(files[2]!, JSON.stringify(result.record, null, 2) + '\n');
  return files;
}

/** Refuses a deploy model that fails parity (see export/parity.ts), unless forced. */
export function checkParity(parity: Parity | undefined, force: boolean): void {
  if (!parityRefused(parity, force)) return;
  throw new ParityError(
    `the deploy model's output ${quoteName(parity.output)} has cosine ${parity.cosine.toFixed(5)} to the fake-quant model's on ${parity.backend} (below ${PARITY_MIN_COSINE}), so it would ship a model that computes something else than the one measured; nothing was written. Pass { force: true } (CLI --force) to save it anyway`,
    parity,
  );
}
