import { closeSync, openSync, readSync } from 'node:fs';

import { BrotliDecoder } from './brotli/brotli-decoder';
import { BrotliFormatError } from './brotli/brotli-error';
import { DeltaCorruptError } from './errors';

const EMPTY: Buffer = Buffer.alloc(0);
/** Compressed bytes read from the delta file at a time, per section. */
const INPUT_CHUNK = 1 << 14;

/**
 * Pulls the decompressed bytes of one section of a delta file on demand, with Ferry's own
 * brotli decoder (`brotli/`) on the calling thread: no native stream, no thread-pool buffers,
 * no garbage per chunk. Memory stays at one 16 KiB input buffer, a ring buffer no larger than
 * the section's window (or its raw size, if smaller) and the prefix tables of one meta-block;
 * reading past the declared raw size, or finishing short of it, is corruption.
 */
export class SectionReader {
  private readonly decoder: BrotliDecoder | undefined;
  private fd: number | undefined;
  private buf: Buffer = EMPTY;
  private pos = 0;
  private received = 0;
  private failure: DeltaCorruptError | undefined;

  constructor(
    file: string,
    start: number,
    compressedSize: number,
    private readonly rawSize: number,
    private readonly name: string,
    maxWindowBits: number,
  ) {
    if (compressedSize === 0) {
      if (rawSize !== 0)
        throw new DeltaCorruptError(`${name} section is empty but should hold ${rawSize} bytes`);
      return;
    }
    const fd = openSync(file, 'r');
    this.fd = fd;
    let position = start;
    const end = start + compressedSize;
    this.decoder = new BrotliDecoder(
      (into) => {
        const bytesRead = readSync(fd, into, 0, Math.min(into.length, end - position), position);
        position += bytesRead;
        return bytesRead;
      },
      { maxWindowBits, maxOutput: rawSize, inputBufferSize: Math.min(INPUT_CHUNK, compressedSize) },
    );
  }

  private corrupt(what: string): DeltaCorruptError {
    return new DeltaCorruptError(`delta ${this.name} section: ${what}`);
  }

  private next(): Buffer | undefined {
    if (this.failure) throw this.failure;
    if (!this.decoder) return undefined;
    let chunk: Buffer | undefined;
    try {
      chunk = this.decoder.pull();
    } catch (err) {
      if (!(err instanceof BrotliFormatError)) throw err;
      this.failure = this.corrupt(
        /more bytes than declared/.test(err.message)
          ? 'longer than declared'
          : `cannot decompress (${err.message})`,
      );
      throw this.failure;
    }
    if (!chunk) return undefined;
    this.received += chunk.length;
    if (this.received > this.rawSize) throw this.corrupt('longer than declared');
    return chunk;
  }

  private refill(): void {
    while (this.pos >= this.buf.length) {
      const chunk = this.next();
      if (!chunk) throw this.corrupt('ends early');
      this.buf = chunk;
      this.pos = 0;
    }
  }

  readByte(): number {
    if (this.pos >= this.buf.length) this.refill();
    return this.buf[this.pos++]!;
  }

  /** Unsigned LEB128, at most 2^53; synchronous when the whole varint is buffered. */
  readVarint(): number {
    let value = 0;
    let scale = 1;
    for (let i = this.pos; i < this.buf.length && i < this.pos + 8; i++) {
      const byte = this.buf[i]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        this.pos = i + 1;
        return value;
      }
      scale *= 0x80;
    }
    return this.readVarintSlowly();
  }

  private readVarintSlowly(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.readByte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        return value;
      }
      scale *= 0x80;
    }
    throw this.corrupt('varint out of range');
  }

  /** Between 1 and `max` bytes; the buffer is only valid until the next call. */
  readChunk(max: number): Buffer {
    if (this.pos >= this.buf.length) this.refill();
    const take = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + take);
    this.pos += take;
    return out;
  }

  /** Fails unless every declared byte was consumed and nothing follows. */
  expectEnd(): void {
    if (this.pos < this.buf.length || this.next() !== undefined) throw this.corrupt('has unused bytes');
    if (this.received !== this.rawSize) throw this.corrupt('shorter than declared');
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * The diff section is run-length coded: records of (zero count, literal count, literal bytes),
 * because bsdiff add bytes are mostly zero and brotli's best quality is slow on long zero runs.
 * This reader adds the expanded bytes onto the old ones.
 */
export class RunLengthReader {
  private zeros = 0;
  private literals = 0;

  constructor(private readonly section: SectionReader) {}

  /**
   * Adds the next `length` expanded bytes onto `target` from `at`, modulo 256 (bsdiff's add): a zero
   * run is skipped, only literal bytes are added. Most add bytes are zero runs (next-swc: 115 of
   * 124 MB), so the decoder puts the old bytes in place by a native copy and this touches the rest.
   */
  addInto(target: Buffer, at: number, length: number): void {
    while (length > 0) {
      if (this.zeros === 0 && this.literals === 0) this.nextRecord();
      if (this.zeros > 0) {
        const skip = Math.min(length, this.zeros);
        this.zeros -= skip;
        at += skip;
        length -= skip;
        continue;
      }
      const chunk = this.section.readChunk(Math.min(length, this.literals));
      for (let i = 0; i < chunk.length; i++) target[at + i] = (target[at + i]! + chunk[i]!) & 0xff;
      this.literals -= chunk.length;
      at += chunk.length;
      length -= chunk.length;
    }
  }

  private nextRecord(): void {
    this.zeros = this.section.readVarint();
    this.literals = this.section.readVarint();
    // An empty record expands to nothing: a stream of them would spin without output.
    if (this.zeros === 0 && this.literals === 0)
      throw new DeltaCorruptError('delta diff section: empty run-length record');
  }

  /** Fails unless every record was used up. */
  expectEnd(): void {
    if (this.zeros !== 0 || this.literals !== 0)
      throw new DeltaCorruptError('delta diff section: has unused bytes');
    this.section.expectEnd();
  }
}
