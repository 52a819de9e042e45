import { createReadStream } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress } from 'node:zlib';

import { DeltaCorruptError } from './errors';

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Pulls the decompressed bytes of one section of a delta file on demand. Memory stays at one
 * brotli window plus one output chunk; reading past the declared raw size, or finishing
 * short of it, is corruption.
 */
export class SectionReader {
  private readonly iterator: AsyncIterator<Buffer> | undefined;
  private readonly streams: Readable[] = [];
  private buf: Buffer = EMPTY;
  private pos = 0;
  private received = 0;

  constructor(
    file: string,
    start: number,
    compressedSize: number,
    private readonly rawSize: number,
    private readonly name: string,
  ) {
    if (compressedSize === 0) {
      if (rawSize !== 0)
        throw new DeltaCorruptError(`${name} section is empty but should hold ${rawSize} bytes`);
      return;
    }
    const source = createReadStream(file, { start, end: start + compressedSize - 1, highWaterMark: 1 << 16 });
    const brotli = createBrotliDecompress({ chunkSize: 1 << 16 });
    pipeline(source, brotli, () => undefined);
    this.streams.push(source, brotli);
    this.iterator = brotli[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private corrupt(what: string): DeltaCorruptError {
    return new DeltaCorruptError(`delta ${this.name} section: ${what}`);
  }

  private async next(): Promise<Buffer | undefined> {
    if (!this.iterator) return undefined;
    let result: IteratorResult<Buffer>;
    try {
      result = await this.iterator.next();
    } catch (err) {
      throw this.corrupt(`cannot decompress (${(err as Error).message})`);
    }
    if (result.done) return undefined;
    this.received += result.value.length;
    if (this.received > this.rawSize) throw this.corrupt('longer than declared');
    return result.value;
  }

  private async refill(): Promise<void> {
    while (this.pos >= this.buf.length) {
      const chunk = await this.next();
      if (!chunk) throw this.corrupt('ends early');
      this.buf = chunk;
      this.pos = 0;
    }
  }

  readByte(): number | Promise<number> {
    if (this.pos < this.buf.length) return this.buf[this.pos++]!;
    return this.refill().then(() => this.buf[this.pos++]!);
  }

  /** Unsigned LEB128, at most 2^53; synchronous when the whole varint is buffered. */
  readVarint(): number | Promise<number> {
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

  private async readVarintSlowly(): Promise<number> {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = await this.readByte();
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
  async readChunk(max: number): Promise<Buffer> {
    if (this.pos >= this.buf.length) await this.refill();
    const take = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + take);
    this.pos += take;
    return out;
  }

  /** Fails unless every declared byte was consumed and nothing follows. */
  async expectEnd(): Promise<void> {
    if (this.pos < this.buf.length || (await this.next()) !== undefined)
      throw this.corrupt('has unused bytes');
    if (this.received !== this.rawSize) throw this.corrupt('shorter than declared');
  }

  close(): void {
    for (const stream of this.streams) stream.destroy();
  }
}

const ZEROS = Buffer.alloc(1 << 16);

/**
 * The diff section is run-length coded: records of (zero count, literal count, literal bytes),
 * because bsdiff add bytes are mostly zero and brotli's best quality is slow on long zero runs.
 * This reader hands out the expanded bytes.
 */
export class RunLengthReader {
  private zeros = 0;
  private literals = 0;

  constructor(private readonly section: SectionReader) {}

  /** Between 1 and `max` expanded bytes; valid until the next call. */
  async readChunk(max: number): Promise<Buffer> {
    while (this.zeros === 0 && this.literals === 0) {
      this.zeros = await this.section.readVarint();
      this.literals = await this.section.readVarint();
    }
    if (this.zeros > 0) {
      const take = Math.min(max, this.zeros, ZEROS.length);
      this.zeros -= take;
      return ZEROS.subarray(0, take);
    }
    const chunk = await this.section.readChunk(Math.min(max, this.literals));
    this.literals -= chunk.length;
    return chunk;
  }

  /** Fails unless every record was used up. */
  async expectEnd(): Promise<void> {
    if (this.zeros !== 0 || this.literals !== 0)
      throw new DeltaCorruptError('delta diff section: has unused bytes');
    await this.section.expectEnd();
  }
}
