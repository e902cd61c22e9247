/**
 * Adaptive weight rounding: each weight is rounded down or up, not to nearest, so that the layer's
 * int8 output on the input the quantized model actually feeds it comes closest to the float layer's
 * output on the float input (AdaRound's choice of grid point, Nagel et al. 2020, with the
 * "asymmetric" target of later work: the layer also absorbs part of the error upstream of it).
 *
 * Per output channel o with weights w and scale s, over the calibration patches x (float model) and
 * x̃ (fake-quant model), the rounding v ∈ s·{⌊w/s⌋, ⌈w/s⌉} minimizes
 *   E[(w·x − v·x̃)²] = vᵀ H v − 2 vᵀ G w + const,  H = E[x̃ x̃ᵀ], G = E[x̃ xᵀ],
 * by coordinate descent from round-to-nearest (Kernels.roundRows; every accepted flip lowers the
 * error, so it never ends worse than nearest on the calibration data). Nearest rounding ignores that a filter whose taps
 * sum to almost zero (an edge detector) turns each tap's rounding error into an error on the input's
 * mean, which is often much larger than the edge it detects; H sees that.
 *
 * Memory: H and G are d×d per group (d = inputs per output: C_in/group · kh · kw), held for one
 * layer at a time; layers with d above MAX_INPUTS keep nearest rounding. Patches are subsampled per
 * batch, evenly spaced (see patchesPerBatch).
 */
import { findAttribute } from '../../onnx/graph.js';
import type { NodeProto } from '../../onnx/types.js';
import type { Kernels } from '../../kernels/types.js';
import type { LayerInfo } from '../prepare/registry.js';

/** The most inputs per output channel whose d×d statistics are kept. */
export const MAX_INPUTS = 1024;
/**
 * Patches taken per batch and layer (evenly spaced): at most MAX_PATCHES, and fewer for wide layers
 * so that one batch costs at most about PATCH_WORK multiply-adds per layer, but never under MIN_PATCHES.
 */
export const MAX_PATCHES = 4096;
const MIN_PATCHES = 1024;
const PATCH_WORK = 2 ** 24;
export const patchesPerBatch = (d: number, groups: number) => Math.max(MIN_PATCHES, Math.min(MAX_PATCHES, Math.floor(PATCH_WORK / (groups * d * d))));
/** Coordinate-descent sweeps per output channel; in practice it settles in a handful. */
const MAX_SWEEPS = 20;

/** How a layer turns its input tensor into the vectors its weights are dotted with. */
export type PatchGeometry =
  | { kind: 'conv'; group: number; kernel: [number, number]; strides: [number, number]; pads: [number, number, number, number]; dilations: [number, number] }
  | { kind: 'rows' };

/**
 * The patch geometry of a layer, or a reason it keeps nearest rounding. Only what the statistics
 * can follow exactly: 2-D Conv with explicit pads, and Gemm/MatMul over the input's last axis.
 */
export function patchGeometry(node: NodeProto, layer: LayerInfo): PatchGeometry | string {
  if (!layer.weight) return 'has no weight';
  if (layer.opType === 'Gemm' || layer.opType === 'MatMul') return { kind: 'rows' };
  if (layer.opType !== 'Conv') return `${layer.opType} keeps nearest rounding`;
  if (layer.weight.dims.length !== 4) return 'only 2-D convolutions are rounded adaptively';
  const autoPad = findAttribute(node, 'auto_pad')?.s;
  if (autoPad && autoPad.length && new TextDecoder().decode(autoPad) !== 'NOTSET') return 'auto_pad convolutions keep nearest rounding';
  const ints = (name: string, fallback: number[]) => {
    const a = findAttribute(node, name)?.ints;
    return a && a.length ? a.map(Number) : fallback;
  };
  const group = Number(findAttribute(node, 'group')?.i ?? 1);
  const [, , kh, kw] = layer.weight.dims as [number, number, number, number];
  const pads = ints('pads', [0, 0, 0, 0]);
  return {
    kind: 'conv',
    group,
    kernel: [kh, kw],
    strides: ints('strides', [1, 1]) as [number, number],
    pads: pads as [number, number, number, number],
    dilations: ints('dilations', [1, 1]) as [number, number],
  };
}

