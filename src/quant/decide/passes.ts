/**
 * The data passes of PTQ, in the order they run (see pass.ts). Data-free rewrites (fusions,
 * cross-layer equalization) belong to the prepare stage; choosing which output quantizations stay
 * is the last decision, made on the finished plan (select-outputs.ts). Adding a pass: write
 * `decide/<name>.ts` exporting a QuantPass, add it here; docs/design.md has an example.
 */
import { GLOBAL_SETTINGS, isWeightOnlyTarget, type QuantConfig } from '../config/config.js';
import type { QuantPass } from './pass.js';
import { roundWeights } from './adaptive-rounding.js';
import { correctBiases } from './bias-correction.js';
import { equalizeActivations } from './equalize-activations.js';
import { scaleBlockWeights } from './weight-scaling.js';

/** The config values of `keys`, the default where the config leaves one out. */
const settingsOf =
  (...keys: (keyof QuantConfig)[]) =>
  (config: QuantConfig): Record<string, unknown> =>
    Object.fromEntries(keys.map((k) => [k, config[k] ?? GLOBAL_SETTINGS.find(([key]) => key === k)?.[2]]));

/** Activation equalization and channel splitting share one measuring pass over the batches (weight scaling, under a weight-only target, makes its own). */
const activationEqualization: QuantPass = {
  name: 'activation_equalization',
  stage: 'before-calibration',
  settings: settingsOf('activation_equalization', 'channel_splitting'),
  // Variants of a session share the working model, which the first calibration already changed.
  enabled: (_config, session) => !session.activationEqualized,
  async run({ session, enabled, record, batches, options }) {
    const eq = await equalizeActivations(session, enabled, record, batches, options);
    session.activationEqualized = eq.done;
    session.channelSplits = eq.splits;
    // The weight-only targets' form: their block-quantized layers' weights, scaled by their inputs (AWQ).
    const scaled = isWeightOnlyTarget(session.config.deploy_target) ? await scaleBlockWeights(session, record, batches, options) : undefined;
    if (scaled?.factors.size) session.weightScaling = scaled.factors;
    return {
      ...(eq.off && !scaled?.factors.size ? { off: true as const } : {}),
      measuringPasses: eq.passes + (scaled?.passes ?? 0),
      // After calibration, so that a layer's record entry keeps its fields in the order files had.
      afterCalibration: () => {
        for (const [name, f] of eq.factors) record.layers[name]!.equalize_d = f;
        for (const [name, c] of eq.choices) Object.assign(record.layers[name]!, { split_d: c.copies, split_dither_d: c.step });
      },
    };
  },
};

const adaptiveRounding: QuantPass = {
  name: 'weight_rounding',
  stage: 'after-calibration',
  enabled: (config) => config.weight_rounding === 'adaptive',
  settings: settingsOf('weight_rounding', 'bias_correction'),
  async run({ session, enabled, record, batches, passOptions }) {
    return { summary: await roundWeights(session, enabled, record, batches, passOptions) };
  },
};

const biasCorrection: QuantPass = {
  name: 'bias_correction',
  stage: 'after-calibration',
  enabled: (config) => config.bias_correction === true,
  settings: settingsOf('bias_correction', 'weight_rounding'),
  async run({ session, withBranches, record, batches, passOptions }) {
    await correctBiases(session, withBranches, record, batches, passOptions);
    return {};
  },
};

export const PASSES: readonly QuantPass[] = Object.freeze([activationEqualization, adaptiveRounding, biasCorrection]);
