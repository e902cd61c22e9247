/**
 * The raw values of the batches seen so far, kept as the batches' own arrays (copied, since the
 * runtime may reuse output buffers) and joined once when asked.
 */
export class RawValues {
  private parts: Float32Array[] = [];
  private total = 0;

  add(x: Float32Array): void {
    this.parts.push(x.slice());
    this.total += x.length;
  }

  get length(): number {
    return this.total;
  }

  get bytes(): number {
    return this.total * 4;
  }

  /** All values in one array; the parts are dropped so memory is not doubled. */
  joined(): Float32Array {
    if (this.parts.length === 1) return this.parts[0]!;
    const all = new Float32Array(this.total);
    let off = 0;
    for (const p of this.parts) {
      all.set(p, off);
      off += p.length;
    }
    this.parts = [all];
    return all;
  }
}
