/**
 * The SIMD WebAssembly kernels behind the `Kernels` contract.
 *
 * Memory: one module instance owns one linear memory. Every call resets a bump arena at the module's
 * heap base, allocates what it needs (per-channel parameters, one chunk of input and output), grows
 * the memory if that does not fit, and only then takes typed-array views (views are re-created
 * whenever `memory.buffer` has changed, i.e. after a grow — a stale view is never used).
 *
 * Streaming: inputs are never copied into Wasm memory whole. They are streamed through in chunks of
 * CHUNK elements (copy in, run the kernel, copy out), so the memory stays small however large the
 * tensor, and a chunk is still in the CPU cache when the kernel and the copy-out touch it. Reductions
 * carry their partial results (float64 sums, running min/max, counts) across chunks.
 *
 * Resident arrays (`allocate`): memory is split into a scratch region [heapBase, residentBase) used by
 * the streaming path and a resident region above it, managed by a first-fit free list (`ResidentHeap`)
 * whose blocks the streaming path never touches. When an input (or `out`) is a view of a resident
 * block (`x.buffer === memory.buffer` and inside the resident region), the kernel is handed its byte
 * offset directly: no copy in or out. Reductions still call the kernel in the same chunk sizes as the
 * streaming path, so their float64 sums (and so the results) are bit-identical to it. Byte offsets are
 * read before anything in the call may grow memory (a grow detaches every existing view). A call whose
 * scratch needs exceed the scratch region (huge per-channel parameters, histograms, candidate sets)
 * spills above the resident blocks' high-water mark, which no live block uses.
 *
 * Support: the module needs Wasm SIMD (Node >= 16.4, Deno, Chrome 91, Firefox 89, Safari 16.4).
 * Where `WebAssembly.validate` rejects it, `getKernels()` returns the scalar `referenceKernels`
 * (same results, slower); `backend` says which one you got.
 */
import { UnsupportedEnvironmentError } from '../errors.js';
import {
  QUANT_ARRAYS,
  QUANT_RANGES,
  checkCandidates,
  checkFloat32,
  checkHistogram,
  checkQuantType,
  checkMoments,
  checkRoundRows,
  checkSameLength,
  channelShape,
  fakeQuantRange,
  outputArray,
  quantParams,
  quantTypeOf,
  checkLength,
  type QuantParams,
} from './args.js';
import { cosineFromSums, referenceKernels, sqnrFromSums } from './reference.js';
import type {
  ChannelMinMax,
  DequantizeOptions,
  FakeQuantCandidates,
  FakeQuantizeOptions,
  Kernels,
  MinMax,
  QuantArray,
  QuantArrayOf,
  QuantizeOptions,
  QuantType,
  ResidentFloat32,
  ScaleArg,
  ZeroPointArg,
} from './types.js';
import { wasmBytes } from './wasm-binary.js';
import { CHUNK, CANDIDATE_CHUNK, PAGE, SCRATCH_BYTES, Arena, ResidentHeap, WasmResident } from './memory.js';


type Fn = (...args: number[]) => void;
interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  quantize_i8: Fn;
  quantize_u8: Fn;
  quantize_i16: Fn;
  quantize_pc_i8: Fn;
  quantize_pc_u8: Fn;
  quantize_pc_i16: Fn;
  dequantize_i8: Fn;
  dequantize_u8: Fn;
  dequantize_i16: Fn;
  dequantize_pc_i8: Fn;
  dequantize_pc_u8: Fn;
  dequantize_pc_i16: Fn;
  fake_quantize: Fn;
  fake_quantize_pc: Fn;
  min_max: Fn;
  min_max_pc: Fn;
  histogram: Fn;
  histogram_sums: Fn;
  fq_squared_error: Fn;
  dot3: Fn;
  energy_and_error: Fn;
  cross_moments: Fn;
  round_rows: Fn;
}
const SUFFIX: Record<QuantType, 'i8' | 'u8' | 'i16'> = { int8: 'i8', uint8: 'u8', int16: 'i16' };
type ElementArray = Float32Array | QuantArray;
/** The arena view with the element type of `a` (Float32Array, Int8Array, Uint8Array or Int16Array). */
function heapOf(m: Arena, a: ElementArray): ElementArray {
  return a instanceof Float32Array ? m.f32 : a instanceof Int8Array ? m.i8 : a instanceof Int16Array ? m.i16 : m.u8;
}
/** Where a chunk starting at global element `offset` begins: [channel, position inside the run]. */
function chunkStart(p: { channels: number; inner: number }, offset: number): [number, number] {
  return [Math.floor(offset / p.inner) % p.channels, offset % p.inner];
}
class WasmKernels implements Kernels {
  readonly backend = 'wasm-simd' as const;
  private readonly m: Arena;
  private readonly heap: ResidentHeap;

