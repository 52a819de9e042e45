import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { renameDurable } from '@ferry/storage/files';
import { packDeflateParams, type DeflateParams } from './deflate-stream';
import { compressFile, FollowingCompressor, type SectionBrotli } from './section-compressor';
import {
  DELTA_VERSION,
  encodeHeader,
  FIELD_NAMES,
  maxWindowBits,
  OpKind,
  pushVarint,
  sectionNames,
  zigzag,
  type DeltaHeader,
  type FieldName,
  type SectionInfo,
  type SectionName,
} from './format';

/**
 * Count and bytes of each operation kind: bytes written (inside DEFLATE blocks, bytes fed to
 * deflate); for DEFLATE, the target bytes its blocks come to; for INFLATE, the bytes unpacked.
 */
export type OpStats = Record<
  'copy' | 'insert' | 'patch' | 'zero' | 'inflate' | 'deflate',
  { count: number; bytes: number }
>;

export function emptyOpStats(): OpStats {
  return {
    copy: { count: 0, bytes: 0 },
    insert: { count: 0, bytes: 0 },
    patch: { count: 0, bytes: 0 },
    zero: { count: 0, bytes: 0 },
    inflate: { count: 0, bytes: 0 },
    deflate: { count: 0, bytes: 0 },
  };
}

/** Bytes all operations write: the header's `produced` (version 3). */
export function producedBytes(stats: OpStats): number {
  return stats.copy.bytes + stats.insert.bytes + stats.patch.bytes + stats.zero.bytes;
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
   * The same for the literal section alone, whose quality-11 pass is the slowest step of a large
   * layer's encoding (Debian rootfs: 16 MB of literals, 31 s at quality 11, 3 s at 9 for 9 % more
   * bytes; the device's decoder needs the same memory for either).
   * @defaultValue 12 MiB (at most `strongLimit`)
   */
  literalStrongLimit?: number;
  /**
   * Brotli window bits of the literal section (the others use what the format allows them, see
   * `maxWindowBits`); the decoder needs 2^bits bytes for it.
   * @defaultValue 22
   */
  windowBits?: number;
}

const FLUSH_AT = 1 << 20;
/**
 * Unchanged runs shorter than this stay inside the patch: brotli codes a zero run in a few
 * bytes, while a split costs two operations; only long runs are worth taking out (speed).
 */
const MIN_ZERO_RUN = 32 * 1024;

/** Diff section coding: (zero count, literal count, literal bytes) records; see RunLengthReader. */
export function runLengthEncode(diff: Buffer): Buffer {
  const head: number[] = [];
  const parts: Buffer[] = [];
  let i = 0;
  while (i < diff.length) {
    let z = i;
    while (z < diff.length && diff[z] === 0) z++;
    let n = z;
    while (n < diff.length && diff[n] !== 0) n++;
    pushVarint(head, z - i);
    pushVarint(head, n - z);
    parts.push(Buffer.from(head), diff.subarray(z, n));
    head.length = 0;
    i = n;
  }
  return Buffer.concat(parts);
}

/**
 * The first run of at least MIN_ZERO_RUN zero diff bytes in `diff[from, from + length)` whose
 * old positions (starting at `oldPos`) all lie inside the old range.
 */
function zeroRun(
  diff: Buffer,
  from: number,
  length: number,
  oldPos: number,
  oldLength: number,
): { offset: number; length: number } | undefined {
  const lo = Math.max(0, -oldPos);
  const hi = Math.min(length, oldLength - oldPos);
  let i = lo;
  while (i < hi) {
    if (diff[from + i] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < hi && diff[from + j] === 0) j++;
    if (j - i >= MIN_ZERO_RUN) return { offset: i, length: j - i };
    i = j;
  }
  return undefined;
}

/**
 * Literal sections up to this size get quality 11. Issue 14's encode goal (at most twice
 * HDiffPatch's time on layers over 50 MB) holds on the Debian rootfs (16 MB of new bytes) only
 * at quality 9 beyond: 20 s against 40 s, for 9 % more bytes, still fewer than HDiffPatch's.
 */
export const DEFAULT_LITERAL_STRONG_LIMIT = 12 * 2 ** 20;

/**
 * Brotli settings of a section of `rawSize` bytes: quality 11 up to `strongLimit` (quality 9
 * beyond, about ten times faster; for literals up to `literalStrongLimit` too); a window no larger than the section, nor than the format
 * allows it (kinds, fields and run-length coded diff bytes gain little from a large window, and
 * every window bit doubles the decoder's memory for that section).
 */
