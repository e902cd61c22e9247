/**
 * Repairs before float: once the search has found which layers must leave int8, cheaper fixes are
 * tried on them first, each keeping int8 weights:
 *   - 'weights':  per-channel weights for a layer the config left per tensor (needs opset 13);
 *   - 'rounding': adaptive weight rounding (see quant/rounding-search.ts) of those layers, in
 *                 graph order, in the model with every enabled layer quantized as calibrated;
 *   - 'observer': another activation observer (min-max, percentile), chosen per layer by its
 *                 layer-wise similarity on the calibration batches, where it beats the current one;
 *   - 'int16':    16-bit activations (the deploy model then needs opset 21).
 * Rounding precedes the observer since it is chosen for the layers together, an observer per layer
 * alone (docs/algorithms.md has the measurement). Each repair is first tried on every remaining float layer at once (one evaluation); if that fails,
 * a bracket search (findBoundary, regula falsi on the count: the losses of the two ends say where the
 * limit lies) finds the largest set of the least sensitive ones it repairs, under the search's own
 * assumption (fewer changes from float, in ranking order, never make the metric worse).
 */
import { OnnxFormatError } from '../errors.js';
import type { QuantRecord } from '../quant/config/record.js';
import type { PreparedQuantization } from '../quant/quantize.js';
import { defaultActivation, type ActivationAlgo, type LayerQuantConfig } from '../quant/config/config.js';
import type { LayerQuantization } from '../quant/export/rewrite.js';
import type { LayerScore } from './sensitivity.js';
import { findBoundary, type Verdict } from './strategies.js';

export type RepairName = 'weights' | 'observer' | 'rounding' | 'int16';
export const REPAIRS: readonly RepairName[] = Object.freeze(['weights', 'rounding', 'observer', 'int16']);

export interface LayerRepair {
  layer: string;
  repair: RepairName;
  /** What changed, in words (e.g. "act_algo ifmr → minmax"). */
  detail: string;
}

/** One layer's repaired quantization, with what the config and record must say for it. */
export interface RepairCandidate {
  repair: LayerRepair;
  quantization: LayerQuantization;
  record: QuantRecord['layers'][string];
  edit: (entry: LayerQuantConfig) => void;
}

export interface RepairContext {
  p: PreparedQuantization;
  /** The record the search's plans come from (calibration's, with the outputs it kept). */
  record: QuantRecord;
  /** Calibrates a variant on the user's batches. */
  calibrate: (v: PreparedQuantization, what: string) => Promise<void>;
  /** Layer-wise similarity of the given plan's layers (see rankLayers). */
  score: (plan: readonly LayerQuantization[]) => Promise<LayerScore[]>;
  /** The ranking's scores of the current quantization. */
  ranking: readonly LayerScore[];
}

const OBSERVER_ALTERNATIVES: readonly ActivationAlgo[] = ['minmax', 'percentile'];

function candidates(v: PreparedQuantization, layers: readonly string[], repair: RepairName, detail: (name: string) => string, edit: (e: LayerQuantConfig) => void): Map<string, RepairCandidate> {
  const only = new Set(layers);
  return new Map(
    v.plan()
      .filter((q) => only.has(q.layer.name))
      .map((q) => [q.layer.name, { repair: { layer: q.layer.name, repair, detail: detail(q.layer.name) }, quantization: q, record: v.record.layers[q.layer.name]!, edit }]),
  );
}

/**
 * The repaired quantization of those `layers` the repair applies to (none when it cannot apply, e.g.
 * the opset it needs is out of reach).
 */
