/**
 * Bytes appended piece by piece into one buffer that is kept from one batch to the next: `take`
 * hands out what was appended and starts again. The buffer is made on the first append and
 * grows (doubling) only when a batch outgrows it, so a caller that takes every so often keeps
 * one buffer for its whole life instead of leaving one per batch to the garbage collector.
 */
export class ByteCollector {
  private buffer: Buffer | undefined;
  private length = 0;

  /** `capacity`: the size of the first buffer (pages of it never written are never resident). */
  constructor(private readonly capacity: number) {}

  append(bytes: Uint8Array): void {
    const need = this.length + bytes.length;
    if (!this.buffer || need > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.capacity, 2 * (this.buffer?.length ?? 0), need));
      this.buffer?.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.buffer.set(bytes, this.length);
    this.length = need;
  }

  /**
   * What was appended since the last take: a view of the kept buffer (`reuse`: valid until the
   * next append) or a copy of its own.
   */
  take(reuse: boolean): Buffer {
    const bytes = this.buffer ? this.buffer.subarray(0, this.length) : Buffer.alloc(0);
    this.length = 0;
    return reuse ? bytes : Buffer.from(bytes);
  }
}