function sectionBrotli(name: SectionName, rawSize: number, options: CompressionOptions): SectionBrotli {
  const limit = Math.min(
    options.strongLimit ?? 96 * 2 ** 20,
    name === 'literal' ? (options.literalStrongLimit ?? DEFAULT_LITERAL_STRONG_LIMIT) : Infinity,
  );
  const strong = rawSize <= limit;
  const cap = Math.min(maxWindowBits(name, DELTA_VERSION), options.windowBits ?? 22);
  const fit = Math.max(16, Math.ceil(Math.log2(Math.max(rawSize, 1))));
  return {
    quality: strong ? (options.quality ?? 11) : Math.min(9, options.quality ?? 11),
    windowBits: Math.min(cap, fit),
    // Literal bytes in 64 KiB blocks: brotli's quality 10–11 then holds 26–45 MiB less while it
    // compresses (Debian rootfs literal: 142 against 168 MiB) for output as small (5,403,512
    // against 5,416,996 B; esbuild-x64-far 3,429,221 against 3,429,827). Patch bytes keep
    // brotli's default: 64 KiB blocks made next-swc's 0.4 % larger.
    ...(name === 'literal' && { blockBits: 16 }),
    sizeHint: rawSize,
  };
}

/**
 * Buffers bytes and appends them to a raw (uncompressed) section file. Once the section is
 * larger than its brotli window, its settings no longer depend on its final size but for the
 * strong limit, so it starts compressing while it is still written (`FollowingCompressor`), and
 * starts again at quality 9 if it outgrows that limit.
 */
class RawSection {
  private parts: Buffer[] = [];
  private pending = 0;
  size = 0;
  private flushed = 0;
  private early: FollowingCompressor | undefined;

  constructor(
    private readonly fh: FileHandle,
    readonly file: string,
    private readonly name: SectionName,
    private readonly compression: CompressionOptions,
  ) {}

  get compressedFile(): string {
    return this.file.replace(/raw$/, 'br');
  }

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
    this.flushed += data.length;
    await this.compressEarly();
  }

  private async compressEarly(): Promise<void> {
    const settings = sectionBrotli(this.name, this.flushed, this.compression);
    if (this.early && this.early.settings.quality !== settings.quality) {
      // Grown past the strong limit: quality 9 from the start (it cannot change again).
      await this.early.cancel();
      this.early = undefined;
    }
    if (!this.early && this.flushed > 2 ** settings.windowBits) {
      this.early = new FollowingCompressor(this.file, this.compressedFile, {
        ...settings,
        sizeHint: undefined,
      });
    }
    this.early?.advance(this.flushed);
  }

  async close(): Promise<void> {
    await this.flush();
    await this.fh.close();
  }

  /** Compresses the finished section (or waits for its early compression to end). */
  async compress(): Promise<SectionInfo> {
    if (this.size === 0) {
      await this.early?.cancel();
      return { compressedSize: 0, rawSize: 0 };
    }
    const settings = sectionBrotli(this.name, this.size, this.compression);
    const early = this.early;
    this.early = undefined;
    if (
      early &&
      early.settings.quality === settings.quality &&
      early.settings.windowBits === settings.windowBits
    )
      await early.finish(this.size);
    else {
      await early?.cancel();
      await compressFile(this.file, this.compressedFile, settings);
    }
    return { compressedSize: (await stat(this.compressedFile)).size, rawSize: this.size };
  }

  /** Stops any early compression. */
  async dispose(): Promise<void> {
    await this.early?.cancel();
    this.early = undefined;
  }
}

/**
 * Collects operations, merging neighbours (contiguous copies, consecutive inserts and zero
 * runs), spools every section (kinds, each operation field, diff and literal bytes) to its own
 * temporary file, then compresses them and writes the finished delta (format version 2)
 * through a temporary file and a rename.
 */
export class DeltaWriter {
  readonly stats = emptyOpStats();
  opCount = 0;
  /** Kind bytes and field varints not yet spooled. */
  private readonly pending: Record<'ops' | FieldName, number[]> = {
    ops: [],
    bases: [],
    offsets: [],
    lengths: [],
    adds: [],
    extras: [],
    seeks: [],
  };
  private pendingCopy: { base: number; offset: number; length: number } | undefined;
  private pendingInsert = 0;
  private pendingZero = 0;
  /** Per base: where the last COPY ended or the last PATCH left its old cursor; offsets are stored relative to it. */
  private readonly cursors: number[] = [];

  private constructor(
    private readonly raws: Record<SectionName, RawSection>,
    private readonly temps: string[],
  ) {}

