/**
 * The raw values of the batches seen so far, in one buffer sized on the first batch for the number
 * of batches expected, so joining them never needs a second full-size copy. Batches of varying
 * size grow the buffer by half its size at a time.
 */
export class RawValues {
  private buffer = new Float32Array(0);
  private total = 0;

  constructor(private readonly expectedBatches = 1) {}

  add(x: Float32Array): void {
    const need = this.total + x.length;
    if (need > this.buffer.length) {
      const capacity = this.total === 0 ? x.length * Math.max(1, this.expectedBatches) : Math.max(need, Math.ceil(this.buffer.length * 1.5));
      const grown = new Float32Array(capacity);
      grown.set(this.buffer.subarray(0, this.total));
      this.buffer = grown;
    }
    // Copied: the runtime may reuse its output buffers for the next batch.
    this.buffer.set(x, this.total);
    this.total = need;
  }

  get length(): number {
    return this.total;
  }

  /** Bytes held (the buffer, including room reserved for batches still to come). */
  get bytes(): number {
    return this.buffer.byteLength;
  }

  /** All values seen, as a view (no copy). */
  joined(): Float32Array {
    return this.buffer.subarray(0, this.total);
  }
}
