/** The public API. This file only re-exports; docs/api.md is the contract. */
export * from './errors.js';
export * from './onnx/index.js';
export { upgradeOpset } from './onnx/opset.js';
export * from './kernels/index.js';
export * from './quant/index.js';
export * from './auto/index.js';
export { htmlReport } from './report/html.js';
export type { HtmlReportOptions } from './report/html.js';
export { env } from './runtime/env.js';
export { setLogLevel, LOG_LEVELS } from './runtime/log.js';
export type { LogLevel } from './runtime/log.js';
export { Tensor, useOrt, getOrt, createSession, useEngine, defaultEngine, ENGINES } from './runtime/ort.js';
export type { InferenceSession, CreateSessionOptions, Ort, Engine } from './runtime/ort.js';
export { nodePlacement, parsePlacement } from './runtime/placement.js';
export type { NodePlacement, PlacedNode } from './runtime/placement.js';
export { parseNpy, parseNpz, toFloat32, encodeNpy, encodeNpz, NpyFormatError } from './data/npy.js';
export type { NpyArray, NpyDType, NpyEncodable } from './data/npy.js';
export { VERSION } from './version.js';
