import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw } from 'node:zlib';

import { renameDurable } from '@ferry/storage/files';
import { ByteCollector } from './byte-collector';
import { DeflateStream, unpackDeflateParams } from './deflate-stream';
import { openDelta, type OpenedDelta } from './delta-file';
import {
  DeltaBaseMismatchError,
  DeltaCorruptError,
  DeltaError,
  DeltaInputError,
  DeltaNoSpaceError,
  DeltaTargetMismatchError,
} from './errors';
import {
  MAX_DEFLATE_RATIO,
  MAX_INFLATED,
  maxWindowBits,
  OpKind,
  opKindsOf,
  sectionInfo,
  unzigzag,
  type DeltaHeader,
  type SectionName,
} from './format';
import { OpFieldReader } from './op-fields';
import { RunLengthReader, SectionReader } from './section-reader';

/** Options shared by the decoder's stream and file APIs. */
export interface DecodeDeltaOptions {
  /** Base layer tar files, in the order the delta lists them. */
  bases: string[];
  /** The delta file. */
  delta: string;
  /**
   * Hash every base before applying and refuse a mismatch. Only turn off when the caller has
   * just verified the bases itself; size is always checked.
   * @defaultValue true
   */
  verifyBases?: boolean;
  /** Called after each output chunk with bytes written so far and the target size. */
  onProgress?: (written: number, total: number) => void;
  /**
   * The layer the caller asked for (sha256, with or without `sha256:`, and size). A delta whose
   * header names another target or size is refused before a byte is written; without them the
   * result is only checked against the delta's own header.
   */
  expected?: { digest?: string; size?: number };
  /**
   * Where a version 3 delta's INFLATE operations unpack a base member (one at a time, removed
   * when done).
   * @defaultValue the folder of `delta`
   */
  scratchDir?: string;
}

export interface ApplyDeltaOptions extends DecodeDeltaOptions {
  /** Where the rebuilt layer goes; written to a temporary file beside it and renamed after the digest check. */
  out: string;
}

export interface ApplyDeltaResult {
  /** sha256 (hex) of the rebuilt layer, equal to the delta's target digest. */
  digest: string;
  size: number;
}

const CHUNK = 1 << 18;
/** bsdiff positions beyond this cannot come from a real patch. */
const MAX_SEEK = 2 ** 52;

interface Base {
  fh: FileHandle;
  size: number;
}

async function hashFile(fh: FileHandle, size: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; pos < size;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash.digest('hex');
}

async function openBases(delta: OpenedDelta, files: string[], verify: boolean): Promise<Base[]> {
  const expected = delta.header.bases;
  if (files.length !== expected.length) {
    throw new DeltaBaseMismatchError(
      `delta needs ${expected.length} base layer(s) but ${files.length} were given`,
      -1,
      String(expected.length),
      String(files.length),
    );
  }
  const bases: Base[] = [];
  try {
    for (const [i, file] of files.entries()) {
      const want = expected[i]!;
      let fh: FileHandle;
      try {
        fh = await open(file, 'r');
      } catch (err) {
        throw new DeltaInputError(`cannot open base ${file}: ${(err as Error).message}`);
      }
      bases.push({ fh, size: want.size });
      const { size } = await fh.stat();
      const digest = size === want.size && verify ? await hashFile(fh, size) : want.digest;
      if (size !== want.size || digest !== want.digest) {
        throw new DeltaBaseMismatchError(
          `base ${i} (${file}) is not the layer this delta was built against: ` +
            (size !== want.size
              ? `size ${size}, expected ${want.size}`
              : `sha256:${digest}, expected sha256:${want.digest}`),
          i,
          want.digest,
          size !== want.size ? `size:${size}` : digest,
        );
      }
    }
  } catch (err) {
    await Promise.allSettled(bases.map((b) => b.fh.close()));
    throw err;
  }
  return bases;
}

/**
 * Reads one base layer by position through a small window, because bsdiff controls and
 * neighbouring copies mostly walk forward through the same region.
 */
class BaseReader {
  /** Where the last COPY ended or the last PATCH left its old cursor; offsets are relative to it. */
  cursor = 0;
  private windowStart = 0;
  private windowLength = 0;

  /** `window`: a buffer of `windowSize` bytes to read into, else one is made on first use. */
  constructor(
    readonly fh: FileHandle,
    readonly size: number,
    private readonly windowSize: number,
    private window?: Buffer,
  ) {}

