/**
 * The kernels' WebAssembly memory: a bump arena for the inputs and outputs of one call, a heap for resident arrays that live across calls, and how it grows.
 */
import { KernelArgumentError, KernelMemoryError } from '../errors.js';
import { type ResidentFloat32 } from './types.js';

/** Elements per streamed chunk: 64 KiB of float32, so input + output stay in L2 between passes. */
export const CHUNK = 1 << 14;
/** Chunk for the K-candidate error sum: 16 KiB stays in L1 while all K candidates read it. */
export const CANDIDATE_CHUNK = 1 << 12;
export const PAGE = 65536;
/**
 * Streaming buffers start at different offsets within a 4 KiB page (1088 * lane bytes). Large typed
 * arrays are page-aligned and chunks are multiples of 4 KiB apart, so without the skew the source and
 * destination of a copy or kernel share their low 12 address bits on every access, and x86 cores stall
 * on the false store-to-load dependency ("4K aliasing"): copying a chunk out ran ~7x slower (measured).
 */
export const CHUNK_SKEW = 1088;
/** Bytes reserved for the streaming scratch area; resident blocks start above it. */
export const SCRATCH_BYTES = 1 << 20;
/** Alignment (and granularity) of resident blocks: a cache line. */
export const BLOCK_ALIGN = 64;
export function growTo(memory: WebAssembly.Memory, end: number): void {
  const have = memory.buffer.byteLength;
  if (end <= have) return;
  const pages = Math.ceil((end - have) / PAGE);
  try {
    memory.grow(pages);
  } catch (cause) {
    throw new KernelMemoryError(`autoquant kernels: cannot grow WebAssembly memory to ${Math.ceil(end / 2 ** 20)} MiB`, { cause });
  }
}
/** Bump allocator over the module's memory plus views that follow `memory.grow`. */
export class Arena {
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
    /** End of the scratch region; allocations past it spill to `spillBase()` (above resident blocks). */
    private readonly limit: number,
    private readonly spillBase: () => number,
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
    const place = (top: number): number =>
      lane > 0 ? ((top + 4095) & ~4095) + CHUNK_SKEW * lane : (top + 15) & ~15;
    let ptr = place(this.top);
    if (ptr + bytes > this.limit && this.top <= this.limit) ptr = place(Math.max(this.spillBase(), this.limit));
    const end = ptr + bytes;
    growTo(this.memory, end);
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
/**
 * First-fit free list over the resident region [base, top): blocks are BLOCK_ALIGN-aligned, freed
 * blocks are coalesced with their neighbours and reused; `top` (the high-water mark) drops when the
 * last block is freed. Memory grows to `top` as needed and never shrinks.
 */
export class ResidentHeap {
  top: number;
  /** Free blocks [ptr, size], sorted by ptr, never adjacent (coalesced). */
  private readonly holes: Array<[number, number]> = [];

  constructor(
    private readonly memory: WebAssembly.Memory,
    readonly base: number,
  ) {
    this.top = base;
  }

  alloc(bytes: number): [number, number] {
    const size = Math.max(BLOCK_ALIGN, Math.ceil(bytes / BLOCK_ALIGN) * BLOCK_ALIGN);
    const holes = this.holes;
    for (let h = 0; h < holes.length; h++) {
      const [ptr, have] = holes[h]!;
      if (have < size) continue;
      if (have === size) holes.splice(h, 1);
      else holes[h] = [ptr + size, have - size];
      return [ptr, size];
    }
    // No hole fits: extend the last hole if it ends at the top, else take fresh space at the top.
    let ptr = this.top;
    const last = holes[holes.length - 1];
    if (last !== undefined && last[0] + last[1] === this.top) {
      ptr = last[0];
      holes.pop();
    }
    growTo(this.memory, ptr + size);
    this.top = ptr + size;
    return [ptr, size];
  }

  free(ptr: number, size: number): void {
    const holes = this.holes;
    let h = 0;
    while (h < holes.length && holes[h]![0] < ptr) h++;
    let start = ptr;
    let end = ptr + size;
    const prev = holes[h - 1];
    if (prev !== undefined && prev[0] + prev[1] === start) {
      start = prev[0];
      holes.splice(--h, 1);
    }
    const next = holes[h];
    if (next !== undefined && next[0] === end) {
      end = next[0] + next[1];
      holes.splice(h, 1);
    }
    if (end === this.top) this.top = start;
    else holes.splice(h, 0, [start, end - start]);
  }
}
export class WasmResident implements ResidentFloat32 {
  private freed = false;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly heap: ResidentHeap,
    private readonly ptr: number,
    private readonly size: number,
    readonly length: number,
  ) {}

  get array(): Float32Array {
    if (this.freed) throw new KernelArgumentError('allocate: this ResidentFloat32 has been freed');
    return new Float32Array(this.memory.buffer, this.ptr, this.length);
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (this.size > 0) this.heap.free(this.ptr, this.size);
  }
}
