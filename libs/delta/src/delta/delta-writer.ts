import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { constants, createBrotliCompress } from 'node:zlib';

import { encodeHeader, OpKind, pushVarint, zigzag, type DeltaHeader, type SectionInfo } from './format';

/** Count and target bytes of each operation kind. */
export type OpStats = Record<'copy' | 'insert' | 'patch' | 'zero', { count: number; bytes: number }>;

export function emptyOpStats(): OpStats {
  return {
    copy: { count: 0, bytes: 0 },
    insert: { count: 0, bytes: 0 },
    patch: { count: 0, bytes: 0 },
    zero: { count: 0, bytes: 0 },
  };
}

export interface CompressionOptions {
  /**
   * Brotli quality for sections up to `strongLimit` raw bytes.
   * @defaultValue 11
   */
  quality?: number;
  /**
   * Sections larger than this are compressed at quality 9, which is about ten times faster.
   * @defaultValue 96 MiB
   */
  strongLimit?: number;
  /**
   * Brotli window bits; the decoder's memory grows with it (2^bits per section).
   * @defaultValue 22
   */
  windowBits?: number;
}

const FLUSH_AT = 1 << 20;

/** Buffers bytes and appends them to a raw (uncompressed) section file. */
class RawSection {
  private parts: Buffer[] = [];
  private pending = 0;
  size = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly file: string,
  ) {}

  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.parts.push(data);
    this.pending += data.length;
    this.size += data.length;
    if (this.pending >= FLUSH_AT) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending === 0) return;
    const data = Buffer.concat(this.parts);
    this.parts = [];
    this.pending = 0;
    await this.fh.write(data);
  }

  async close(): Promise<void> {
    await this.flush();
    await this.fh.close();
  }
}

/**
 * Collects operations, merging neighbours (contiguous copies, consecutive inserts and zero
 * runs), spools the three sections to temporary files, then compresses them and writes the
 * finished delta through a temporary file and a rename.
 */
export class DeltaWriter {
  readonly stats = emptyOpStats();
  opCount = 0;
  private ops: number[] = [];
  private pendingCopy: { base: number; offset: number; length: number } | undefined;
  private pendingInsert = 0;
  private pendingZero = 0;

  private constructor(
    private readonly opsRaw: RawSection,
    private readonly diffRaw: RawSection,
    private readonly literalRaw: RawSection,
    private readonly temps: string[],
  ) {}

  static async create(tempDir: string): Promise<DeltaWriter> {
    const stem = join(tempDir, `delta-${randomBytes(6).toString('hex')}`);
    const names = ['ops', 'diff', 'literal'].map((s) => `${stem}.${s}.raw`);
    const handles = await Promise.all(names.map((name) => open(name, 'w')));
    const sections = handles.map((fh, i) => new RawSection(fh, names[i]!));
    const temps = [...names, ...names.map((n) => n.replace(/raw$/, 'br'))];
    return new DeltaWriter(sections[0]!, sections[1]!, sections[2]!, temps);
  }

  private async flushPending(): Promise<void> {
    if (this.pendingCopy) {
      const { base, offset, length } = this.pendingCopy;
      this.pendingCopy = undefined;
      this.op(OpKind.Copy, [base, offset, length]);
      this.count('copy', length);
    }
    if (this.pendingInsert > 0) {
      this.op(OpKind.Insert, [this.pendingInsert]);
      this.count('insert', this.pendingInsert);
      this.pendingInsert = 0;
    }
    if (this.pendingZero > 0) {
      this.op(OpKind.Zero, [this.pendingZero]);
      this.count('zero', this.pendingZero);
      this.pendingZero = 0;
    }
    if (this.ops.length >= FLUSH_AT) {
      await this.opsRaw.write(Buffer.from(this.ops));
      this.ops = [];
    }
  }

  private op(kind: OpKind, values: number[]): void {
    this.ops.push(kind);
    for (const value of values) pushVarint(this.ops, value);
    this.opCount++;
  }

  private count(kind: keyof OpStats, bytes: number): void {
    this.stats[kind].count++;
    this.stats[kind].bytes += bytes;
  }

  /** Target bytes equal to `length` bytes of base `base` at `offset`. */
  async copy(base: number, offset: number, length: number): Promise<void> {
    if (length === 0) return;
    const prev = this.pendingCopy;
    if (prev && prev.base === base && prev.offset + prev.length === offset) {
      prev.length += length;
      return;
    }
    await this.flushPending();
    this.pendingCopy = { base, offset, length };
  }

