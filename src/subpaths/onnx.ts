/** `autoquant/onnx`: decode, inspect, build and encode ONNX models; the schema types. */
export * from '../onnx/index.js';
export { upgradeOpset } from '../onnx/opset.js';
