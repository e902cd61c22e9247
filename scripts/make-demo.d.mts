/** The bytes of demo/digits.npz (see make-demo.mjs). */
export function demoDigits(): Uint8Array;