  constructor(private readonly ex: KernelExports) {
    const base = ex.heapBase();
    const residentBase = Math.ceil((base + SCRATCH_BYTES) / PAGE) * PAGE;
    this.heap = new ResidentHeap(ex.memory, residentBase);
    this.m = new Arena(ex.memory, base, residentBase, () => this.heap.top);
  }

  allocate(length: number): ResidentFloat32 {
    checkLength('allocate', length);
    if (length === 0) return new WasmResident(this.ex.memory, this.heap, this.heap.base, 0, 0);
    const [ptr, size] = this.heap.alloc(length * 4);
    new Float32Array(this.ex.memory.buffer, ptr, length).fill(0);
    return new WasmResident(this.ex.memory, this.heap, ptr, size, length);
  }

  /**
   * Byte offset of a typed array that is a view of a resident block, or -1 when it is an ordinary array
   * (or lies outside the resident region). Call before anything that may grow memory.
   */
  private residentPtr(a: ArrayBufferView): number {
    if (a.buffer !== this.ex.memory.buffer) return -1;
    const off = a.byteOffset;
    return off >= this.heap.base && off + a.byteLength <= this.heap.top ? off : -1;
  }

  /** `out` itself, or a fresh view of the same resident bytes when the call grew the memory. */
  private liveView<A extends Float32Array | QuantArray>(out: A, ptr: number, n: number): A {
    if (ptr < 0 || out.buffer === this.ex.memory.buffer) return out;
    const ctor = out.constructor as { new (b: ArrayBufferLike, off: number, n: number): A };
    return new ctor(this.ex.memory.buffer, ptr, n);
  }

  /** Copies per-channel parameters in; returns their pointers. Allocate before the chunk buffers. */
  private channelParams(p: QuantParams & { kind: 'channel' }): [number, number] {
    const sp = this.m.alloc(p.channels * 4);
    const zp = this.m.alloc(p.channels * 4);
    const v = this.m.views();
    v.f32.set(p.scales, sp >>> 2);
    v.i32.set(p.zeroPoints, zp >>> 2);
    return [sp, zp];
  }

