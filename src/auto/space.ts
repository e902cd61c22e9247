/**
 * What the search chooses among: the calibrated plan of every enabled layer, and for any choice of
 * layers out of int8 (in float, or at 16-bit activations with `fallback: 'int16'`) and of repairs,
 * the plan and fake-quant model it gives. Calibration's factors are reused by every choice, so a
 * step of the search costs one model build and one evaluation, never a calibration.
 */
import type { PreparedQuantization } from '../quant/prepared.js';
import type { QuantRecord } from '../quant/config/record.js';
import type { LayerQuantization } from '../quant/export/rewrite.js';
import type { RepairCandidate } from './repairs.js';

export type FallbackTo = 'float' | 'int16';

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

  constructor(readonly p: PreparedQuantization, readonly fallbackTo: FallbackTo) {
    // The evaluator judges the output quantizations here, so all are kept at first.
    const { record, outputs } = p.recordWithAllOutputs();
    this.record = record;
    this.outputs = outputs;
    this.plan = p.plan(record);
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

  modelFor(choice: Choice): Uint8Array {
    return this.p.fakeQuantModel(this.planFor(choice)).model;
  }

  /** The record entries `choice` takes from other calibrations: its repairs', and the 16-bit fallbacks'. */
  adoptedEntries({ fallback, repaired }: Choice): [string, QuantRecord['layers'][string]][] {
    const out: [string, QuantRecord['layers'][string]][] = [...(repaired ?? new Map())].map(([name, c]) => [name, c.record]);
    if (this.wide) for (const name of fallback) out.push([name, this.wide.record.layers[name]!]);
    return out;
  }
}
