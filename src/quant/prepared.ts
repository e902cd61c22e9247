/**
 * The staged PTQ both entry points compose (see PreparedQuantization).
 */
import type { ModelProto } from '../onnx/types.js';
import { CalibrationError } from '../errors.js';
import { type Kernels } from '../kernels/types.js';
import { declaredInputs } from '../onnx/inputs.js';
import { encodeModel } from '../onnx/model.js';
import { scopePath } from '../onnx/scope.js';
import { type CreateSessionOptions } from '../runtime/ort.js';
import { type BatchSource, type CalibrationSource, type CalibrationStats, DEFAULT_CALIBRATION_MEMORY, toBatchSource } from './calibrate/calibrate.js';
import { calibrateLayers } from './calibrate/layers.js';
import { type Compared, compareLayers, type LayerwiseOptions } from './calibrate/layerwise.js';
import { isWeightOnlyTarget, type LayerQuantConfig, type QuantConfig } from './config/config.js';
import { readRecord } from './config/io.js';
import { type QuantRecord, emptyRecord, withPasses, withWeights } from './config/record.js';
import { chooseInto } from './decide/adaptive-rounding.js';
import type { PassContext, PassRun } from './decide/pass.js';
import { PASSES } from './decide/passes.js';
import { keepAllOutputs, selectOutputs } from './decide/select-outputs.js';
import { buildDeployModel, fakeQuantModelProto, outputPlacement, planLayers } from './export/build.js';
import { int8WeightType } from './export/int8-kernels.js';
import { layerReport, pruneRecord } from './export/layer-report.js';
import { type LayerQuantization } from './export/rewrite.js';
import { planWeightOnly, weightOnlyRecord, type WeightOnlyQuantization } from './export/weight-only.js';
import { type QuantWarning, coverageWarnings } from './prepare/coverage.js';
import { checkDeployable, enabledLayers, prepareQuantization, type Prepared } from './prepare/prepare.js';
import { type LayerInfo } from './prepare/registry.js';
import { type CalibrateOptions, type LayerError, type LayerReport, type ModelSource, type QuantizationSession, type QuantizeModelOptions, type RoundingPassOptions, type RoundingSummary, layerConfig } from './types.js';

/**
 * The staged PTQ both entry points compose: a model prepared for quantization with its record, that
 * is calibrated once and then builds a fake-quant or deploy model for any plan (all enabled layers,
 * or those left after fallbacks). `quantizeModel` is create → calibrate → chooseOutputs → build;
 * the automatic calibration is create → calibrate → recordWithAllOutputs → build per search step →
 * finalRecord. Calibration, its passes and chooseOutputs fill `record`; past them nothing writes to it: the search's
 * records are copies, and the one it returns is built once, at the end.
 */
export class PreparedQuantization {
  private constructor(
    /** The working model, config, layers and kernels. */
    readonly session: QuantizationSession,
    /** Factors so far: from the caller's record, then from calibration. */
    readonly record: QuantRecord,
    /** Layers whose config says quant_enable. */
    readonly enabled: LayerInfo[],
    /** Whether the caller gave a record (then calibration data may be empty). */
    private readonly fromRecord = false,
  ) {}

  /**
   * Validates `config` (or the one it makes of the prepared model) against `model`, prepares a private working copy (fusions per the config) and
   * reads `options.record`; fails now, not after calibration, when the deploy opset is out of reach.
   */
  static async create(
    model: ModelSource,
    config: QuantConfig | ((prepared: Prepared) => QuantConfig),
    options: { record?: QuantizeModelOptions['record']; kernels?: Kernels; configSource?: string; activationBits?: 8 | 16 } = {},
  ): Promise<PreparedQuantization> {
    const q = await prepareQuantization(model, config, options.kernels, options.configSource);
    const enabled = enabledLayers(q);
    checkDeployable(q, enabled, options.activationBits);
    const record = await readRecord(options.record);
    return new PreparedQuantization(q, record ?? emptyRecord(), enabled, record !== undefined);
  }

