/** Numeric kernels: SIMD WebAssembly with a scalar TypeScript reference implementing the same contract. */
export { getKernels, getKernelsSync } from './wasm.js';
export { referenceKernels } from './reference.js';
export { guardScale, guardScales, SCALE_EPSILON } from './guard.js';
export { QUANT_RANGES } from './args.js';
export type {
  ChannelLayout,
  ChannelMinMax,
  DequantizeOptions,
  FakeQuantCandidates,
  FakeQuantizeOptions,
  KernelBackend,
  Kernels,
  MinMax,
  QuantArray,
  QuantArrayMap,
  QuantArrayOf,
  QuantizeOptions,
  QuantType,
  ResidentFloat32,
  ScaleArg,
  ZeroPointArg,
} from './types.js';
