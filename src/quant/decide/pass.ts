/**
 * The shape every data pass of PTQ has, so that a new one is one file plus one line in PASSES
 * (passes.ts). A pass runs at a stage around calibration, reads the batches only when it needs
 * them (so a record that covers it needs no data), changes the working model and writes its
 * choices into the record, where a reuse of the record finds them and skips the pass's data work.
 *
 * Stages: 'before-calibration' passes change what calibration measures (activation equalization
 * and channel splitting rescale or split a layer's input); 'after-calibration' passes refine
 * quantized layers with the calibrated factors in place (adaptive rounding, bias correction).
 */
import type { BatchSource } from '../calibrate/calibrate.js';
import type { QuantConfig } from '../config/config.js';
import type { QuantRecord } from '../config/record.js';
import type { LayerInfo } from '../prepare/registry.js';
import type { CalibrateOptions, PassStage, QuantizationSession, RoundingPassOptions } from '../types.js';

export type { PassRun, PassStage } from '../types.js';

export interface PassContext {
  session: QuantizationSession;
  /** Layers whose config says quant_enable. */
  enabled: readonly LayerInfo[];
  /** The enabled layers with those in If branches, for passes that only run layers alone (see calibrate/layerwise.ts). */
  withBranches: readonly LayerInfo[];
  /** The record so far (the caller's, then calibration's): passes read and write their fields here. */
  record: QuantRecord;
  /** The calibration batches, taken on first call and replayable. */
  batches: () => Promise<BatchSource>;
  /** Before calibration: the caller's options (progress events, engine). */
  options: CalibrateOptions;
  /** After calibration: the runtime, and the activation sizes calibration measured. */
  passOptions: RoundingPassOptions;
}

export interface PassOutcome {
  /** Set when the pass found itself off after all (its settings and the record ask for nothing): not listed as run. */
  off?: true;
  /** Passes over the calibration batches it made (counted in CalibrationStats.passes). */
  measuringPasses?: number;
  /** Run once calibration has written its entries: record fields that belong after them. */
  afterCalibration?: () => void;
  /** What the pass did, for the result (adaptive rounding's summary). */
  summary?: unknown;
}

export interface QuantPass {
  /** The config key that turns it on, in words: 'activation_equalization', 'weight_rounding', … */
  name: string;
  stage: PassStage;
  /** Whether `config` asks for it (a pass may still find nothing to do). */
  enabled(config: QuantConfig, session: QuantizationSession): boolean;
  /** The config values it ran with, by config key, as the record keeps them (see PassRecord). */
  settings(config: QuantConfig): Record<string, unknown>;
  run(ctx: PassContext): Promise<PassOutcome>;
}
