/** `n` samples of synthetic voiced speech at `rate` Hz, peak 0.5 (see speech.mjs). */
export function voicedSpeech(n: number, rate: number, seed: number): Float32Array;
