/**
 * What the search chooses among: the calibrated plan of every enabled layer, and for any choice of
 * layers out of int8 (in float, or at 16-bit activations with `fallback: 'int16'`) and of repairs,
 * the plan and fake-quant model it gives. Calibration's factors are reused by every choice, so a
 * step of the search costs one model build and one evaluation, never a calibration.
 */
import type { ModelProto } from '../onnx/types.js';
import type { PreparedQuantization } from '../quant/prepared.js';
import type { QuantRecord } from '../quant/config/record.js';
import type { LayerQuantization } from '../quant/export/rewrite.js';
import { weightOnlyBits, type WeightOnlyQuantization } from '../quant/export/weight-only.js';
import type { RepairCandidate } from './repairs.js';

/**
 * Where a layer goes when it leaves its level: float, 16-bit activations, or (the mixed 4/8-bit
 * search's first level, weight-only layers only) 8-bit weights.
 */
export type FallbackTo = 'float' | 'int16' | '8-bit';

/** One point of the search: the layers out of int8 and the layers repaired instead. */
export interface Choice {
  fallback: readonly string[];
  repaired?: ReadonlyMap<string, RepairCandidate>;
}

export class SearchSpace {
  /** The record the plans come from: calibration's, with every output quantization kept at first. */
  record: QuantRecord;
  plan: LayerQuantization[];
  /** How many output quantizations `record` keeps. */
  readonly outputs: number;
  /** With fallback 'int16': each layer at 16-bit activations, and the record they were calibrated into. */
  private wide?: { plan: Map<string, LayerQuantization>; record: QuantRecord };
  /** The searched weight-only layers (the 'webgpu' target's), at the bits of this level. */
  readonly weightOnly: WeightOnlyQuantization[];
  /** With fallback '8-bit': each weight-only layer at 8 bits. */
  private upper?: Map<string, WeightOnlyQuantization>;

  /** `bits`: the weight-only layers' bits at this level, where not the config's. */
  constructor(readonly p: PreparedQuantization, readonly fallbackTo: FallbackTo, bits?: ReadonlyMap<string, 4 | 8>) {
    // The evaluator judges the output quantizations here, so all are kept at first.
    const { record, outputs } = p.recordWithAllOutputs();
    this.record = record;
    this.outputs = outputs;
    this.plan = p.plan(record);
    this.weightOnly = p.weightOnlyPlan(bits);
    if (fallbackTo === '8-bit') {
      const eight = new Map(this.weightOnly.map((w) => [w.layer.name, 8 as const]));
      this.upper = new Map(p.weightOnlyPlan(eight).map((w) => [w.layer.name, w]));
    }
  }

  /** How many layers the search chooses among. */
  get size(): number {
    return this.plan.length + this.weightOnly.length;
  }

  /** Their names, in model order within each kind. */
  get names(): string[] {
    return [...this.plan.map((l) => l.layer.name), ...this.weightOnly.map((w) => w.layer.name)];
  }

  /** Whether falling `name` back changes it: at the '8-bit' level only layers at 4 bits move. */
  movable(name: string): boolean {
    return this.fallbackTo !== '8-bit' || this.weightOnly.some((w) => w.layer.name === name && weightOnlyBits(w) === 4);
  }

  /** Whether `name` is a layer with quantized activations (which the repairs apply to). */
  hasActivations(name: string): boolean {
    return this.plan.some((l) => l.layer.name === name);
  }

  /** Turns every output quantization back to float: the cheapest thing to give up. */
  dropOutputs(): void {
    this.record = this.p.recordWithoutOutputs(this.record);
    this.plan = this.p.plan(this.record);
  }

  /** Calibrates the 16-bit form of every layer, once for the whole search (fallback 'int16'). */
  async widen(calibrate: (v: PreparedQuantization) => Promise<void>): Promise<void> {
    const p16 = this.p.withActivationBits(16);
    await calibrate(p16);
    this.wide = { plan: new Map(p16.plan().map((l) => [l.layer.name, l])), record: p16.record };
  }

  /** The plan of `choice`: its fallbacks out of int8, its repairs in place of their layers. */
  planFor({ fallback, repaired }: Choice): LayerQuantization[] {
    const off = new Set(fallback);
    const wide = this.wide?.plan;
    return this.plan.flatMap((l) => (!off.has(l.layer.name) ? [repaired?.get(l.layer.name)?.quantization ?? l] : wide ? [wide.get(l.layer.name)!] : []));
  }

  /** The searched weight-only layers of `choice`: out of this level, at 8 bits (fallback '8-bit') or float. */
  weightOnlyFor({ fallback }: Choice): WeightOnlyQuantization[] {
    const off = new Set(fallback);
    const upper = this.upper;
    return this.weightOnly.flatMap((w) => (!off.has(w.layer.name) ? [w] : upper ? [upper.get(w.layer.name)!] : []));
  }

  modelFor(choice: Choice): ModelProto {
    return this.p.fakeQuantProto(this.planFor(choice), this.weightOnlyFor(choice)).model;
  }

  /** The record entries `choice` takes from other calibrations: its repairs', and the 16-bit fallbacks'. */
  adoptedEntries({ fallback, repaired }: Choice): [string, QuantRecord['layers'][string]][] {
    const out: [string, QuantRecord['layers'][string]][] = [...(repaired ?? new Map())].map(([name, c]) => [name, c.record]);
    if (this.wide) for (const name of fallback) out.push([name, this.wide.record.layers[name]!]);
    return out;
  }
}
