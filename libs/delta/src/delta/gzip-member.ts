import { gunzipSync, inflateRawSync } from 'node:zlib';

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
  try {
    // gunzip checks the CRC and size and reads on into any further member; the raw inflate of
    // the body alone must give the same bytes, so the body is exactly one deflate stream.
    const raw = gunzipSync(data, { maxOutputLength: maxRaw });
    const again = inflateRawSync(body, { maxOutputLength: maxRaw });
    return raw.length > 0 && raw.equals(again) ? { headerLength, body, raw } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether deflating `raw` with `params` gives exactly `body`; stops at the first differing chunk. */
function reproduces(raw: Buffer, body: Buffer, params: DeflateParams): boolean {
  let at = 0;
  let same = true;
  const stream = new DeflateStream(params, (chunk) => {
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
  for (const level of levels) {
    for (const legacyHash of [false, true]) {
      const params: DeflateParams = { level, memLevel: 8, windowBits: 15, strategy: 0, legacyHash };
      if (reproduces(raw, body, params)) return params;
    }
  }
  return undefined;
}