  private get diffRaw(): RawSection {
    return this.raws.diff;
  }

  private get literalRaw(): RawSection {
    return this.raws.literal;
  }

  static async create(tempDir: string, compression: CompressionOptions = {}): Promise<DeltaWriter> {
    const stem = join(tempDir, `delta-${randomBytes(6).toString('hex')}`);
    const sections = sectionNames(DELTA_VERSION);
    const files = sections.map((s) => `${stem}.${s}.raw`);
    const raws: Partial<Record<SectionName, RawSection>> = {};
    try {
      for (const [i, name] of sections.entries())
        raws[name] = new RawSection(await open(files[i]!, 'w'), files[i]!, name, compression);
    } catch (err) {
      await Promise.allSettled(Object.values(raws).map((r) => r.close()));
      await Promise.allSettled(files.map((file) => unlink(file)));
      throw err;
    }
    const temps = [...files, ...files.map((n) => n.replace(/raw$/, 'br'))];
    return new DeltaWriter(raws as Record<SectionName, RawSection>, temps);
  }

  /** Appends a field value to its stream. */
  private field(name: FieldName, value: number): void {
    pushVarint(this.pending[name], value);
  }

  /** Spools streams holding at least `atLeast` pending bytes. */
  private async spool(atLeast: number): Promise<void> {
    for (const name of ['ops', ...FIELD_NAMES] as const) {
      if (this.pending[name].length < atLeast || this.pending[name].length === 0) continue;
      await this.raws[name].write(Buffer.from(this.pending[name]));
      this.pending[name] = [];
    }
  }

  private async flushPending(): Promise<void> {
    if (this.pendingCopy) {
      const { base, offset, length } = this.pendingCopy;
      this.pendingCopy = undefined;
      this.op(OpKind.Copy);
      this.field('bases', base);
      this.field('offsets', zigzag(offset - (this.cursors[base] ?? 0)));
      this.field('lengths', length);
      this.cursors[base] = offset + length;
      this.count('copy', length);
    }
    if (this.pendingInsert > 0) {
      this.op(OpKind.Insert);
      this.field('lengths', this.pendingInsert);
      this.count('insert', this.pendingInsert);
      this.pendingInsert = 0;
    }
    if (this.pendingZero > 0) {
      this.op(OpKind.Zero);
      this.field('lengths', this.pendingZero);
      this.count('zero', this.pendingZero);
      this.pendingZero = 0;
    }
    await this.spool(FLUSH_AT);
  }