  /** The same prepared model and layers with `bits`-bit activations everywhere and an empty record. */
  withActivationBits(bits: 8 | 16): PreparedQuantization {
    const config = structuredClone(this.session.config);
    for (const l of this.enabled) (config[l.name] as LayerQuantConfig).activation_quant_params!.num_bits = bits;
    return new PreparedQuantization({ ...this.session, config, samples: undefined, outputNoise: undefined }, emptyRecord(), this.enabled);
  }

  /**
   * Only `layers`, with their config entries changed by `edit` (and no output quantizations): a
   * repair candidate for them. Its record starts with their entries from this one when `keepFactors`
   * (the activation factors stay valid, e.g. for a weight-only change), else empty, so `calibrate`
   * computes them anew. Fails like `create` when the edited layers' deploy opset is out of reach.
   */
  variant(layers: readonly string[], edit: (entry: LayerQuantConfig) => void, keepFactors = false): PreparedQuantization {
    const config = structuredClone(this.session.config);
    config.quantize_outputs = false;
    // A repair is judged by the user's evaluator on its own; adaptive rounding's pass per candidate would cost more than the repair.
    if (config.weight_rounding !== undefined) config.weight_rounding = 'nearest';
    for (const name of layers) edit(config[name] as LayerQuantConfig);
    const only = new Set(layers);
    const enabled = this.enabled.filter((l) => only.has(l.name));
    const session = { ...this.session, config, samples: undefined, outputNoise: undefined };
    checkDeployable(session, enabled);
    const record = emptyRecord();
    if (keepFactors) {
      for (const name of layers) {
        const { scale_d, offset_d, num_bits_d, clip_min_d, clip_max_d } = this.record.layers[name]!;
        record.layers[name] = { scale_d, offset_d, num_bits_d, clip_min_d, clip_max_d };
      }
    }
    return new PreparedQuantization(session, record, enabled);
  }

  get config(): QuantConfig {
    return this.session.config;
  }

  /** Calibrates the enabled layers the record lacks, in one pass over `calibration`. */
  async calibrate(calibration: CalibrationSource, options: CalibrateOptions = {}): Promise<CalibrationStats | undefined> {
    // Taken once, so that bias correction can replay a one-shot iterable too; and only when needed,
    // so that a record covering everything needs no data.
    let taken: BatchSource | undefined;
    const batches = async () => (taken ??= await toBatchSource(calibration, this.session.config.batch_num, declaredInputs(this.session.work)));
    this.source = batches;
    // Data is checked before anything runs, even where nothing will need it; only a reused record
    // (which may cover every layer) can come with no data.
    if (typeof calibration !== 'function' && !this.fromRecord) await batches();
    const passOptions: RoundingPassOptions = {
      executionProviders: options.executionProviders,
      graphOptimizationLevel: options.graphOptimizationLevel,
      engine: options.engine,
      signal: options.signal,
    };
    // The data passes rewrite and replay main-graph layers; layers in If branches get calibration only.
    const ctx: PassContext = { session: this.session, enabled: this.enabled.filter((l) => !l.scope), withBranches: this.enabled, record: this.record, batches, options, passOptions };
    const active = PASSES.filter((p) => p.enabled(this.session.config, this.session));
    const finish: (() => void)[] = [];
    let measuring = 0;
    const ran: PassRun[] = [];
    for (const pass of active.filter((p) => p.stage === 'before-calibration')) {
      const out = await pass.run(ctx);
      measuring += out.measuringPasses ?? 0;
      if (out.afterCalibration) finish.push(out.afterCalibration);
      if (!out.off) ran.push({ name: pass.name, stage: pass.stage, settings: pass.settings(this.session.config), measuringPasses: out.measuringPasses ?? 0 });
    }
    const stats = await calibrateLayers(this.session, this.enabled, this.record, batches, options, !this.fromRecord && this.weightOnly.length > 0);
    if (stats) stats.passes += measuring;
    if (stats?.unreached?.length) this.dropUnreached(stats.unreached);
    for (const f of finish) f();
    // The passes after calibration: the same runtime, and the activation sizes calibration measured.
    passOptions.activationBytes = stats?.activationBytes;
    this.passOptions = passOptions;
    for (const pass of active.filter((p) => p.stage === 'after-calibration')) {
      const out = await pass.run(ctx);
      if (pass.name === 'weight_rounding' && out.summary) this.rounding = out.summary as RoundingSummary;
      if (!out.off) ran.push({ name: pass.name, stage: pass.stage, settings: pass.settings(this.session.config), measuringPasses: out.measuringPasses ?? 0 });
    }
    this.passesRun = ran;
    return stats;
  }