  /**
   * Runs an element-wise kernel x -> out. Resident arguments are passed by pointer (both resident: one
   * call over the whole length); the others are streamed through scratch chunks. `setup` runs after the
   * arena reset, before the chunk buffers are allocated (it may allocate parameters); `kernel` gets the
   * byte addresses of a chunk of `len` elements starting at element `off`. Returns `out` (a fresh view of
   * it if it is resident and the memory grew).
   */
  private elementwise<O extends ElementArray>(
    x: ElementArray,
    out: O,
    setup: () => void,
    kernel: (xa: number, oa: number, len: number, off: number) => void,
  ): O {
    const n = x.length;
    if (n === 0) return out;
    // Pointers first: an allocation below may grow memory, which detaches resident views.
    const xr = this.residentPtr(x);
    const or = this.residentPtr(out);
    const xBytes = x.BYTES_PER_ELEMENT;
    const oBytes = out.BYTES_PER_ELEMENT;
    const m = this.m;
    m.reset();
    setup();
    const chunk = xr >= 0 && or >= 0 ? n : Math.min(n, CHUNK);
    const xp = xr >= 0 ? -1 : m.alloc(chunk * xBytes, 1);
    const op = or >= 0 ? -1 : m.alloc(chunk * oBytes, 2);
    const v = m.views();
    const xHeap = heapOf(v, x);
    const oHeap = heapOf(v, out);
    const x0 = xp / xBytes;
    const o0 = op / oBytes;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      if (xr < 0) xHeap.set(x.subarray(off, off + len), x0);
      kernel(xr >= 0 ? xr + off * xBytes : xp, or >= 0 ? or + off * oBytes : op, len, off);
      if (or < 0) out.set(oHeap.subarray(o0, o0 + len), off);
    }
    return this.liveView(out, or, n);
  }

  /**
   * `elementwise` for the quantize family: per-tensor kernels get the scalar parameters, per-channel
   * kernels the channel at which the chunk starts and the addresses of the parameter tables.
   */
  private perTensorOrChannel<O extends ElementArray>(
    x: ElementArray,
    out: O,
    p: QuantParams,
    tensor: (t: QuantParams & { kind: 'tensor' }, xa: number, oa: number, len: number) => void,
    channel: (c: QuantParams & { kind: 'channel' }, xa: number, oa: number, len: number, c0: number, i0: number, scales: number, zeroPoints: number) => void,
  ): O {
    let tables: [number, number] | undefined;
    return this.elementwise(
      x,
      out,
      () => {
        if (p.kind === 'channel') tables = this.channelParams(p);
      },
      (xa, oa, len, off) => {
        if (p.kind === 'tensor') return tensor(p, xa, oa, len);
        const [c0, i0] = chunkStart(p, off);
        channel(p, xa, oa, len, c0, i0, tables![0], tables![1]);
      },
    );
  }

  quantize<T extends QuantType>(
    x: Float32Array,
    scale: ScaleArg,
    zeroPoint: ZeroPointArg,
    options: QuantizeOptions<T>,
  ): QuantArrayOf<T> {
    const fn = 'quantize';
    checkFloat32(fn, 'x', x);
    const type = checkQuantType(fn, options?.type);
    const [qmin, qmax] = QUANT_RANGES[type];
    const p = quantParams(fn, x.length, scale, zeroPoint, options, qmin, qmax);
    const out = outputArray(fn, options.out, QUANT_ARRAYS[type] as { new (n: number): QuantArray }, x.length);
    const kernelPT = this.ex[`quantize_${SUFFIX[type]}`];
    const kernelPC = this.ex[`quantize_pc_${SUFFIX[type]}`];
    return this.perTensorOrChannel(
      x,
      out,
      p,
      (t, xa, oa, len) => kernelPT(xa, oa, len, t.scale, t.zeroPoint, qmin, qmax),
      (c, xa, oa, len, c0, i0, sp, zp) => kernelPC(xa, oa, len, c.channels, c.inner, c0, i0, sp, zp, qmin, qmax),
    ) as QuantArrayOf<T>;
  }

  dequantize(q: QuantArray, scale: ScaleArg, zeroPoint: ZeroPointArg, options?: DequantizeOptions): Float32Array {
    const fn = 'dequantize';
    const type = quantTypeOf(fn, q);
    const [qmin, qmax] = QUANT_RANGES[type];
    const p = quantParams(fn, q.length, scale, zeroPoint, options, qmin, qmax);
    const out = outputArray(fn, options?.out, Float32Array, q.length);
    const kernelPT = this.ex[`dequantize_${SUFFIX[type]}`];
    const kernelPC = this.ex[`dequantize_pc_${SUFFIX[type]}`];
    return this.perTensorOrChannel(
      q,
      out,
      p,
      (t, qa, oa, len) => kernelPT(qa, oa, len, t.scale, t.zeroPoint),
      (c, qa, oa, len, c0, i0, sp, zp) => kernelPC(qa, oa, len, c.channels, c.inner, c0, i0, sp, zp),
    );
  }

  fakeQuantize(x: Float32Array, scale: ScaleArg, zeroPoint: ZeroPointArg, options: FakeQuantizeOptions): Float32Array {
    const fn = 'fakeQuantize';
    checkFloat32(fn, 'x', x);
    const type = checkQuantType(fn, options?.type);
    const [qmin, qmax] = fakeQuantRange(fn, type, options.qmin, options.qmax);
    const p = quantParams(fn, x.length, scale, zeroPoint, options, qmin, qmax);
    const out = outputArray(fn, options.out, Float32Array, x.length);
    const { fake_quantize, fake_quantize_pc } = this.ex;
    return this.perTensorOrChannel(
      x,
      out,
      p,
      (t, xa, oa, len) => fake_quantize(xa, oa, len, t.scale, t.zeroPoint, qmin, qmax),
      (c, xa, oa, len, c0, i0, sp, zp) => fake_quantize_pc(xa, oa, len, c.channels, c.inner, c0, i0, sp, zp, qmin, qmax),
    );
  }

  minMax(x: Float32Array): MinMax {
    checkFloat32('minMax', 'x', x);
    const n = x.length;
    if (n === 0) return { min: Infinity, max: -Infinity };
    const xr = this.residentPtr(x);
    const m = this.m;
    m.reset();
    const rp = m.alloc(8);
    const chunk = Math.min(n, CHUNK);
    const xp = xr >= 0 ? -1 : m.alloc(chunk * 4, 1);
    const v = m.views();
    v.f32[rp >>> 2] = Infinity;
    v.f32[(rp >>> 2) + 1] = -Infinity;
    const { min_max } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      if (xr < 0) v.f32.set(x.subarray(off, off + len), xp >>> 2);
      min_max(xr >= 0 ? xr + off * 4 : xp, len, rp);
    }
    return { min: v.f32[rp >>> 2]!, max: v.f32[(rp >>> 2) + 1]! };
  }

  minMaxPerChannel(x: Float32Array, shape: readonly number[], axis: number): ChannelMinMax {
    return this.channelMinMax('minMaxPerChannel', x, shape, axis);
  }

  absMaxPerChannel(x: Float32Array, shape: readonly number[], axis: number): Float32Array {
    const { min, max } = this.channelMinMax('absMaxPerChannel', x, shape, axis);
    const out = new Float32Array(min.length);
    for (let c = 0; c < out.length; c++) {
      const lo = min[c]!;
      const hi = max[c]!;
      // lo > hi only for an empty or all-NaN channel (+Infinity / -Infinity): 0
      out[c] = lo > hi ? 0 : Math.max(-lo, hi);
    }
    return out;
  }

  private channelMinMax(fn: string, x: Float32Array, shape: readonly number[], axis: number): ChannelMinMax {
    checkFloat32(fn, 'x', x);
    const p = channelShape(fn, x.length, shape, axis);
    const C = p.channels;
    const n = x.length;
    if (n === 0) {
      return { min: new Float32Array(C).fill(Infinity), max: new Float32Array(C).fill(-Infinity) };
    }
    const xr = this.residentPtr(x);
    const m = this.m;
    m.reset();
    const minp = m.alloc(C * 4);
    const maxp = m.alloc(C * 4);
    const chunk = Math.min(n, CHUNK);
    const xp = xr >= 0 ? -1 : m.alloc(chunk * 4, 1);
    const v = m.views();
    v.f32.fill(Infinity, minp >>> 2, (minp >>> 2) + C);
    v.f32.fill(-Infinity, maxp >>> 2, (maxp >>> 2) + C);
    const { min_max_pc } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      if (xr < 0) v.f32.set(x.subarray(off, off + len), xp >>> 2);
      const [c0, i0] = chunkStart(p, off);
      min_max_pc(xr >= 0 ? xr + off * 4 : xp, len, C, p.inner, c0, i0, minp, maxp);
    }
    return {
      min: v.f32.slice(minp >>> 2, (minp >>> 2) + C),
      max: v.f32.slice(maxp >>> 2, (maxp >>> 2) + C),
    };
  }

  histogram(x: Float32Array, lo: number, hi: number, counts: Float64Array | Uint32Array, sums?: Float64Array): void {
    const fn = 'histogram';
    checkFloat32(fn, 'x', x);
    const r = checkHistogram(fn, lo, hi, counts, sums);
    const n = x.length;
    if (n === 0) return;
    const xr = this.residentPtr(x);
    const m = this.m;
    m.reset();
    const cp = m.alloc((r.bins + 1) * 4); // + 1: the NaN slot
    const sp = sums ? m.alloc((r.bins + 1) * 8) : -1;
    const chunk = Math.min(n, CHUNK);
    const xp = xr >= 0 ? -1 : m.alloc(chunk * 4, 1);
    let v = m.views();
    const c0 = cp >>> 2;
    v.u32.fill(0, c0, c0 + r.bins + 1);
    if (sums) v.f64.fill(0, sp >>> 3, (sp >>> 3) + r.bins + 1);
    const { histogram, histogram_sums } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      if (xr < 0) v.f32.set(x.subarray(off, off + len), xp >>> 2);
      const at = xr >= 0 ? xr + off * 4 : xp;
      if (sums) histogram_sums(at, len, r.lo, r.k, r.bins, cp, sp);
      else histogram(at, len, r.lo, r.k, r.bins, cp);
    }
    v = m.views();
    const u32 = v.u32;
    for (let b = 0; b < r.bins; b++) counts[b]! += u32[c0 + b]!;
    if (sums) for (let b = 0; b < r.bins; b++) sums[b]! += v.f64[(sp >>> 3) + b]!;
  }

  fakeQuantSquaredError(x: Float32Array, candidates: FakeQuantCandidates, out?: Float64Array): Float64Array {
    const fn = 'fakeQuantSquaredError';
    checkFloat32(fn, 'x', x);
    const c = checkCandidates(fn, candidates);
    const K = c.scales.length;
    const sums = outputArray(fn, out, Float64Array, K);
    sums.fill(0);
    const n = x.length;
    if (n === 0 || K === 0) return sums;
    const xr = this.residentPtr(x);
    const m = this.m;
    m.reset();
    const sp = m.alloc(K * 4);
    const zp = m.alloc(K * 4);
    const rp = m.alloc(K * 8);
    const chunk = Math.min(n, CANDIDATE_CHUNK);
    const xp = xr >= 0 ? -1 : m.alloc(chunk * 4, 1);
    const v = m.views();
    v.f32.set(c.scales, sp >>> 2);
    v.i32.set(c.zeroPoints, zp >>> 2);
    v.f64.fill(0, rp >>> 3, (rp >>> 3) + K);
    const { fq_squared_error } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      if (xr < 0) v.f32.set(x.subarray(off, off + len), xp >>> 2);
      fq_squared_error(xr >= 0 ? xr + off * 4 : xp, len, sp, zp, K, c.qmin, c.qmax, rp);
    }
    sums.set(v.f64.subarray(rp >>> 3, (rp >>> 3) + K));
    return sums;
  }

  /** Streams a and b through `kernel`, which adds `count` float64 sums at the result pointer. */
  private pairSums(a: Float32Array, b: Float32Array, kernel: Fn, count: number): Float64Array {
    const sums = new Float64Array(count);
    const n = a.length;
    if (n === 0) return sums;
    const ar = this.residentPtr(a);
    const br = this.residentPtr(b);
    const m = this.m;
    m.reset();
    const rp = m.alloc(count * 8);
    // Resident inputs are read in place, but in the same chunks as streamed ones: same float64 sums.
    const chunk = Math.min(n, CHUNK);
    const ap = ar >= 0 ? -1 : m.alloc(chunk * 4, 1);
    const bp = br >= 0 ? -1 : m.alloc(chunk * 4, 2);
    const v = m.views();
    v.f64.fill(0, rp >>> 3, (rp >>> 3) + count);
    const f32 = v.f32;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      if (ar < 0) f32.set(a.subarray(off, off + len), ap >>> 2);
      if (br < 0) f32.set(b.subarray(off, off + len), bp >>> 2);
      kernel(ar >= 0 ? ar + off * 4 : ap, br >= 0 ? br + off * 4 : bp, len, rp);
    }
    sums.set(v.f64.subarray(rp >>> 3, (rp >>> 3) + count));
    return sums;
  }

  crossMoments(a: Float32Array, b: Float32Array, rows: number, d: number, hh: Float64Array, gg: Float64Array): void {
    checkMoments(a, b, rows, d, hh, gg);
    if (rows === 0 || d === 0) return;
    const m = this.m;
    m.reset();
    const ap = m.alloc(a.length * 4);
    const bp = m.alloc(b.length * 4);
    const hp = m.alloc(d * d * 8);
    const gp = m.alloc(d * d * 8);
    const v = m.views();
    v.f32.set(a, ap >>> 2);
    v.f32.set(b, bp >>> 2);
    v.f64.set(hh, hp >>> 3);
    v.f64.set(gg, gp >>> 3);
    this.ex.cross_moments(ap, bp, rows, d, hp, gp);
    const w = m.views();
    hh.set(w.f64.subarray(hp >>> 3, (hp >>> 3) + d * d));
    gg.set(w.f64.subarray(gp >>> 3, (gp >>> 3) + d * d));
  }

  roundRows(h: Float64Array, g: Float64Array, w: Float32Array, scale: Float64Array, q: Int8Array, d: number, sweeps: number): Float64Array {
    checkRoundRows(h, g, w, scale, q, d, sweeps);
    const rows = scale.length;
    const out = new Float64Array(2 * rows);
    if (rows === 0) return out;
    const m = this.m;
    m.reset();
    const hp = m.alloc(d * d * 8);
    const gp = m.alloc(d * d * 8);
    const wp = m.alloc(w.length * 4);
    const sp = m.alloc(rows * 8);
    const qp = m.alloc(q.length);
    const scratch = m.alloc(3 * d * 8);
    const op = m.alloc(rows * 16);
    const v = m.views();
    v.f64.set(h, hp >>> 3);
    v.f64.set(g, gp >>> 3);
    v.f32.set(w, wp >>> 2);
    v.f64.set(scale, sp >>> 3);
    v.i8.set(q, qp);
    this.ex.round_rows(hp, gp, wp, sp, qp, rows, d, sweeps, scratch, scratch + d * 8, scratch + 2 * d * 8, op);
    const r = m.views();
    q.set(r.i8.subarray(qp, qp + q.length));
    out.set(r.f64.subarray(op >>> 3, (op >>> 3) + 2 * rows));
    return out;
  }

  cosine(a: Float32Array, b: Float32Array): number {
    checkSameLength('cosine', a, b);
    const s = this.pairSums(a, b, this.ex.dot3, 3);
    return cosineFromSums(s[0]!, s[1]!, s[2]!);
  }

  mse(a: Float32Array, b: Float32Array): number {
    checkSameLength('mse', a, b);
    if (a.length === 0) return 0;
    const s = this.pairSums(a, b, this.ex.energy_and_error, 2);
    return s[1]! / a.length;
  }

  sqnr(a: Float32Array, b: Float32Array): number {
    checkSameLength('sqnr', a, b);
    const s = this.pairSums(a, b, this.ex.energy_and_error, 2);
    return sqnrFromSums(s[0]!, s[1]!);
  }
}

