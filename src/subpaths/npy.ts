/** `autoquant/npy`: NumPy .npy/.npz reading and writing, for calibration data and dumps. */
export { parseNpy, parseNpz, toFloat32, encodeNpy, encodeNpz, NpyFormatError } from '../data/npy.js';
export type { NpyArray, NpyDType, NpyEncodable } from '../data/npy.js';
