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
  checkSameLength,
  channelShape,
  fakeQuantRange,
  outputArray,
  quantParams,
  quantTypeOf,
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
  ScaleArg,
  ZeroPointArg,
} from './types.js';
import { wasmBytes } from './wasm-binary.js';

/** Elements per streamed chunk: 64 KiB of float32, so input + output stay in L2 between passes. */
const CHUNK = 1 << 14;
/** Chunk for the K-candidate error sum: 16 KiB stays in L1 while all K candidates read it. */
const CANDIDATE_CHUNK = 1 << 12;
const PAGE = 65536;
/**
 * Streaming buffers start at different offsets within a 4 KiB page (1088 * lane bytes). Large typed
 * arrays are page-aligned and chunks are multiples of 4 KiB apart, so without the skew the source and
 * destination of a copy or kernel share their low 12 address bits on every access, and x86 cores stall
 * on the false store-to-load dependency ("4K aliasing"): copying a chunk out ran ~7x slower (measured).
 */
const CHUNK_SKEW = 1088;

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
  fq_squared_error: Fn;
  dot3: Fn;
  energy_and_error: Fn;
}

const SUFFIX: Record<QuantType, 'i8' | 'u8' | 'i16'> = { int8: 'i8', uint8: 'u8', int16: 'i16' };
const Q_BYTES: Record<QuantType, number> = { int8: 1, uint8: 1, int16: 2 };

/** Bump allocator over the module's memory plus views that follow `memory.grow`. */
class Arena {
  private top: number;
  private buffer: ArrayBuffer | undefined;
  u8!: Uint8Array;
  i8!: Int8Array;
  i16!: Int16Array;
  i32!: Int32Array;
  u32!: Uint32Array;
  f32!: Float32Array;
  f64!: Float64Array;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly base: number,
  ) {
    this.top = base;
    this.refresh();
  }

  /** Starts a call: everything allocated by the previous call is free again. */
  reset(): void {
    this.top = this.base;
  }

  /**
   * 16-byte aligned block of `bytes`; grows the memory when needed. Call `views()` before use.
   * `lane` > 0 places a streaming buffer at a distinct offset inside a 4 KiB page (see CHUNK_SKEW).
   */
  alloc(bytes: number, lane = 0): number {
    const ptr = lane > 0 ? ((this.top + 4095) & ~4095) + CHUNK_SKEW * lane : (this.top + 15) & ~15;
    const end = ptr + bytes;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch (cause) {
        throw new RangeError(
          `autoquant kernels: cannot grow WebAssembly memory to ${Math.ceil(end / 2 ** 20)} MiB`,
          { cause },
        );
      }
    }
    this.top = end;
    return ptr;
  }

  /** Re-creates the typed-array views if the memory was grown (the old buffer is then detached). */
  views(): this {
    if (this.buffer !== this.memory.buffer) this.refresh();
    return this;
  }

  private refresh(): void {
    const b = this.memory.buffer;
    this.buffer = b;
    this.u8 = new Uint8Array(b);
    this.i8 = new Int8Array(b);
    this.i16 = new Int16Array(b);
    this.i32 = new Int32Array(b);
    this.u32 = new Uint32Array(b);
    this.f32 = new Float32Array(b);
    this.f64 = new Float64Array(b);
  }
}

function heapView(m: Arena, type: QuantType): QuantArray {
  return type === 'int8' ? m.i8 : type === 'uint8' ? m.u8 : m.i16;
}

/** Where a chunk starting at global element `offset` begins: [channel, position inside the run]. */
function chunkStart(p: { channels: number; inner: number }, offset: number): [number, number] {
  return [Math.floor(offset / p.inner) % p.channels, offset % p.inner];
}

class WasmKernels implements Kernels {
  readonly backend = 'wasm-simd' as const;
  private readonly m: Arena;

