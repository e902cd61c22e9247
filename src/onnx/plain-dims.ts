/**
 * After decoding, shapes are plain numbers: a tensor's `dims` and a value info's `dimValue` hold
 * sizes, which are always exact as doubles, and a number is what a JS caller compares and does
 * arithmetic with. Other int64 fields (`int64Data`, attribute `i`/`ints`, `irVersion`) stay `Long`,
 * since they do hold values such as INT64_MAX. Encoding writes the same bytes either way.
 */
import { walkGraphs } from './graph.js';
import { int64ToNumber } from './int64.js';
import { forEachTensor } from './tensors-walk.js';
import type { GraphProto, Int64, ModelProto, TypeProto, ValueInfoProto } from './types.js';

const plain = (v: Int64): Int64 => {
  const n = int64ToNumber(v);
  return Number.isSafeInteger(n) ? n : v;
};

function plainType(t: TypeProto | null | undefined): void {
  if (!t) return;
  for (const d of t.tensorType?.shape?.dim ?? []) {
    // Only a dim that holds a value: dim_value and dim_param are a oneof, and setting one would drop the other.
    if (Object.prototype.hasOwnProperty.call(d, 'dimValue') && d.dimValue !== null && d.dimValue !== undefined) d.dimValue = plain(d.dimValue);
  }
  for (const d of t.sparseTensorType?.shape?.dim ?? []) {
    if (Object.prototype.hasOwnProperty.call(d, 'dimValue') && d.dimValue !== null && d.dimValue !== undefined) d.dimValue = plain(d.dimValue);
  }
  plainType(t.sequenceType?.elemType);
  plainType(t.optionalType?.elemType);
  plainType(t.mapType?.valueType);
}

const plainInfos = (infos: readonly ValueInfoProto[] | null | undefined) => {
  for (const info of infos ?? []) plainType(info.type);
};

function plainGraph(g: GraphProto): void {
  walkGraphs(g, (graph) => {
    plainInfos(graph.input);
    plainInfos(graph.output);
    plainInfos(graph.valueInfo);
  });
}

export function plainDims(model: ModelProto): void {
  forEachTensor(model, (t) => {
    if (t.dims?.length) t.dims = t.dims.map(plain);
  });
  if (model.graph) plainGraph(model.graph);
  for (const info of model.trainingInfo ?? []) {
    if (info.initialization) plainGraph(info.initialization);
    if (info.algorithm) plainGraph(info.algorithm);
  }
  for (const fn of model.functions ?? []) plainInfos(fn.valueInfo);
}
