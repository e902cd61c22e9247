/** `autoquant/runtime`: engines, sessions, where nodes run, logging. */
export { Tensor, useOrt, getOrt, createSession, useEngine, defaultEngine, ENGINES } from '../runtime/ort.js';
export type { InferenceSession, CreateSessionOptions, Ort, Engine } from '../runtime/ort.js';
export { nodePlacement, parsePlacement } from '../runtime/placement.js';
export type { NodePlacement, PlacedNode } from '../runtime/placement.js';
export { env } from '../runtime/env.js';
export { setLogLevel, LOG_LEVELS } from '../runtime/log.js';
export type { LogLevel } from '../runtime/log.js';