  /** New bytes carried in the literal section. */
  async insert(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    if (this.pendingCopy || this.pendingZero > 0) await this.flushPending();
    this.pendingInsert += data.length;
    await this.literalRaw.write(data);
  }

  /** A run of zero bytes (tar padding, end-of-archive blocks, zero-filled files). */
  async zero(length: number): Promise<void> {
    if (length === 0) return;
    if (this.pendingCopy || this.pendingInsert > 0) await this.flushPending();
    this.pendingZero += length;
  }

  /**
   * A bsdiff patch of base bytes `[oldOffset, oldOffset + oldLength)`: `controls` are flat
   * (add, extra, seek) triples; `diff` holds the add bytes, `extra` the inserted ones.
   */
  async patch(
    base: number,
    oldOffset: number,
    oldLength: number,
    controls: number[],
    diff: Buffer,
    extra: Buffer,
  ): Promise<void> {
    await this.flushPending();
    const newLength = diff.length + extra.length;
    this.op(OpKind.Patch, [base, oldOffset, oldLength, newLength, controls.length / 3]);
    for (let i = 0; i < controls.length; i += 3) {
      pushVarint(this.ops, controls[i]!);
      pushVarint(this.ops, controls[i + 1]!);
      pushVarint(this.ops, zigzag(controls[i + 2]!));
    }
    this.count('patch', newLength);
    await this.diffRaw.write(diff);
    await this.literalRaw.write(extra);
  }

  /** Compresses the sections and writes the delta to `out` (temp file + fsync + rename). */
  async finish(
    out: string,
    header: Omit<DeltaHeader, 'opCount' | 'ops' | 'diff' | 'literal' | 'version'>,
    compression: CompressionOptions = {},
  ): Promise<{ header: DeltaHeader; size: number }> {
    await this.flushPending();
    await this.opsRaw.write(Buffer.from(this.ops));
    this.ops = [];
    const raws = [this.opsRaw, this.diffRaw, this.literalRaw];
    await Promise.all(raws.map((r) => r.close()));
    const infos = await Promise.all(raws.map((raw) => compressSection(raw.file, raw.size, compression)));
    const [ops, diff, literal] = infos as [SectionInfo, SectionInfo, SectionInfo];
    const full: DeltaHeader = { ...header, version: 1, opCount: this.opCount, ops, diff, literal };
    const temp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.partial`);
    const fh = await open(temp, 'wx');
    try {
      const hash = createHash('sha256');
      const write = async (data: Buffer) => {
        hash.update(data);
        await fh.write(data);
      };
      await write(encodeHeader(full));
      for (const [i, raw] of raws.entries()) {
        if (infos[i]!.compressedSize === 0) continue;
        for await (const chunk of createReadStream(raw.file.replace(/raw$/, 'br')))
          await write(chunk as Buffer);
      }
      await fh.write(hash.digest());
      await fh.sync();
      await fh.close();
      await rename(temp, out);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    return { header: full, size: (await stat(out)).size };
  }

  /** Removes the spooled sections; safe to call more than once. */
  async dispose(): Promise<void> {
    await Promise.allSettled([this.opsRaw, this.diffRaw, this.literalRaw].map((r) => r.close()));
    await Promise.allSettled(this.temps.map((file) => unlink(file)));
  }
}

async function compressSection(
  raw: string,
  rawSize: number,
  options: CompressionOptions,
): Promise<SectionInfo> {
  if (rawSize === 0) return { compressedSize: 0, rawSize: 0 };
  const strong = rawSize <= (options.strongLimit ?? 96 * 2 ** 20);
  const quality = strong ? (options.quality ?? 11) : Math.min(9, options.quality ?? 11);
  const brotli = createBrotliCompress({
    chunkSize: 1 << 16,
    params: {
      [constants.BROTLI_PARAM_QUALITY]: quality,
      [constants.BROTLI_PARAM_LGWIN]: options.windowBits ?? 22,
      [constants.BROTLI_PARAM_SIZE_HINT]: Math.min(rawSize, 2 ** 30),
    },
  });
  const compressed = raw.replace(/raw$/, 'br');
  await pipeline(createReadStream(raw, { highWaterMark: 1 << 20 }), brotli, createWriteStream(compressed));
  return { compressedSize: (await stat(compressed)).size, rawSize };
}