  /**
   * Positional read. Synchronous: a bsdiff patch makes hundreds of thousands of small reads,
   * and a thread-pool round trip for each costs more than the read itself (page cache).
   */
  private pread(target: Buffer, targetOffset: number, position: number, length: number): void {
    for (let done = 0; done < length;) {
      const bytesRead = readSync(this.fh.fd, target, targetOffset + done, length - done, position + done);
      if (bytesRead === 0) throw new DeltaCorruptError('base layer shrank while applying the delta');
      done += bytesRead;
    }
  }

  /** The base bytes `[position, position + length)`, length at most the window size. */
  private view(position: number, length: number): Buffer {
    if (
      !this.window ||
      position < this.windowStart ||
      position + length > this.windowStart + this.windowLength
    ) {
      this.window ??= Buffer.allocUnsafe(this.windowSize);
      this.windowStart = position;
      // Small loads: bsdiff controls often jump, and reloading a whole window each time is slow.
      this.windowLength = Math.min(this.windowSize, this.size - position, Math.max(length, 1 << 16));
      this.pread(this.window, 0, position, this.windowLength);
    }
    return this.window.subarray(position - this.windowStart, position - this.windowStart + length);
  }

  /** Copies base bytes into `target`. */
  copyInto(target: Buffer, targetOffset: number, position: number, length: number): void {
    if (length > this.windowSize / 4) return this.pread(target, targetOffset, position, length);
    this.view(position, length).copy(target, targetOffset);
  }
}

/** Refuses a delta that builds another layer than the one the caller asked for. */
function checkExpected(header: DeltaHeader, expected: DecodeDeltaOptions['expected']): void {
  const want = expected?.digest?.replace(/^sha256:/, '') ?? header.targetDigest;
  const size = expected?.size ?? header.targetSize;
  if (header.targetDigest !== want || header.targetSize !== size) {
    throw new DeltaTargetMismatchError(
      `delta rebuilds sha256:${header.targetDigest} (${header.targetSize} bytes), not the layer asked for ` +
        `(sha256:${want}, ${size} bytes)`,
      want,
      header.targetDigest,
    );
  }
}

/** Free bytes where `dir` lives (statfs, Node 18.15+), or undefined where the runtime lacks it. */
async function freeSpace(dir: string): Promise<number | undefined> {
  const statfs = (fsp as { statfs?: (path: string) => Promise<{ bavail: number; bsize: number }> }).statfs;
  if (!statfs) return undefined;
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Unpacks the raw deflate stream at `[offset, offset + length)` of `source` into a new file in
 * `dir`, which must come to exactly `rawSize` bytes (refused as soon as it passes them).
 */
async function inflateToFile(
  source: string,
  offset: number,
  length: number,
  rawSize: number,
  dir: string,
): Promise<string> {
  const free = await freeSpace(dir);
  if (free !== undefined && free < rawSize) {
    throw new DeltaNoSpaceError(
      `the delta unpacks a ${rawSize}-byte base member but ${dir} has ${free} bytes free`,
      rawSize,
      free,
    );
  }
  const file = join(dir, `.ferry-inflated-${randomBytes(6).toString('hex')}`);
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > rawSize)
        done(new DeltaCorruptError(`delta operation unpacks more than its ${rawSize} bytes`));
      else done(null, chunk);
    },
  });
  // Created before the pipeline starts, so a failure can never race the file's creation.
  const out = await open(file, 'wx');
  try {
    await pipeline(
      createReadStream(source, { start: offset, end: offset + length - 1 }),
      createInflateRaw(),
      count,
      out.createWriteStream(),
    );
    if (size !== rawSize)
      throw new DeltaCorruptError(`delta operation unpacks ${size} bytes, not the ${rawSize} it declares`);
    return file;
  } catch (err) {
    await out.close().catch(() => undefined);
    await unlink(file).catch(() => undefined);
    if (err instanceof DeltaError) throw err;
    throw new DeltaCorruptError(
      `delta operation unpacks a base range that is not deflate data: ${(err as Error).message}`,
    );
  }
}

/**
 * Rebuilds the target layer as a sequence of chunks, checking every operation against the
 * base sizes and the declared target size, and the final sha256 against the target digest
 * (the generator throws instead of finishing when it differs). Memory is bounded by a
 * constant: one 256 KiB output chunk, one read window per base and one brotli window per
 * section; base bytes are read by position.
 */
export function decodeDelta(options: DecodeDeltaOptions): AsyncGenerator<Buffer, ApplyDeltaResult> {
  return decode(options, false);
}

