/**
 * Types of the decoded ONNX model, re-exported from the generated protobuf code.
 *
 * Field names are camelCase (`rawData`, `opType`, `dataType`). After decodeModel, shapes (a tensor's
 * `dims`, a value info's `dimValue`) are plain numbers (see plain-dims.ts); the other int64 fields
 * (`irVersion`, attribute `i`/`ints`, `int64Data`, ...) hold `Long` objects (lossless: models use
 * values such as INT64_MAX that a JS number cannot hold). Every int64 field accepts `number | Long`
 * when building or encoding; convert them with the helpers in `int64.ts`.
 *
 * The aliases are the generated `$Properties` interfaces (every field optional), which both
 * decoded messages and plain objects built by hand satisfy. Decoded messages are class instances
 * (`onnx.ModelProto`, ...) with their own array for every repeated field and scalar defaults on
 * the prototype, so a field that was absent reads as '' / 0 / [] rather than undefined.
 */
import { onnx } from './generated/onnx.js';

export { onnx };

export type ModelProto = onnx.ModelProto.$Properties;
export type GraphProto = onnx.GraphProto.$Properties;
export type NodeProto = onnx.NodeProto.$Properties;
export type AttributeProto = onnx.AttributeProto.$Properties;
export type TensorProto = onnx.TensorProto.$Properties;
export type SparseTensorProto = onnx.SparseTensorProto.$Properties;
export type ValueInfoProto = onnx.ValueInfoProto.$Properties;
export type TypeProto = onnx.TypeProto.$Properties;
export type TensorShapeProto = onnx.TensorShapeProto.$Properties;
export type OperatorSetIdProto = onnx.OperatorSetIdProto.$Properties;
export type FunctionProto = onnx.FunctionProto.$Properties;
export type TrainingInfoProto = onnx.TrainingInfoProto.$Properties;
export type StringStringEntryProto = onnx.StringStringEntryProto.$Properties;
export type TensorAnnotation = onnx.TensorAnnotation.$Properties;

/** A 64-bit integer field value: a `Long` after decoding (a number for shapes), or a plain number when built by hand. */
export type Int64 = onnx.TensorProto['dims'][number];