  constructor(private readonly ex: KernelExports) {
    this.m = new Arena(ex.memory, ex.heapBase());
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
    const n = x.length;
    if (n === 0) return out as QuantArrayOf<T>;
    const m = this.m;
    m.reset();
    const params = p.kind === 'channel' ? this.channelParams(p) : undefined;
    const chunk = Math.min(n, CHUNK);
    const bytes = Q_BYTES[type];
    const xp = m.alloc(chunk * 4, 1);
    const op = m.alloc(chunk * bytes, 2);
    const v = m.views();
    const heap = heapView(v, type);
    const o0 = op / bytes;
    const kernelPT = this.ex[`quantize_${SUFFIX[type]}`];
    const kernelPC = this.ex[`quantize_pc_${SUFFIX[type]}`];
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      v.f32.set(x.subarray(off, off + len), xp >>> 2);
      if (p.kind === 'tensor') {
        kernelPT(xp, op, len, p.scale, p.zeroPoint, qmin, qmax);
      } else {
        const [c0, i0] = chunkStart(p, off);
        kernelPC(xp, op, len, p.channels, p.inner, c0, i0, params![0], params![1], qmin, qmax);
      }
      out.set(heap.subarray(o0, o0 + len), off);
    }
    return out as QuantArrayOf<T>;
  }

  dequantize(q: QuantArray, scale: ScaleArg, zeroPoint: ZeroPointArg, options?: DequantizeOptions): Float32Array {
    const fn = 'dequantize';
    const type = quantTypeOf(fn, q);
    const [qmin, qmax] = QUANT_RANGES[type];
    const p = quantParams(fn, q.length, scale, zeroPoint, options, qmin, qmax);
    const out = outputArray(fn, options?.out, Float32Array, q.length);
    const n = q.length;
    if (n === 0) return out;
    const m = this.m;
    m.reset();
    const params = p.kind === 'channel' ? this.channelParams(p) : undefined;
    const chunk = Math.min(n, CHUNK);
    const bytes = Q_BYTES[type];
    const qp = m.alloc(chunk * bytes, 1);
    const op = m.alloc(chunk * 4, 2);
    const v = m.views();
    const heap = heapView(v, type);
    const q0 = qp / bytes;
    const o0 = op >>> 2;
    const kernelPT = this.ex[`dequantize_${SUFFIX[type]}`];
    const kernelPC = this.ex[`dequantize_pc_${SUFFIX[type]}`];
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      heap.set(q.subarray(off, off + len), q0);
      if (p.kind === 'tensor') {
        kernelPT(qp, op, len, p.scale, p.zeroPoint);
      } else {
        const [c0, i0] = chunkStart(p, off);
        kernelPC(qp, op, len, p.channels, p.inner, c0, i0, params![0], params![1]);
      }
      out.set(v.f32.subarray(o0, o0 + len), off);
    }
    return out;
  }

  fakeQuantize(x: Float32Array, scale: ScaleArg, zeroPoint: ZeroPointArg, options: FakeQuantizeOptions): Float32Array {
    const fn = 'fakeQuantize';
    checkFloat32(fn, 'x', x);
    const type = checkQuantType(fn, options?.type);
    const [qmin, qmax] = fakeQuantRange(fn, type, options.qmin, options.qmax);
    const p = quantParams(fn, x.length, scale, zeroPoint, options, qmin, qmax);
    const out = outputArray(fn, options.out, Float32Array, x.length);
    const n = x.length;
    if (n === 0) return out;
    const m = this.m;
    m.reset();
    const params = p.kind === 'channel' ? this.channelParams(p) : undefined;
    const chunk = Math.min(n, CHUNK);
    const xp = m.alloc(chunk * 4, 1);
    const op = m.alloc(chunk * 4, 2);
    const v = m.views();
    const x0 = xp >>> 2;
    const o0 = op >>> 2;
    const f32 = v.f32;
    const { fake_quantize, fake_quantize_pc } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      f32.set(x.subarray(off, off + len), x0);
      if (p.kind === 'tensor') {
        fake_quantize(xp, op, len, p.scale, p.zeroPoint, qmin, qmax);
      } else {
        const [c0, i0] = chunkStart(p, off);
        fake_quantize_pc(xp, op, len, p.channels, p.inner, c0, i0, params![0], params![1], qmin, qmax);
      }
      out.set(f32.subarray(o0, o0 + len), off);
    }
    return out;
  }

  minMax(x: Float32Array): MinMax {
    checkFloat32('minMax', 'x', x);
    const n = x.length;
    if (n === 0) return { min: Infinity, max: -Infinity };
    const m = this.m;
    m.reset();
    const rp = m.alloc(8);
    const chunk = Math.min(n, CHUNK);
    const xp = m.alloc(chunk * 4, 1);
    const v = m.views();
    v.f32[rp >>> 2] = Infinity;
    v.f32[(rp >>> 2) + 1] = -Infinity;
    const { min_max } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      v.f32.set(x.subarray(off, off + len), xp >>> 2);
      min_max(xp, len, rp);
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
    const m = this.m;
    m.reset();
    const minp = m.alloc(C * 4);
    const maxp = m.alloc(C * 4);
    const chunk = Math.min(n, CHUNK);
    const xp = m.alloc(chunk * 4, 1);
    const v = m.views();
    v.f32.fill(Infinity, minp >>> 2, (minp >>> 2) + C);
    v.f32.fill(-Infinity, maxp >>> 2, (maxp >>> 2) + C);
    const { min_max_pc } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      v.f32.set(x.subarray(off, off + len), xp >>> 2);
      const [c0, i0] = chunkStart(p, off);
      min_max_pc(xp, len, C, p.inner, c0, i0, minp, maxp);
    }
    return {
      min: v.f32.slice(minp >>> 2, (minp >>> 2) + C),
      max: v.f32.slice(maxp >>> 2, (maxp >>> 2) + C),
    };
  }

  histogram(x: Float32Array, lo: number, hi: number, counts: Float64Array | Uint32Array): void {
    const fn = 'histogram';
    checkFloat32(fn, 'x', x);
    const r = checkHistogram(fn, lo, hi, counts);
    const n = x.length;
    if (n === 0) return;
    const m = this.m;
    m.reset();
    const cp = m.alloc((r.bins + 1) * 4); // + 1: the NaN slot
    const chunk = Math.min(n, CHUNK);
    const xp = m.alloc(chunk * 4, 1);
    const v = m.views();
    const c0 = cp >>> 2;
    v.u32.fill(0, c0, c0 + r.bins + 1);
    const { histogram } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      v.f32.set(x.subarray(off, off + len), xp >>> 2);
      histogram(xp, len, r.lo, r.k, r.bins, cp);
    }
    const u32 = v.u32;
    for (let b = 0; b < r.bins; b++) counts[b]! += u32[c0 + b]!;
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
    const m = this.m;
    m.reset();
    const sp = m.alloc(K * 4);
    const zp = m.alloc(K * 4);
    const rp = m.alloc(K * 8);
    const chunk = Math.min(n, CANDIDATE_CHUNK);
    const xp = m.alloc(chunk * 4, 1);
    const v = m.views();
    v.f32.set(c.scales, sp >>> 2);
    v.i32.set(c.zeroPoints, zp >>> 2);
    v.f64.fill(0, rp >>> 3, (rp >>> 3) + K);
    const { fq_squared_error } = this.ex;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      v.f32.set(x.subarray(off, off + len), xp >>> 2);
      fq_squared_error(xp, len, sp, zp, K, c.qmin, c.qmax, rp);
    }
    sums.set(v.f64.subarray(rp >>> 3, (rp >>> 3) + K));
    return sums;
  }

  /** Streams a and b through `kernel`, which adds `count` float64 sums at the result pointer. */
  private pairSums(a: Float32Array, b: Float32Array, kernel: Fn, count: number): Float64Array {
    const sums = new Float64Array(count);
    const n = a.length;
    if (n === 0) return sums;
    const m = this.m;
    m.reset();
    const rp = m.alloc(count * 8);
    const chunk = Math.min(n, CHUNK);
    const ap = m.alloc(chunk * 4, 1);
    const bp = m.alloc(chunk * 4, 2);
    const v = m.views();
    v.f64.fill(0, rp >>> 3, (rp >>> 3) + count);
    const f32 = v.f32;
    for (let off = 0; off < n; off += chunk) {
      const len = Math.min(chunk, n - off);
      f32.set(a.subarray(off, off + len), ap >>> 2);
      f32.set(b.subarray(off, off + len), bp >>> 2);
      kernel(ap, bp, len, rp);
    }
    sums.set(v.f64.subarray(rp >>> 3, (rp >>> 3) + count));
    return sums;
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
