/**
 * Reading what a user may have edited: configs and records as JSON files, validated against the model.
 */
import { configTarget, forTarget } from '../prepare/target.js';
import { QuantConfigError } from '../../errors.js';
import { readFileBytes } from '../../runtime/io.js';
import { prepare, privateCopy } from '../prepare/prepare.js';
import { type ModelSource, type QuantizeModelOptions } from '../types.js';
import { type QuantConfig, validateQuantConfig } from './config.js';
import { type QuantRecord, validateRecord } from './record.js';

/** A JSON file a user may have edited (config or record); malformed JSON is a QuantConfigError naming the file. */
export async function readJsonFile(file: string | URL): Promise<unknown> {
  const text = new TextDecoder().decode(await readFileBytes(file));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new QuantConfigError([`not valid JSON: ${(e as Error).message}`], String(file));
  }
}
/** Reads and validates a config a user may have edited; all problems are reported at once. */
export async function loadQuantConfig(source: string | URL | QuantConfig, model: ModelSource): Promise<QuantConfig> {
  const fromFile = typeof source === 'string' || source instanceof URL;
  const config = fromFile ? await readJsonFile(source) : source;
  const where = fromFile ? String(source) : 'config object';
  const { layers, hint } = prepare(await privateCopy(model));
  validateQuantConfig(config, forTarget(layers, configTarget(config)).layers, where, hint);
  return config;
}
export async function readRecord(r: QuantizeModelOptions['record']): Promise<QuantRecord | undefined> {
  if (r === undefined) return undefined;
  if (typeof r === 'string' || r instanceof URL) return validateRecord(await readJsonFile(r), String(r));
  return validateRecord(r);
}