/** `decodeChunks` without the empty chunks a DEFLATE block may hand out while it fills. */
async function* decode(
  options: DecodeDeltaOptions,
  reuse: boolean,
): AsyncGenerator<Buffer, ApplyDeltaResult> {
  const chunks = decodeChunks(options, reuse);
  try {
    let step = await chunks.next();
    while (!step.done) {
      if (step.value.length > 0) yield step.value;
      step = await chunks.next();
    }
    return step.value;
  } finally {
    await chunks.return(undefined as never);
  }
}

/** An open DEFLATE block: what its operations still write, and the output it still owes. */
interface DeflateBlock {
  rawLeft: number;
  outLeft: number;
}

/**
 * `reuse`: hand out the same output buffer every time, for a consumer that is done with a
 * chunk before asking for the next (the file API); it keeps garbage, and so RSS, low.
 */
async function* decodeChunks(
  options: DecodeDeltaOptions,
  reuse: boolean,
): AsyncGenerator<Buffer, ApplyDeltaResult> {
  const delta = await openDelta(options.delta);
  const { header, offsets } = delta;
  checkExpected(header, options.expected);
  const handles = await openBases(delta, options.bases, options.verifyBases ?? true);
  const windowSize = handles.length <= 8 ? 1 << 20 : 1 << 16;
  const bases = handles.map((b) => new BaseReader(b.fh, b.size, windowSize));
  const readers: SectionReader[] = [];
  const section = (name: SectionName) => {
    const info = sectionInfo(header, name);
    const reader = new SectionReader(
      delta.file,
      offsets[name]!,
      info.compressedSize,
      info.rawSize,
      name,
      maxWindowBits(name, header.version),
    );
    readers.push(reader);
    return reader;
  };
  const hash = createHash('sha256');
  let written = 0;
  let claimed = 0;
  let produced = 0;
  let out = Buffer.allocUnsafe(CHUNK);
  let fill = 0;
  const corrupt = (what: string) => new DeltaCorruptError(`delta operation ${what}`);
  const kinds = new Set<number>(opKindsOf(header.version));
  const scratchDir = options.scratchDir ?? dirname(options.delta);
  /** The base member unpacked by the last INFLATE: base `handles.length`. */
  let inflated: { file: string; fh: FileHandle } | undefined;
  let inflatedBytes = 0;
  let inflates = 0;
  let block: DeflateBlock | undefined;
  /** One deflate state and one output buffer for every DEFLATE block, in turn. */
  const deflater = new DeflateStream();
  const deflated = new ByteCollector(2 * CHUNK);
  /** One read window for every unpacked member, in turn (a window per INFLATE is garbage). */
  let inflatedWindow: Buffer | undefined;

  /** Output on its way to the caller: hashed and counted. */
  const emit = (chunk: Buffer): Buffer => {
    hash.update(chunk);
    written += chunk.length;
    options.onProgress?.(written, header.targetSize);
    return chunk;
  };
  /**
   * Hands out the filled part of the output buffer and starts a fresh one; inside a DEFLATE
   * block the bytes go into the deflate stream and what it has made so far comes out.
   */
  const take = (): Buffer => {
    if (block) {
      deflater.write(out.subarray(0, fill));
      fill = 0;
      return emit(deflated.take(reuse));
    }
    const chunk = out.subarray(0, fill);
    if (!reuse) out = Buffer.allocUnsafe(CHUNK);
    fill = 0;
    return emit(chunk);
  };
  /** Target bytes an operation writes (a DEFLATE block: what it comes to). */
  const claimTarget = (length: number): void => {
    if (length > header.targetSize - claimed) throw corrupt('writes past the end of the target');
    claimed += length;
  };
  const claim = (length: number): void => {
    // Every operation writes something: zero-length ones would cost time and buy nothing.
    if (length === 0) throw corrupt('has length zero');
    if (block) {
      if (length > block.rawLeft) throw corrupt('writes past the end of its deflate block');
      block.rawLeft -= length;
    } else claimTarget(length);
    produced += length;
    if (produced > header.produced) throw corrupt('writes more than the header declares');
  };
  const baseAt = (ops: OpFieldReader): BaseReader => {
    const index = ops.base();
    const base = bases[index];
    if (!base) throw corrupt(`refers to missing base ${index}`);
    return base;
  };
  /** INFLATE: base member bytes unpacked to a scratch file that becomes base `handles.length`. */
  const inflate = async (ops: OpFieldReader): Promise<void> => {
    const index = ops.base();
    const base = index < handles.length ? bases[index] : undefined;
    if (!base) throw corrupt(`unpacks missing base ${index}`);
    const offset = base.cursor + unzigzag(ops.offset());
    const length = ops.length();
    const rawSize = ops.length();
    if (offset < 0 || length === 0 || offset + length > base.size) throw corrupt('unpacks outside its base');
    if (rawSize === 0 || rawSize > MAX_DEFLATE_RATIO * length)
      throw corrupt(`cannot unpack to ${rawSize} bytes`);
    if (++inflates > MAX_INFLATED) throw corrupt(`unpacks more than ${MAX_INFLATED} base members`);
    // Unpacking is work no target byte pays for: bounded by what the operations produce.
    inflatedBytes += rawSize;
    if (inflatedBytes > 4 * header.produced)
      throw corrupt('unpacks more than four times what the delta produces');
    await dropInflated();
    const file = await inflateToFile(options.bases[index]!, offset, length, rawSize, scratchDir);
    const fh = await open(file, 'r').catch(async (err: Error) => {
      await unlink(file).catch(() => undefined);
      throw err;
    });
    inflated = { file, fh };
    inflatedWindow ??= Buffer.allocUnsafe(windowSize);
    bases[handles.length] = new BaseReader(fh, rawSize, windowSize, inflatedWindow);
  };
  const dropInflated = async (): Promise<void> => {
    if (!inflated) return;
    const { file, fh } = inflated;
    inflated = undefined;
    bases.length = handles.length;
    await fh.close().catch(() => undefined);
    await unlink(file).catch(() => undefined);
  };

  try {
    // Inside the try: a section that fails its checks must not leave the others (or the base
    // files) open.
    const ops = OpFieldReader.create(header.version, section);
    const diff = new RunLengthReader(section('diff'));
    const literal = section('literal');
    for (let n = 0; n < header.opCount; n++) {
      const kind = ops.kind() as OpKind;
      if (!kinds.has(kind)) throw corrupt(`has unknown kind ${String(kind)}`);
      switch (kind) {
        case OpKind.Copy: {
          const base = baseAt(ops);
          const offset = base.cursor + unzigzag(ops.offset());
          const length = ops.length();
          if (offset < 0 || offset + length > base.size) throw corrupt('copies outside its base');
          base.cursor = offset + length;
          claim(length);
          for (let done = 0; done < length;) {
            const step = Math.min(CHUNK - fill, length - done);
            base.copyInto(out, fill, offset + done, step);
            fill += step;
            done += step;
            if (fill === CHUNK) yield take();
          }
          break;
        }
        case OpKind.Insert:
        case OpKind.Zero: {
          const length = ops.length();
          claim(length);
          for (let done = 0; done < length;) {
            let step = Math.min(CHUNK - fill, length - done);
            if (kind === OpKind.Zero) out.fill(0, fill, fill + step);
            else step = literal.readChunk(step).copy(out, fill);
            fill += step;
            done += step;
            if (fill === CHUNK) yield take();
          }
          break;
        }
        case OpKind.Patch: {
          const base = baseAt(ops);
          const oldOffset = base.cursor + unzigzag(ops.offset());
          const oldLength = ops.length();
          let oldPos = unzigzag(ops.offset());
          const newLength = ops.length();
          const controls = ops.length();
          if (oldOffset < 0 || oldOffset + oldLength > base.size) throw corrupt('patches outside its base');
          if (Math.abs(oldPos) > MAX_SEEK) throw corrupt('patch starts out of range');
          claim(newLength);
          let produced = 0;
          let idle = false;
          for (let c = 0; c < controls; c++) {
            const addLength = ops.add();
            const extraLength = ops.extra();
            const seek = unzigzag(ops.seek());
            // [CVE-2020-14315] every length is checked against what is left before it is used.
            if (addLength + extraLength > newLength - produced)
              throw corrupt('patch control exceeds its output');
            // A control that writes nothing only seeks; two in a row could have been one, so the
            // number of controls stays bounded by the bytes they write.
            if (addLength + extraLength === 0 && idle) throw corrupt('patch has consecutive empty controls');
            idle = addLength + extraLength === 0;
            for (let done = 0; done < addLength;) {
              const step = Math.min(CHUNK - fill, addLength - done);
              // The old bytes (bspatch semantics: zero outside the old range), then the diff added on.
              const start = oldPos + done;
              const from = Math.max(0, start);
              const to = Math.min(oldLength, start + step);
              if (from > start || to < start + step) out.fill(0, fill, fill + step);
              if (from < to) base.copyInto(out, fill + from - start, oldOffset + from, to - from);
              diff.addInto(out, fill, step);
              fill += step;
              done += step;
              if (fill === CHUNK) yield take();
            }
            for (let done = 0; done < extraLength;) {
              const step = literal.readChunk(Math.min(CHUNK - fill, extraLength - done)).copy(out, fill);
              fill += step;
              done += step;
              if (fill === CHUNK) yield take();
            }
            produced += addLength + extraLength;
            oldPos += addLength + seek;
            if (Math.abs(oldPos) > MAX_SEEK) throw corrupt('patch seeks out of range');
          }
          if (produced !== newLength) throw corrupt('patch output length differs from its declaration');
          base.cursor = oldOffset + Math.min(Math.max(oldPos, 0), oldLength);
          break;
        }
        case OpKind.Inflate:
          await inflate(ops);
          break;
        case OpKind.Deflate: {
          if (block) throw corrupt('opens a deflate block inside another');
          const params = unpackDeflateParams(ops.length());
          const rawLength = ops.length();
          const outLength = ops.length();
          if (rawLength === 0 || outLength === 0) throw corrupt('has length zero');
          if (rawLength > MAX_DEFLATE_RATIO * outLength)
            throw corrupt(`cannot deflate ${rawLength} bytes to ${outLength}`);
          claimTarget(outLength);
          if (fill > 0) yield take();
          const opened: DeflateBlock = { rawLeft: rawLength, outLeft: outLength };
          deflater.start(params, (made) => {
            opened.outLeft -= made.length;
            if (opened.outLeft < 0) throw corrupt('deflate block makes more than it declares');
            deflated.append(made);
          });
          block = opened;
          break;
        }
      }
      if (block && block.rawLeft === 0) {
        const done = block;
        deflater.write(out.subarray(0, fill));
        fill = 0;
        deflater.end();
        if (done.outLeft !== 0) throw corrupt('deflate block makes less than it declares');
        block = undefined;
        yield emit(deflated.take(reuse));
      }
    }
    if (block) throw corrupt('leaves a deflate block unfinished');
    if (fill > 0) yield take();
    ops.expectEnd();
    diff.expectEnd();
    literal.expectEnd();
    const digest = hash.digest('hex');
    if (header.version >= 3 && produced !== header.produced)
      throw corrupt(`writes ${produced} bytes, not the ${header.produced} the header declares`);
    if (written !== header.targetSize || digest !== header.targetDigest) {
      throw new DeltaTargetMismatchError(
        `rebuilt layer is sha256:${digest} (${written} bytes), expected sha256:${header.targetDigest} (${header.targetSize} bytes)`,
        header.targetDigest,
        digest,
      );
    }
    return { digest, size: written };
  } finally {
    for (const reader of readers) reader.close();
    await dropInflated();
    await Promise.allSettled(handles.map((b) => b.fh.close()));
  }
}