  /**
   * Takes layers no calibration batch reached out of the enabled ones: every model built leaves
   * them float, and the layer report says why.
   */
  private dropUnreached(names: readonly string[]): void {
    const gone = new Set(names);
    const unreached = (this.session.unreached ??= new Map());
    for (const l of this.enabled) {
      if (gone.has(l.name)) unreached.set(l.name, `no calibration batch took its branch (${scopePath(l.scope)})`);
    }
    this.enabled.splice(0, this.enabled.length, ...this.enabled.filter((l) => !gone.has(l.name)));
  }

  /** The calibration batches, once calibrate() has taken them (replayable). */
  private source?: () => Promise<BatchSource>;

  /** What adaptive rounding did in calibrate(), when it ran. */
  rounding?: RoundingSummary;

  /** The data passes calibrate() ran, in order (see decide/passes.ts). */
  passesRun: PassRun[] = [];

  /** The runtime options calibrate() ran with, for the passes that replay its batches later. */
  private passOptions?: RoundingPassOptions;

  /**
   * Adaptive rounding (see rounding-search.ts) of `layers`, in graph order, in the model with every
   * enabled layer quantized as `from` (default: this session's record) says: the layers rounded other
   * than nearest, each with its plan entry and record entry (`round_w`, and `bias_shift` under
   * `bias_correction`). Only layers still at nearest rounding are tried. Per layer, one run of each calibration batch; needs calibrate() first.
   */
  async roundingRepairs(layers: readonly string[], from: QuantRecord = this.record): Promise<Map<string, { quantization: LayerQuantization; record: QuantRecord['layers'][string] }>> {
    if (!this.source) throw new CalibrationError('adaptive rounding needs the calibration batches: call calibrate() first');
    const todo = new Set(layers.filter((n) => this.enabled.some((l) => l.name === n && l.weight) && !from.layers[n]?.round_w));
    if (todo.size === 0) return new Map();
    const record = structuredClone(from);
    for (const n of todo) delete record.layers[n]!.round_w;
    const summary = await chooseInto(this.session, planLayers(this.session, this.enabled, record), todo, record, await this.source(), this.passOptions ?? {});
    const kept = new Set(summary.layers);
    const plan = planLayers(this.session, this.enabled.filter((l) => kept.has(l.name)), record);
    return new Map(plan.map((quantization) => [quantization.layer.name, { quantization, record: record.layers[quantization.layer.name]! }]));
  }

  /**
   * Per layer of `plan`: the cosine and SQNR (dB) of its fake-quant output against its float output,
   * each layer alone on the float activations of the calibration batches (means over batches). One
   * more pass over the batches; needs calibrate() first.
   */
  async layerErrors(plan: readonly LayerQuantization[], options: CreateSessionOptions & Pick<Partial<LayerwiseOptions>, 'signal' | 'fakeWeightBudgetBytes' | 'onBatch'> = {}, weightOnly: readonly WeightOnlyQuantization[] = []): Promise<LayerError[]> {
    if (!this.source) throw new CalibrationError('layerErrors needs the calibration batches: call calibrate() first');
    const k = this.session.kernels;
    const sums = new Map<string, { cosine: number; sqnr: number; n: number }>();
    const all: Compared[] = [...plan, ...weightOnly];
    await compareLayers(this.session.work, all, await this.source(), { ...options, batchNum: this.config.batch_num, memoryBudgetBytes: DEFAULT_CALIBRATION_MEMORY, activationBytes: this.passOptions?.activationBytes }, (p, float, fake) => {
      const e = sums.get(p.layer.name) ?? { cosine: 0, sqnr: 0, n: 0 };
      e.cosine += k.cosine(float, fake);
      e.sqnr += k.sqnr(float, fake);
      e.n++;
      sums.set(p.layer.name, e);
    });
    return all.flatMap((p) => {
      const e = sums.get(p.layer.name);
      return e ? [{ layer: p.layer.name, cosine: e.cosine / e.n, sqnr: e.sqnr / e.n }] : [];
    });
  }