  private op(kind: OpKind): void {
    this.pending.ops.push(kind);
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
   * Unpacks the deflate stream at base bytes `[offset, offset + length)` (`rawSize` bytes) as
   * base `as`, the index after the real bases, replacing the member unpacked before.
   */
  async inflate(base: number, offset: number, length: number, rawSize: number, as: number): Promise<void> {
    await this.flushPending();
    this.op(OpKind.Inflate);
    this.field('bases', base);
    this.field('offsets', zigzag(offset - (this.cursors[base] ?? 0)));
    this.field('lengths', length);
    this.field('lengths', rawSize);
    this.cursors[as] = 0;
    this.count('inflate', rawSize);
  }

  /**
   * The operations up to `endDeflate` write `rawLength` bytes into a deflate stream with
   * `params`, whose `outLength` bytes are what the target gets.
   */
  async deflate(params: DeflateParams, rawLength: number, outLength: number): Promise<void> {
    await this.flushPending();
    this.op(OpKind.Deflate);
    this.field('lengths', packDeflateParams(params));
    this.field('lengths', rawLength);
    this.field('lengths', outLength);
    this.count('deflate', outLength);
  }

  /** Ends a DEFLATE block: no merging of operations across its end. */
  async endDeflate(): Promise<void> {
    await this.flushPending();
  }

  /**
   * A bsdiff patch of base bytes `[oldOffset, oldOffset + oldLength)`: `controls` are flat
   * (add, extra, seek) triples; `diff` holds the add bytes, `extra` the inserted ones.
   * Long runs of zero diff bytes are unchanged old bytes: they become COPY operations, which
   * keeps the diff section (and the time to compress it) small.
   */
  async patch(
    base: number,
    oldOffset: number,
    oldLength: number,
    controls: number[],
    diff: Buffer,
    extra: Buffer,
  ): Promise<void> {
    let piece: number[] = [];
    let pieceStart = 0;
    let pieceDiff = 0;
    let pieceExtra = 0;
    let oldPos = 0;
    let diffAt = 0;
    let extraAt = 0;
    const push = (add: number, ext: number, seek: number) => {
      if (piece.length === 0) {
        pieceStart = oldPos;
        pieceDiff = diffAt;
        pieceExtra = extraAt;
      }
      piece.push(add, ext, seek);
      oldPos += add + seek;
      diffAt += add;
      extraAt += ext;
    };
    const flush = async () => {
      if (piece.length === 0) return;
      await this.patchPiece(
        base,
        oldOffset,
        oldLength,
        pieceStart,
        oldPos,
        piece,
        diff.subarray(pieceDiff, diffAt),
        extra.subarray(pieceExtra, extraAt),
      );
      piece = [];
    };
    for (let c = 0; c < controls.length; c += 3) {
      let add = controls[c]!;
      const ext = controls[c + 1]!;
      const seek = controls[c + 2]!;
      for (;;) {
        const run = zeroRun(diff, diffAt, add, oldPos, oldLength);
        if (!run) break;
        if (run.offset > 0) push(run.offset, 0, 0);
        await flush();
        await this.copy(base, oldOffset + oldPos, run.length);
        oldPos += run.length;
        diffAt += run.length;
        add -= run.offset + run.length;
      }
      // A bare seek needs no control of its own: the next piece records its start, or the
      // previous control seeks further (the decoder refuses runs of controls that write nothing).
      if (add === 0 && ext === 0) {
        if (piece.length > 0) piece[piece.length - 1]! += seek;
        oldPos += seek;
      } else push(add, ext, seek);
    }
    await flush();
  }

  private async patchPiece(
    base: number,
    oldOffset: number,
    oldLength: number,
    start: number,
    end: number,
    controls: number[],
    diff: Buffer,
    extra: Buffer,
  ): Promise<void> {
    await this.flushPending();
    const newLength = diff.length + extra.length;
    const relative = oldOffset - (this.cursors[base] ?? 0);
    this.op(OpKind.Patch);
    this.field('bases', base);
    this.field('offsets', zigzag(relative));
    this.field('lengths', oldLength);
    this.field('offsets', zigzag(start));
    this.field('lengths', newLength);
    this.field('lengths', controls.length / 3);
    for (let i = 0; i < controls.length; i += 3) {
      this.field('adds', controls[i]!);
      this.field('extras', controls[i + 1]!);
      this.field('seeks', zigzag(controls[i + 2]!));
    }
    this.cursors[base] = oldOffset + Math.min(Math.max(end, 0), oldLength);
    this.count('patch', newLength);
    await this.diffRaw.write(runLengthEncode(diff));
    await this.literalRaw.write(extra);
  }

  /**
   * Compresses the sections and writes the delta to `out` (temp file + fsync + rename);
   * `verify` may check the finished temporary file before it is renamed.
   */
  async finish(
    out: string,
    header: Omit<DeltaHeader, 'opCount' | 'produced' | 'ops' | 'diff' | 'literal' | 'version' | 'fields'>,
    verify?: (file: string) => Promise<void>,
  ): Promise<{ header: DeltaHeader; size: number }> {
    await this.flushPending();
    await this.spool(0);
    const names = sectionNames(DELTA_VERSION);
    const raws = names.map((name) => this.raws[name]);
    await Promise.all(raws.map((r) => r.close()));
    const infos = await Promise.all(raws.map((raw) => raw.compress()));
    const [ops, diff, literal, ...rest] = infos as [SectionInfo, SectionInfo, SectionInfo, ...SectionInfo[]];
    const fields = Object.fromEntries(FIELD_NAMES.map((name, i) => [name, rest[i]!])) as Record<
      FieldName,
      SectionInfo
    >;
    const full: DeltaHeader = {
      ...header,
      version: DELTA_VERSION,
      opCount: this.opCount,
      produced: producedBytes(this.stats),
      ops,
      diff,
      literal,
      fields,
    };
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
        for await (const chunk of createReadStream(raw.compressedFile)) await write(chunk as Buffer);
      }
      await fh.write(hash.digest());
      await fh.sync();
      await fh.close();
      await verify?.(temp);
      await renameDurable(temp, out);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    return { header: full, size: (await stat(out)).size };
  }

  /** Removes the spooled sections; safe to call more than once. */
  async dispose(): Promise<void> {
    await Promise.allSettled(Object.values(this.raws).map((r) => r.dispose()));
    await Promise.allSettled(Object.values(this.raws).map((r) => r.close()));
    await Promise.allSettled(this.temps.map((file) => unlink(file)));
  }
}
