import { BrotliFormatError } from './brotli-error';

/** Where a bit reader gets its bytes: fills `into` from the start, returns how many (0 at the end). */
export type ByteSource = (into: Uint8Array) => number;

/**
 * Reads a brotli stream's bits least significant first (RFC 7932 §2) through one fixed input
 * buffer. Past the end of the input it reads zero bits, but consuming any of them is an error:
 * the stream ended early.
 */
export class BitReader {
  private readonly input: Uint8Array;
  private length = 0;
  private next = 0;
  /** Up to 32 bits not yet consumed, lowest first. */
  private value = 0;
  private bits = 0;
  /** Zero bytes added past the end of the input. */
  private padding = 0;
  private ended = false;

  constructor(
    private readonly source: ByteSource,
    bufferSize = 1 << 14,
  ) {
    this.input = new Uint8Array(bufferSize);
  }

  private nextByte(): number {
    if (this.next === this.length) {
      this.next = 0;
      this.length = this.ended ? 0 : this.source(this.input);
      if (this.length === 0) {
        this.ended = true;
        this.padding++;
        return 0;
      }
    }
    return this.input[this.next++]!;
  }

  /** Makes at least 25 bits available. */
  private fill(): void {
    while (this.bits <= 24) {
      this.value = (this.value | (this.nextByte() << this.bits)) >>> 0;
      this.bits += 8;
    }
  }

  private checkEnd(): void {
    if (this.bits < this.padding * 8) throw new BrotliFormatError('stream ends early');
  }

  /** `n` bits (0–24) as a number. */
  read(n: number): number {
    if (this.bits < n) this.fill();
    const v = this.value & ((1 << n) - 1);
    this.value >>>= n;
    this.bits -= n;
    if (this.padding !== 0) this.checkEnd();
    return v;
  }

  /**
   * One symbol of the prefix code whose two-level table (`huffman.ts`) starts at `at`: a method
   * of the reader, not a function of the table, so the hottest step of decoding is one call.
   */
  symbol(table: Int32Array, at: number): number {
    if (this.bits < 15) this.fill();
    const bits = this.value;
    let entry = table[at + (bits & 0xff)]!;
    let length = entry >> 16;
    if (length > 8) {
      entry = table[at + (bits & 0xff) + (entry & 0xffff) + ((bits & ((1 << length) - 1)) >>> 8)]!;
      length = (entry >> 16) + 8;
    }
    this.value >>>= length;
    this.bits -= length;
    if (this.padding !== 0) this.checkEnd();
    return entry & 0xffff;
  }

  /** The next 15 bits without consuming them (for prefix code lookups). */
  peek15(): number {
    if (this.bits < 15) this.fill();
    return this.value & 0x7fff;
  }

  /** Consumes `n` bits already peeked. */
  skip(n: number): void {
    this.value >>>= n;
    this.bits -= n;
    if (this.padding !== 0) this.checkEnd();
  }

  /** Skips to the next byte boundary; the skipped bits must be zero (RFC 7932 §9.2, §9.3). */
  alignToByte(): void {
    const n = this.bits & 7;
    if (n !== 0 && this.read(n) !== 0) throw new BrotliFormatError('non-zero padding bits');
  }

  /** After `alignToByte`: the next byte, for uncompressed and metadata blocks. */
  readByte(): number {
    return this.read(8);
  }

  /**
   * After the last meta-block: the padding to the byte boundary must be zero and no input
   * may follow the stream.
   */
  expectEnd(): void {
    this.alignToByte();
    if (this.bits - this.padding * 8 > 0 || this.next < this.length) {
      throw new BrotliFormatError('bytes follow the end of the stream');
    }
    if (!this.ended && this.source(this.input) !== 0)
      throw new BrotliFormatError('bytes follow the end of the stream');
  }
}