export async function buildRepair(ctx: RepairContext, repair: RepairName, layers: readonly string[], kept: ReadonlyMap<string, RepairCandidate> = new Map()): Promise<Map<string, RepairCandidate>> {
  const { p } = ctx;
  const entry = (name: string) => p.config[name] as LayerQuantConfig;
  const attempt = (names: string[], edit: (e: LayerQuantConfig) => void, keepFactors = false): PreparedQuantization | undefined => {
    if (names.length === 0) return undefined;
    try {
      return p.variant(names, edit, keepFactors);
    } catch (e) {
      if (e instanceof OnnxFormatError) return undefined; // the deploy opset this needs is out of reach
      throw e;
    }
  };
  switch (repair) {
    case 'weights': {
      const names = layers.filter((n) => {
        const info = p.enabled.find((l) => l.name === n);
        return info?.weight && info.weight.channelAxis >= 0 && entry(n).weight_quant_params?.channel_wise === false;
      });
      const edit = (e: LayerQuantConfig) => (e.weight_quant_params!.channel_wise = true);
      const v = attempt(names, edit, true);
      if (!v) return new Map();
      await ctx.calibrate(v, 'per-channel weights');
      return candidates(v, names, 'weights', () => 'per-channel weights', edit);
    }
    case 'rounding': {
      // Rounding absorbs the error its input carries, so it is chosen with the repairs already kept in
      // place: chosen without them, 15 roundings on PP-OCRv4 rec beside 2 observer repairs took the
      // cosine from 0.9958 to 0.987, where the same roundings alone reached 0.9953.
      const record: QuantRecord = { ...ctx.record, layers: { ...ctx.record.layers, ...Object.fromEntries([...kept].map(([n, c]) => [n, c.record])) } };
      const found = await p.roundingRepairs(layers, record);
      return new Map(
        [...found].map(([name, f]) => [name, { repair: { layer: name, repair: 'rounding' as const, detail: 'adaptive weight rounding' }, quantization: f.quantization, record: f.record, edit: () => {} }]),
      );
    }
    case 'int16': {
      const names = layers.filter((n) => entry(n).activation_quant_params!.num_bits === 8);
      const edit = (e: LayerQuantConfig) => (e.activation_quant_params!.num_bits = 16);
      const v = attempt(names, edit);
      if (!v) return new Map();
      await ctx.calibrate(v, '16-bit activations');
      return candidates(v, names, 'int16', () => '16-bit activations', edit);
    }
    case 'observer': {
      const current = new Map(ctx.ranking.map((r) => [r.layer, r.score]));
      const best = new Map<string, { score: number; candidate: RepairCandidate }>();
      for (const algo of OBSERVER_ALTERNATIVES) {
        const names = layers.filter((n) => entry(n).activation_quant_params!.act_algo !== algo);
        const edit = (e: LayerQuantConfig) => {
          e.activation_quant_params = { ...defaultActivation(algo, e.activation_quant_params!.num_bits), ...(e.activation_quant_params!.asymmetric === undefined ? {} : { asymmetric: e.activation_quant_params!.asymmetric }) };
        };
        const v = attempt(names, edit);
        if (!v) continue;
        await ctx.calibrate(v, `${algo} observer`);
        const found = candidates(v, names, 'observer', (n) => `act_algo ${entry(n).activation_quant_params!.act_algo} → ${algo}`, edit);
        for (const s of await ctx.score([...found.values()].map((c) => c.quantization))) {
          const bar = best.get(s.layer)?.score ?? current.get(s.layer) ?? -Infinity;
          if (s.score > bar) best.set(s.layer, { score: s.score, candidate: found.get(s.layer)! });
        }
      }
      return new Map([...best].map(([n, b]) => [n, b.candidate]));
    }
  }
}

/**
 * Tries each repair in turn on the layers still in float (`order`: most sensitive first). `probe`
 * evaluates the model with the given repairs and every other layer of `order` in float; `passing`
 * is the loss of the model with none repaired (which passes), `threshold` the loss at which the
 * verdict turns (see findBoundary). Returns the repairs kept; layers of `order` without one stay in float.
 */
export async function repairFallbacks(
  ctx: RepairContext,
  order: readonly string[],
  repairs: readonly RepairName[],
  probe: (repaired: ReadonlyMap<string, RepairCandidate>) => Promise<Verdict>,
  mayProbe: () => boolean,
  passing = NaN,
  threshold?: () => number | undefined,
): Promise<Map<string, RepairCandidate>> {
  const kept = new Map<string, RepairCandidate>();
  let hiLoss = passing;
  for (const repair of repairs) {
    const left = order.filter((n) => !kept.has(n));
    if (left.length === 0 || !mayProbe()) break;
    const built = await buildRepair(ctx, repair, left, kept);
    const list = left.filter((n) => built.has(n));
    if (list.length === 0) continue;
    // Index j repairs list[j..], the least sensitive; list.length repairs nothing, the state known to pass.
    const withSuffix = (j: number) => new Map([...kept, ...list.slice(j).map((n) => [n, built.get(n)!] as const)]);
    if (!mayProbe()) break;
    const all = await probe(withSuffix(0));
    let hi = 0;
    if (all.ok) hiLoss = all.loss;
    else {
      const found = await findBoundary({ lo: 0, loLoss: all.loss, hi: list.length, hiLoss }, async (j) => {
        const v = await probe(withSuffix(j));
        if (v.ok) hiLoss = v.loss;
        return v;
      }, mayProbe, threshold);
      hi = found.hi;
    }
    for (const n of list.slice(hi)) kept.set(n, built.get(n)!);
  }
  return kept;
}