/**
 * The rebuilt layer as a Readable stream, e.g. to pipe into an image archive. The stream
 * errors (instead of ending) on a corrupt delta, a wrong base or a digest mismatch.
 */
export function createDeltaReadStream(options: DecodeDeltaOptions): Readable {
  return Readable.from(decodeDelta(options), { objectMode: false });
}

/**
 * Rebuilds the target layer into `out`: written to a temporary file beside it, fsynced and
 * renamed only after its sha256 matched; on any failure nothing is left at `out`.
 */
export async function applyDelta(options: ApplyDeltaOptions): Promise<ApplyDeltaResult> {
  const { header } = await openDelta(options.delta, false);
  checkExpected(header, options.expected);
  const free = await freeSpace(dirname(options.out));
  if (free !== undefined && free < header.targetSize) {
    throw new DeltaNoSpaceError(
      `the delta builds a ${header.targetSize}-byte layer but ${dirname(options.out)} has ${free} bytes free`,
      header.targetSize,
      free,
    );
  }
  const temp = join(
    dirname(options.out),
    `.${basename(options.out)}.${randomBytes(6).toString('hex')}.partial`,
  );
  const fh = await open(temp, 'wx');
  let closed = false;
  try {
    const generator = decode(options, true);
    let step = await generator.next();
    while (!step.done) {
      await fh.write(step.value);
      step = await generator.next();
    }
    await fh.sync();
    await fh.close();
    closed = true;
    await renameDurable(temp, options.out);
    return step.value;
  } catch (err) {
    if (!closed) await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}