  /** Keeps the calibrated output quantizations that stay within fidelity on the sample (see selectOutputs). */
  chooseOutputs(options: CreateSessionOptions = {}): Promise<void> {
    return selectOutputs(this.session, this.plan(), this.record, options);
  }

  /**
   * The record with every calibrated output quantization kept, for callers whose own evaluation
   * decides, as the automatic calibration does; and how many it keeps (a reused record's included).
   * This session's record is left as calibration made it.
   */
  recordWithAllOutputs(): { record: QuantRecord; outputs: number } {
    const record = structuredClone(this.record);
    keepAllOutputs(this.session, this.plan(record), record);
    return { record, outputs: Object.values(record.layers).filter((l) => l.output_quant === true).length };
  }

  /** `record` with every kept output quantization turned back to float (AMCT's form). */
  recordWithoutOutputs(record: QuantRecord): QuantRecord {
    const copy = structuredClone(record);
    for (const l of Object.values(copy.layers)) if (l.output_quant === true) l.output_quant = false;
    return copy;
  }

  /**
   * The record a search returns, built once at its end from the record its plans came from:
   * `adopted` entries (calibrated by a variant or withActivationBits session) take their layers'
   * place, and with `plan` the outputs it leaves float are settled; layers that do not exist are
   * left out. Neither `base` nor this session's record is changed.
   *
   * An adopted entry keeps what only this session's record knows: the activation equalization
   * factors the shared working model already carries (without them a reuse would not equalize, and
   * the entry's factors were calibrated on the equalized input), and, under adaptive rounding, that
   * the variant's weights were rounded to nearest (without it a reuse would choose a rounding, from data).
   *
   * Settling marks `output_quant: false` for the layers of `plan` whose output the plan leaves float
   * and whose record has no output factors: a plan from this record would leave them float too, and
   * saying so keeps a reuse of the record with the layers `plan` left out disabled (the automatic
   * calibration's fallbacks) from calibrating those outputs, which needs data. Outputs the plan
   * quantizes (with a quantized reader's factors) keep their entry.
   */
  finalRecord(base: QuantRecord, adopted: Iterable<readonly [string, QuantRecord['layers'][string]]> = [], plan?: readonly LayerQuantization[], searched: readonly WeightOnlyQuantization[] = this.weightOnlyPlan()): QuantRecord {
    const record = structuredClone(base);
    for (const [layer, entry] of adopted) {
      const own = record.layers[layer];
      const taken = structuredClone(entry);
      if (taken.equalize_d === undefined && own?.equalize_d) taken.equalize_d = own.equalize_d;
      if (taken.split_d === undefined && own?.split_d) Object.assign(taken, { split_d: own.split_d, split_dither_d: own.split_dither_d });
      const weighted = this.enabled.some((l) => l.name === layer && l.weight);
      if (taken.round_w === undefined && weighted && this.session.config.weight_rounding === 'adaptive') taken.round_w = '';
      record.layers[layer] = taken;
    }
    if (plan) {
      const placed = new Set(outputPlacement(this.session, plan).outputs.map((o) => o.layer));
      for (const p of plan) {
        const l = record.layers[p.layer.name];
        if (l && !placed.has(p.layer.name) && l.scale_o === undefined && l.output_quant !== false) l.output_quant = false;
      }
    }
    return this.recorded(pruneRecord(this.session, record), searched);
  }

  /** `record` saying which data passes calibrate() ran, with what, and what the weight-only layers of a model with `searched` hold. */
  private recorded(record: QuantRecord, searched: readonly WeightOnlyQuantization[]): QuantRecord {
    const passes = withPasses(record, this.passesRun.map(({ name, stage, settings }) => ({ name, stage, settings })));
    return withWeights(passes, weightOnlyRecord([...this.fixedWeightOnlyPlan(), ...searched], this.session.weightScaling));
  }

