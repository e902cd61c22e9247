/** `autoquant/kernels`: the SIMD Wasm quantization and similarity kernels and their scalar reference. */
export * from '../kernels/index.js';
