/** Public API of the ONNX layer: reading, writing and querying models. */
export { onnx } from './types.js';
export type {
  ModelProto,
  GraphProto,
  NodeProto,
  AttributeProto,
  TensorProto,
  SparseTensorProto,
  ValueInfoProto,
  TypeProto,
  TensorShapeProto,
  OperatorSetIdProto,
  FunctionProto,
  TrainingInfoProto,
  StringStringEntryProto,
  TensorAnnotation,
  Int64,
} from './types.js';
export { decodeModel, loadModel, encodeModel, MAX_MODEL_BYTES } from './model.js';
export type { LoadModelOptions } from './model.js';
export type { ExternalDataSource } from './external.js';
export {
  DataType,
  dataTypeName,
  elementCount,
  tensorDims,
  readTensor,
  readTensorAsFloat32,
  makeTensor,
  setTensorData,
  describeTensor,
} from './tensor.js';
export type { DataTypeCode, DataTypeName, TensorData, TensorInput } from './tensor.js';
export { float16BitsToNumber, numberToFloat16Bits, bfloat16BitsToNumber } from './floats.js';
export { int64ToBigInt, int64ToNumber, int64ToSafeNumber } from './int64.js';
export {
  topologicalOrder,
  producerMap,
  consumerMap,
  getConstant,
  opsetVersion,
  walkGraphs,
  subgraphsOf,
  implicitInputs,
  stableNodeName,
  nodeNames,
  assignStableNames,
  findAttribute,
} from './graph.js';
export type { Producer, Consumer } from './graph.js';
export { declaredInputs, describeDeclared, checkFeeds } from './inputs.js';
export type { DeclaredInput } from './inputs.js';
