import { crc32, inflateRawSync } from 'node:zlib';

import { DeflateStream, type DeflateParams } from './deflate-stream';

/** A file that is exactly one gzip member (RFC 1952): header, deflate stream, CRC32 and size. */
export interface GzipMember {
  /** Bytes of the gzip header, where the deflate stream starts. */
  headerLength: number;
  /** The deflate stream. */
  body: Buffer;
  /** The bytes it inflates to. */
  raw: Buffer;
}

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

/** Length of the gzip header at the start of `data`, or undefined when it is not one. */
export function gzipHeaderLength(data: Buffer): number | undefined {
  if (data.length < 18 || data[0] !== 0x1f || data[1] !== 0x8b || data[2] !== 8) return undefined;
  const flags = data[3]!;
  if (flags & 0xe0) return undefined;
  let at = 10;
  if (flags & FEXTRA) {
    if (at + 2 > data.length) return undefined;
    at += 2 + data.readUInt16LE(at);
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue;
    const end = data.indexOf(0, at);
    if (end < 0) return undefined;
    at = end + 1;
  }
  if (flags & FHCRC) at += 2;
  return at + 8 <= data.length ? at : undefined;
}

/**
 * `data` as one gzip member whose deflate stream runs from its header to the 8-byte trailer,
 * inflating to at most `maxRaw` bytes; undefined for anything else (several members, bytes
 * after the trailer, a bad CRC, too large).
 */
export function readGzipMember(data: Buffer, maxRaw: number): GzipMember | undefined {
  const headerLength = gzipHeaderLength(data);
  if (headerLength === undefined) return undefined;
  const body = data.subarray(headerLength, data.length - 8);
  let raw: Buffer;
  try {
    raw = inflateRawSync(body, { maxOutputLength: maxRaw });
  } catch {
    return undefined;
  }
  // The file's last 8 bytes must be this stream's CRC32 and size: a second member or bytes after
  // the stream would have put something else there.
  const trailer = data.subarray(data.length - 8);
  const sameTrailer =
    trailer.readUInt32LE(0) === crc32(raw) && trailer.readUInt32LE(4) === raw.length % 2 ** 32;
  return raw.length > 0 && sameTrailer ? { headerLength, body, raw } : undefined;
}

/** Whether deflating `raw` with `params` gives exactly `body`; stops at the first differing chunk. */
function reproduces(stream: DeflateStream, raw: Buffer, body: Buffer, params: DeflateParams): boolean {
  let at = 0;
  let same = true;
  stream.start(params, (chunk) => {
    if (!same) return;
    if (at + chunk.length > body.length || !body.subarray(at, at + chunk.length).equals(chunk)) same = false;
    at += chunk.length;
  });
  const step = 1 << 16;
  for (let i = 0; i < raw.length && same; i += step) stream.write(raw.subarray(i, i + step));
  if (!same) return false;
  stream.end();
  return same && at === body.length;
}

/**
 * The settings under which Ferry's deflate rebuilds `body` from `raw` byte for byte, or
 * undefined. Tried: zlib's defaults (memLevel 8, a 32 KiB window, default strategy) at every
 * level, with both hashes, starting with the level the gzip header hints at (XFL 2: level 9;
 * 4: level 1; else 6) and Node's hash; a wrong guess costs one chunk of output.
 */
export function findDeflateParams(raw: Buffer, body: Buffer, xfl: number): DeflateParams | undefined {
  const hinted = xfl === 2 ? 9 : xfl === 4 ? 1 : 6;
  const levels = [hinted, ...[9, 6, 1, 2, 3, 4, 5, 7, 8].filter((level) => level !== hinted)];
  const stream = new DeflateStream();
  for (const level of levels) {
    for (const legacyHash of [false, true]) {
      const params: DeflateParams = { level, memLevel: 8, windowBits: 15, strategy: 0, legacyHash };
      if (reproduces(stream, raw, body, params)) return params;
    }
  }
  return undefined;
}