let instance: Kernels | undefined;
let pending: Promise<Kernels> | undefined;
function simdSupported(bytes: Uint8Array<ArrayBuffer>): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(bytes);
}
function fromInstance(inst: WebAssembly.Instance): Kernels {
  return new WasmKernels(inst.exports as unknown as KernelExports);
}
/**
 * The kernels: compiled and instantiated once (concurrent callers share the same promise and get the
 * same object). Falls back to `referenceKernels` where Wasm SIMD is unavailable (see `backend`).
 */
export function getKernels(): Promise<Kernels> {
  if (instance) return Promise.resolve(instance);
  pending ??= (async () => {
    const bytes = wasmBytes();
    if (!simdSupported(bytes)) return (instance = referenceKernels);
    const { instance: inst } = await WebAssembly.instantiate(bytes, {});
    return (instance = fromInstance(inst));
  })().catch((err: unknown) => {
    pending = undefined; // let a later call retry
    throw err;
  });
  return pending;
}
/**
 * The kernels without awaiting. Returns the instance once `getKernels()` has resolved; before that it
 * compiles synchronously, which Node, Deno and workers allow but a browser's main thread may refuse for
 * modules over 4 KB — there, await `getKernels()` once first.
 */
export function getKernelsSync(): Kernels {
  if (instance) return instance;
  const bytes = wasmBytes();
  if (!simdSupported(bytes)) return (instance = referenceKernels);
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    return (instance = fromInstance(inst));
  } catch (cause) {
    const err = new UnsupportedEnvironmentError(
      `synchronous WebAssembly compilation is not allowed here: await getKernels() once before getKernelsSync() (${String(cause)})`,
    );
    throw err;
  }
}