  /** The plan of every enabled layer, from `record` (default: this session's). */
  plan(record: QuantRecord = this.record): LayerQuantization[] {
    return planLayers(this.session, this.enabled, record);
  }

  /**
   * The fake-quant model of `plan` with `searched` (default: every searched weight-only layer at its
   * configured bits) and the fixed weight-only layers.
   */
  fakeQuantModel(plan: readonly LayerQuantization[], searched: readonly WeightOnlyQuantization[] = this.weightOnlyPlan()): { model: Uint8Array; gpuRewrites: string[] } {
    const fake = this.fakeQuantProto(plan, searched);
    return { model: encodeModel(fake.model), gpuRewrites: fake.gpuRewrites };
  }

  /** fakeQuantModel unencoded, for a session (which may take its weights without an encoding). */
  fakeQuantProto(plan: readonly LayerQuantization[], searched: readonly WeightOnlyQuantization[] = this.weightOnlyPlan()): { model: ModelProto; gpuRewrites: string[] } {
    return fakeQuantModelProto(this.session, plan, [...this.fixedWeightOnlyPlan(), ...searched]);
  }

  /** The deploy model, its integer kernels' weights as `int8WeightType` asks the engine (see int8-kernels.ts). */
  async deployModel(plan: readonly LayerQuantization[], searched: readonly WeightOnlyQuantization[] = this.weightOnlyPlan(), options: CreateSessionOptions = {}): Promise<Uint8Array> {
    const weightType = plan.length && !isWeightOnlyTarget(this.config.deploy_target) ? await int8WeightType(options) : 'int8';
    return buildDeployModel(this.session, plan, [...this.fixedWeightOnlyPlan(), ...searched], weightType);
  }

  /** Per layer, whether `quantized` has it and, if not, why; what `record` (default: this session's) says of it. */
  layerReport(quantized: ReadonlySet<string>, reasonFor?: (name: string) => string | undefined, record: QuantRecord = this.record): LayerReport[] {
    // Every model built quantizes the fixed weight-only layers (data-free, outside the search).
    return layerReport(this.session, new Set([...quantized, ...this.fixedWeightOnly.map((l) => l.name)]), reasonFor, record);
  }

  /** The enabled weight-only layers (embeddings, recurrent layers; every layer under the 'webgpu' target). */
  get weightOnly(): LayerInfo[] {
    return this.session.weightOnly.filter((l) => layerConfig(this.session.config, l.name)?.quant_enable === true);
  }

  /**
   * The enabled weight-only layers the automatic search chooses among: under the 'webgpu' target all
   * of them (they are all its layers); on the CPU none, where embeddings and recurrent layers are
   * quantized in every model built (data-free, and int8 rows of a table were never what failed a model).
   */
  get searchedWeightOnly(): LayerInfo[] {
    return isWeightOnlyTarget(this.session.config.deploy_target) ? this.weightOnly : [];
  }

  /** The enabled weight-only layers outside the search. */
  get fixedWeightOnly(): LayerInfo[] {
    const searched = new Set(this.searchedWeightOnly);
    return this.weightOnly.filter((l) => !searched.has(l));
  }

  /** The searched weight-only layers quantized, at their configured bits or those `bits` gives. */
  weightOnlyPlan(bits?: ReadonlyMap<string, 4 | 8>): WeightOnlyQuantization[] {
    return planWeightOnly(this.session, this.searchedWeightOnly, bits);
  }

  private fixedWeightOnlyPlan(): WeightOnlyQuantization[] {
    const fixed = this.fixedWeightOnly;
    return fixed.length ? planWeightOnly(this.session, fixed) : [];
  }

  /** What stays float and why, counted (see coverage.ts), for a result whose layers are `layers`. */
  warnings(layers: readonly LayerReport[], search = false): QuantWarning[] {
    return coverageWarnings(layers, this.session.skipped, this.session.floatOnly, search);
  }

  /** A copy of the record restricted to layers that exist, for the model built with `searched`. */
  prunedRecord(searched: readonly WeightOnlyQuantization[] = this.weightOnlyPlan()): QuantRecord {
    return this.recorded(pruneRecord(this.session, structuredClone(this.record)), searched);
  }
}
