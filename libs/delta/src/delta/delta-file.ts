import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

import { DeltaCorruptError, DeltaFormatError, DeltaTruncatedError } from './errors';
import {
  decodeHeaderBody,
  decodePrefix,
  expectedDeltaSize,
  maxWindowBits,
  PREFIX_SIZE,
  sectionInfo,
  sectionNames,
  TRAILER_SIZE,
  type DeltaHeader,
  type SectionName,
} from './format';

/** A delta file whose framing has been checked, with where each section sits. */
export interface OpenedDelta {
  file: string;
  header: DeltaHeader;
  /** Byte offset of each section in the file (version 1 has no field sections). */
  offsets: Partial<Record<SectionName, number>>;
}

/**
 * The window (log2 bytes) a brotli stream declares in its first bits (RFC 7932 §9.1), which is
 * what its decoder allocates; undefined for the reserved code (large windows).
 */
export function brotliWindowBits(first: number): number | undefined {
  if ((first & 1) === 0) return 16;
  const n = (first >> 1) & 7;
  if (n !== 0) return 17 + n;
  const m = (first >> 4) & 7;
  if (m === 1) return undefined;
  return m === 0 ? 17 : 8 + m;
}

async function readExactly(fh: FileHandle, length: number, position: number, file: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  if (bytesRead !== length) throw new DeltaTruncatedError(`${file}: delta is truncated (header cut short)`);
  return buf;
}

/**
 * Reads and checks a delta's framing: magic, version, header, exact length and — unless
 * `verifyChecksum` is false — the sha256 trailer over the whole file, so a flipped byte is
 * reported before any output is produced.
 */
export async function openDelta(file: string, verifyChecksum = true): Promise<OpenedDelta> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new DeltaFormatError(`cannot open delta ${file}: ${(err as Error).message}`);
  }
  try {
    const { size } = await fh.stat();
    if (size < PREFIX_SIZE) {
      if (
        size > 0 &&
        (await readExactly(fh, size, 0, file)).equals(Buffer.from('FERRYDLT').subarray(0, size))
      ) {
        throw new DeltaTruncatedError(`${file}: delta is truncated (${size} bytes)`);
      }
      throw new DeltaFormatError(`${file}: not a Ferry delta (${size} bytes)`);
    }
    const { version, bodySize } = decodePrefix(await readExactly(fh, PREFIX_SIZE, 0, file));
    const header = decodeHeaderBody(await readExactly(fh, bodySize, PREFIX_SIZE, file), version);
    const expected = expectedDeltaSize(header);
    if (size < expected) {
      throw new DeltaTruncatedError(`${file}: delta is truncated (${size} of ${expected} bytes)`);
    }
    if (size > expected) {
      throw new DeltaCorruptError(`${file}: delta has ${size - expected} unexpected trailing bytes`);
    }
    if (verifyChecksum) {
      const hash = createHash('sha256');
      const buf = Buffer.allocUnsafe(1 << 20);
      const end = size - TRAILER_SIZE;
      for (let pos = 0; pos < end;) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
        if (bytesRead === 0) throw new DeltaTruncatedError(`${file}: delta shrank while reading`);
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      const trailer = await readExactly(fh, TRAILER_SIZE, end, file);
      if (!hash.digest().equals(trailer)) {
        throw new DeltaCorruptError(`${file}: delta checksum mismatch (the file is corrupt)`);
      }
    }
    const offsets: OpenedDelta['offsets'] = {};
    let at = PREFIX_SIZE + bodySize;
    for (const name of sectionNames(version)) {
      const { compressedSize } = sectionInfo(header, name);
      offsets[name] = at;
      if (compressedSize > 0) {
        // The decoder's memory is bounded only if no stream may ask for a larger window.
        const bits = brotliWindowBits((await readExactly(fh, 1, at, file))[0]!);
        if (bits === undefined || bits > maxWindowBits(name, version)) {
          throw new DeltaCorruptError(
            `${file}: delta ${name} section asks for a ${bits === undefined ? 'large' : `2^${bits}-byte`} brotli window (at most 2^${maxWindowBits(name, version)})`,
          );
        }
      }
      at += compressedSize;
    }
    return { file, header, offsets };
  } finally {
    await fh.close();
  }
}