/** Running sums of one layer's patch statistics, per group. */
export interface RoundingStats {
  /** Inputs per output channel. */
  d: number;
  /** Per group: Σ x̃ x̃ᵀ (upper triangle, row-major d×d), Σ x̃ xᵀ (G[j·d + i] = Σ x̃_j x_i), Σ x̃ and Σ x. */
  hh: Float64Array[];
  gg: Float64Array[];
  sq: Float64Array[];
  sf: Float64Array[];
  count: number;
}

export function newStats(d: number, groups: number): RoundingStats {
  const make = (n: number) => Array.from({ length: groups }, () => new Float64Array(n));
  return { d, hh: make(d * d), gg: make(d * d), sq: make(d), sf: make(d), count: 0 };
}

/**
 * Adds one batch: `float` and `fake` are the layer's input in the float and the fake-quant model,
 * both of shape `dims` (NCHW for a Conv; rows over the last axis otherwise). The sampled patches of
 * each group are laid out column-major for the kernels' crossMoments.
 */
export function accumulate(k: Kernels, s: RoundingStats, geometry: PatchGeometry, float: Float32Array, fake: Float32Array, dims: readonly number[]): void {
  const d = s.d;
  if (geometry.kind === 'rows') {
    const rows = float.length / d;
    const step = Math.max(1, Math.ceil(rows / patchesPerBatch(d, 1)));
    const m = Math.ceil(rows / step);
    const qa = new Float32Array(m * d);
    const fa = new Float32Array(m * d);
    for (let r = 0, t = 0; r < rows; r += step, t++) {
      for (let i = 0; i < d; i++) {
        qa[i * m + t] = fake[r * d + i]!;
        fa[i * m + t] = float[r * d + i]!;
      }
    }
    k.crossMoments(qa, fa, m, d, s.hh[0]!, s.gg[0]!);
    addSums(s, 0, qa, fa, m);
    s.count += m;
    return;
  }
  const [n, c, h, w] = dims as [number, number, number, number];
  const { group, kernel: [kh, kw], strides: [sh, sw], pads: [pt, pl, pb, pr], dilations: [dh, dw] } = geometry;
  const ho = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const wo = Math.floor((w + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const cg = c / group;
  const positions = n * ho * wo;
  const step = Math.max(1, Math.ceil(positions / patchesPerBatch(d, group)));
  const m = Math.ceil(positions / step);
  const qa = new Float32Array(m * d);
  const fa = new Float32Array(m * d);
  for (let g = 0; g < group; g++) {
    for (let p = 0, t = 0; p < positions; p += step, t++) {
      const b = Math.floor(p / (ho * wo));
      const y = Math.floor(p / wo) % ho;
      const x = p % wo;
      let j = 0;
      for (let ci = 0; ci < cg; ci++) {
        const plane = (b * c + g * cg + ci) * h * w;
        for (let ky = 0; ky < kh; ky++) {
          const iy = y * sh - pt + ky * dh;
          for (let kx = 0; kx < kw; kx++, j++) {
            const ix = x * sw - pl + kx * dw;
            const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            qa[j * m + t] = inside ? fake[plane + iy * w + ix]! : 0;
            fa[j * m + t] = inside ? float[plane + iy * w + ix]! : 0;
          }
        }
      }
    }
    k.crossMoments(qa, fa, m, d, s.hh[g]!, s.gg[g]!);
    addSums(s, g, qa, fa, m);
  }
  s.count += m;
}

/** Adds each column's sum (one input's values over the m samples) to the group's Σ x̃ and Σ x. */
function addSums(s: RoundingStats, g: number, qa: Float32Array, fa: Float32Array, m: number): void {
  const sq = s.sq[g]!;
  const sf = s.sf[g]!;
  for (let j = 0; j < s.d; j++) {
    let a = 0;
    let b = 0;
    for (let t = j * m, end = t + m; t < end; t++) {
      a += qa[t]!;
      b += fa[t]!;
    }
    sq[j] = sq[j]! + a;
    sf[j] = sf[j]! + b;
  }
}

/** How a weight tensor's output channels map to rows of d inputs. */
interface WeightLayout {
  outputs: number;
  d: number;
  /** Flat index of input i of output o. */
  at(o: number, i: number): number;
  /** Group of output o. */
  groupOf(o: number): number;
}

function weightLayout(layer: LayerInfo, geometry: PatchGeometry, transB: boolean): WeightLayout {
  const dims = layer.weight!.dims;
  if (geometry.kind === 'conv') {
    const outputs = dims[0]!;
    const d = dims[1]! * dims[2]! * dims[3]!;
    const perGroup = outputs / geometry.group;
    return { outputs, d, at: (o, i) => o * d + i, groupOf: (o) => Math.floor(o / perGroup) };
  }
  // MatMul and Gemm: [K, N], or [N, K] for Gemm with transB.
  if (transB) {
    const [outputs, d] = dims as [number, number];
    return { outputs, d, at: (o, i) => o * d + i, groupOf: () => 0 };
  }
  const [d, outputs] = dims as [number, number];
  return { outputs, d, at: (o, i) => i * outputs + o, groupOf: () => 0 };
}

export function inputsPerOutput(layer: LayerInfo, geometry: PatchGeometry, transB: boolean): { d: number; groups: number } {
  const { d } = weightLayout(layer, geometry, transB);
  return { d, groups: geometry.kind === 'conv' ? geometry.group : 1 };
}

export interface RoundingResult {
  /** The chosen int8 values (same layout as the weight). */
  q: Int8Array;
  /** Weights changed from nearest rounding. */
  flipped: number;
  /** E[(w·x − v·x̃)²] − E[(w·x)²] summed over output channels, before (nearest) and after. */
  errorBefore: number;
  errorAfter: number;
  /** Per output channel, E[v·x̃ − w·x] with the chosen rounding: the mean error a bias can take off. */
  shift: Float64Array;
}

/**
 * Chooses the rounding of `w` (see the module comment) given nearest-rounded `nearest` and the
 * per-channel (or single) `scale`. Values stay within ±127 like nearest rounding's. `centered`
 * minimizes the error left once its mean per output channel (`shift`) is taken off the bias.
 */
export function roundAdaptively(
  k: Kernels,
  layer: LayerInfo,
  geometry: PatchGeometry,
  transB: boolean,
  w: Float32Array,
  nearest: Int8Array,
  scale: Float32Array,
  stats: RoundingStats,
  centered = false,
): RoundingResult {
  const layout = weightLayout(layer, geometry, transB);
  const { d, outputs } = layout;
  const inv = 1 / Math.max(1, stats.count);
  const groups = stats.hh.length;
  const c = centered ? inv * inv : 0;
  const q = Int8Array.from(nearest);
  let flipped = 0;
  let errorBefore = 0;
  let errorAfter = 0;
  const shift = new Float64Array(outputs);
  for (let g = 0; g < groups; g++) {
    // Symmetric H from its upper triangle, and G, as expectations; centered, they are covariances, the
    // error left once the bias takes off its mean.
    const u = stats.hh[g]!;
    const mq = stats.sq[g]!;
    const mf = stats.sf[g]!;
    const H = new Float64Array(d * d);
    for (let j = 0; j < d; j++) for (let i = j; i < d; i++) H[j * d + i] = H[i * d + j] = u[j * d + i]! * inv - c * mq[j]! * mq[i]!;
    const G = new Float64Array(d * d);
    const gg = stats.gg[g]!;
    for (let j = 0; j < d; j++) for (let i = 0; i < d; i++) G[j * d + i] = gg[j * d + i]! * inv - c * mq[j]! * mf[i]!;
    // This group's output channels, one row of d weights each.
    const rows: number[] = [];
    for (let o = 0; o < outputs; o++) if (Math.min(layout.groupOf(o), groups - 1) === g) rows.push(o);
    const wr = new Float32Array(rows.length * d);
    const qr = new Int8Array(rows.length * d);
    const sr = new Float64Array(rows.length);
    rows.forEach((o, r) => {
      sr[r] = scale.length === 1 ? scale[0]! : scale[o]!;
      for (let i = 0; i < d; i++) {
        const at = layout.at(o, i);
        wr[r * d + i] = w[at]!;
        qr[r * d + i] = q[at]!;
      }
    });
    // Both objectives lack the constant E[(w·x)²], which cancels in their difference.
    const objectives = k.roundRows(H, G, wr, sr, qr, d, MAX_SWEEPS);
    rows.forEach((o, r) => {
      errorBefore += objectives[2 * r]!;
      errorAfter += objectives[2 * r + 1]!;
      let mean = 0;
      for (let i = 0; i < d; i++) {
        const at = layout.at(o, i);
        const v = qr[r * d + i]!;
        q[at] = v;
        mean += (v * sr[r]! * mq[i]! - wr[r * d + i]! * mf[i]!) * inv;
        if (v !== nearest[at]) flipped++;
      }
      shift[o] = mean;
    });
  }
  return { q, flipped, errorBefore, errorAfter, shift };
}

/** The channel index of each flat weight element along `axis` (0 for a single scale). */
function channelOf(dims: readonly number[], axis: number, scales: number): (i: number) => number {
  if (axis < 0 || scales === 1) return () => 0;
  const stride = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const size = dims[axis]!;
  return (i) => Math.floor(i / stride) % size;
}

/**
 * The rounding `chosen` as a record field: a bitset, base64, of the weights rounded to the other
 * neighbour than nearest (`nearest`); "" when none was.
 */
export function encodeRounding(chosen: Int8Array, nearest: Int8Array): string {
  const bits = new Uint8Array(Math.ceil(chosen.length / 8));
  let any = false;
  for (let i = 0; i < chosen.length; i++) {
    if (chosen[i] !== nearest[i]) {
      bits[i >> 3] = bits[i >> 3]! | (1 << (i & 7));
      any = true;
    }
  }
  if (!any) return '';
  let text = '';
  for (let i = 0; i < bits.length; i += 0x8000) text += String.fromCharCode(...bits.subarray(i, i + 0x8000));
  return btoa(text);
}

/** Bytes a rounding field must decode to for `count` weights. */
export const roundingBytes = (count: number) => Math.ceil(count / 8);

/** Decodes encodeRounding's field; undefined when it is not base64. */
export function decodeRounding(field: string): Uint8Array | undefined {
  if (field === '') return new Uint8Array(0);
  let text: string;
  try {
    text = atob(field);
  } catch {
    return undefined;
  }
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/**
 * Applies a decoded rounding field to nearest-rounded `nearest` of weights `w` (scales along `axis`):
 * each marked weight moves to its other neighbour on the grid. Returns the new int8 values, or a
 * message when a mark cannot apply to these weights (the record was made for other weights).
 */
export function applyRounding(w: Float32Array, nearest: Int8Array, dims: readonly number[], axis: number, scale: Float32Array, bits: Uint8Array): Int8Array | string {
  if (bits.length === 0) return nearest;
  if (bits.length !== roundingBytes(w.length)) return `holds ${bits.length * 8} bits for ${w.length} weights`;
  const q = Int8Array.from(nearest);
  const channel = channelOf(dims, axis, scale.length);
  for (let i = 0; i < w.length; i++) {
    if (!((bits[i >> 3]! >> (i & 7)) & 1)) continue;
    const s = scale[channel(i)]!;
    const lo = Math.floor(w[i]! / s);
    const alt = q[i] === lo ? lo + 1 : lo;
    if ((q[i] !== lo && q[i] !== lo + 1) || alt > 127 || alt < -127) return `marks weight ${i}, which has no other neighbour within int8`;
    q[i] = alt;
  }
  return q;
}
